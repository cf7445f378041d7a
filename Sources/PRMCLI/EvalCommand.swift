import Foundation
import PRMCore
import PRMModel
import PRMScoring
import PRMTraining

/// `prm eval`: per-user pairwise accuracy, personalized and generic, seen and unseen users.
enum EvalCommand: Subcommand {
    static let spec = CommandSpec(
        name: "eval",
        abstract: "Evaluate a reward model per user: seen/unseen users, personalized and generic.",
        discussion: """
        Accuracy is the share of comparisons whose chosen reply scores above the rejected one. \
        'personal' uses the user's own embedding (unseen users get the generic user 0 with their \
        explicit text); 'generic' scores everyone as user 0.

        --groups FILE.json maps user ids to labels (e.g. majority/minority) and adds per-label and \
        seen/unseen × label rows.

        --few-shot K[,K...] evaluates `prm adapt`'s protocol: each unseen user (absent from the model) \
        is fitted on their first K comparisons in file order, with everything trained frozen, and \
        scored on the rest; 'adapted' is that accuracy, 'generic' the same comparisons scored as \
        the generic user 0. Users with K or fewer comparisons do not count for that K. The JSON \
        report gets a "few_shot" list.

        --active (with --few-shot) asks instead whether the `suggest` op's questions teach the \
        model a new user faster than random ones: each unseen user's comparisons are split in \
        half (file order); from the first half, K are chosen by the suggest criterion (largest \
        expected reduction of the posterior variance of the user's reward differences, under the \
        Laplace approximation of the adapt fit) and, in --draws random draws, K at random; each \
        choice fits the user with the adapt math and is scored on the second half. Linear-head \
        models only. The JSON report gets a "few_shot_active" list.

        Example:
          prm eval --model runs/prm --data data/lengthpref/dev.jsonl --json runs/prm/dev-eval.json
          prm eval --model runs/prm --data data/lengthpref/dev.jsonl --few-shot 1,2,5,10
          prm eval --model runs/prm --data data/lengthpref/dev.jsonl --few-shot 1,2,5 --active --draws 50
        """,
        options: [
            .value("model", placeholder: "DIR", help: "Reward-model checkpoint (from prm train), or a …ForSequenceClassification folder as it is."),
            .value("data", placeholder: "FILE", help: "Comparisons to evaluate (JSONL)."),
            .value("json", placeholder: "FILE", help: "Write the report as JSON."),
            .value("groups", placeholder: "FILE", help: "JSON object: user id -> group label."),
            .value("batch-size", placeholder: "N", help: "Comparisons per forward pass.", default: "16"),
            .value("few-shot", placeholder: "K,...", help: "Also adapt each unseen user on their first K comparisons and score the rest."),
            .flag("active", help: "With --few-shot: K comparisons chosen by the suggest criterion vs at random (see above)."),
            .value("draws", placeholder: "N", help: "With --active: random draws per user and K.", default: "50"),
            .value("seed", placeholder: "N", help: "With --active: the random draws' seed.", default: "1"),
            PrecisionOption.spec, PrecisionOption.int8Products, TemplateOption.spec,
        ] + AdaptOptions.all + [
            .flag("skip-invalid", help: "Skip invalid data rows instead of stopping."),
        ])

    static func run<Out: TextOutputStream>(_ arguments: ParsedArguments, output out: inout Out) throws -> Int32 {
        guard let batchSize = try arguments.int("batch-size") else { throw arguments.usageError("--batch-size has no value") }
        guard batchSize >= 1 else { throw arguments.usageError("--batch-size must be at least 1, got \(batchSize)") }
        let (model, users, _) = try ModelProbe.load(URL(fileURLWithPath: try arguments.require("model")), precision: try arguments.precision(),
                                                    template: try arguments.servedTemplate())
        let path = try arguments.require("data")
        let data = try PreferenceDataset.load(URL(fileURLWithPath: path), skipInvalid: arguments.flag("skip-invalid"),
                                             template: model.config.template)
        if data.skipped > 0 { Log.warning("\(path): skipped \(data.skipped) invalid rows") }
        let groups = try arguments.string("groups").map(InputFiles.groups) ?? [:]
        let encoded = try EncodedComparison.encodeChecked(data.comparisons, name: path, with: InputPreparer(model: model, users: users))
        let progress = ProgressBar(total: encoded.count, label: "eval", unit: "pair")
        let evaluator = Evaluator(model: model, users: users, batchSize: batchSize)
        var report = evaluator.evaluate(encoded, groups: groups, progress: progress)
        progress.finish()
        if arguments.flag("active") {
            guard let ks = try fewShotCounts(arguments) else { throw arguments.usageError("--active needs --few-shot K,... (the numbers of answered pairs)") }
            let draws = try arguments.int("draws") ?? 50
            guard draws >= 1 else { throw arguments.usageError("--draws must be at least 1, got \(draws)") }
            let seed = try arguments.int("seed") ?? 1
            guard seed >= 0 else { throw arguments.usageError("--seed must be non-negative, got \(seed)") }
            let unseen = encoded.filter { !users.contains($0.userID) }.count
            let activeProgress = ProgressBar(total: unseen, label: "few-shot --active", unit: "pair")
            report.fewShotActive = try ActiveFewShotEvaluation.evaluate(encoded, ks: ks, scorer: evaluator.scorer, groups: groups,
                                                                        settings: try AdaptOptions.settings(arguments), draws: draws,
                                                                        seed: UInt64(seed), progress: activeProgress)
            activeProgress.finish()
        } else if let ks = try fewShotCounts(arguments) {
            let settings = try AdaptOptions.settings(arguments)
            let unseen = encoded.filter { !users.contains($0.userID) }.count
            let fewShotProgress = ProgressBar(total: unseen, label: "few-shot", unit: "pair")
            report.fewShot = try FewShotEvaluation.evaluate(encoded, ks: ks, scorer: evaluator.scorer, groups: groups,
                                                            settings: settings, progress: fewShotProgress)
            fewShotProgress.finish()
        }
        if let json = arguments.string("json") { try AtomicFile.writeJSON(report, to: URL(fileURLWithPath: json)) }
        out.write(report.table() + "\n")
        if let rows = report.fewShot { out.write("\n" + FewShotEvaluation.table(rows) + "\n") }
        if let rows = report.fewShotActive {
            out.write("\n" + ActiveFewShotEvaluation.table(rows, draws: try arguments.int("draws") ?? 50) + "\n")
        }
        return 0
    }

    /// --few-shot "1,2,5,10": distinct positive counts, ascending.
    static func fewShotCounts(_ arguments: ParsedArguments) throws -> [Int]? {
        guard let text = arguments.string("few-shot") else { return nil }
        let parts = text.split(separator: ",", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
        let ks = parts.compactMap { Int($0) }
        guard ks.count == parts.count, !ks.isEmpty, ks.allSatisfy({ $0 >= 1 }) else {
            throw arguments.usageError("--few-shot expects positive integers separated by commas (e.g. 1,2,5,10), got '\(text)'")
        }
        return Array(Set(ks)).sorted()
    }
}
