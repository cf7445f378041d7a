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

        Example:
          prm eval --model runs/prm --data data/lengthpref/dev.jsonl --json runs/prm/dev-eval.json
        """,
        options: [
            .value("model", placeholder: "DIR", help: "Reward-model checkpoint (from prm train)."),
            .value("data", placeholder: "FILE", help: "Comparisons to evaluate (JSONL)."),
            .value("json", placeholder: "FILE", help: "Write the report as JSON."),
            .value("groups", placeholder: "FILE", help: "JSON object: user id -> group label."),
            .value("batch-size", placeholder: "N", help: "Comparisons per forward pass.", default: "16"),
            .flag("skip-invalid", help: "Skip invalid data rows instead of stopping."),
        ])

    static func run<Out: TextOutputStream>(_ arguments: ParsedArguments, output out: inout Out) throws -> Int32 {
        let batchSize = try arguments.int("batch-size", default: 16)
        guard batchSize >= 1 else { throw arguments.usageError("--batch-size must be at least 1, got \(batchSize)") }
        let (model, users, _) = try Checkpoint.load(URL(fileURLWithPath: try arguments.require("model")))
        let path = try arguments.require("data")
        let data = try PreferenceDataset.load(URL(fileURLWithPath: path), skipInvalid: arguments.flag("skip-invalid"))
        if data.skipped > 0 { Log.warning("\(path): skipped \(data.skipped) invalid rows") }
        let groups = try arguments.string("groups").map(InputFiles.groups) ?? [:]
        let encoded = InputPreparer(model: model, users: users).encode(data.comparisons)
        let progress = ProgressBar(total: encoded.count, label: "eval", unit: "pair")
        let report = Evaluator(model: model, users: users, batchSize: batchSize)
            .evaluate(encoded, groups: groups, progress: progress)
        progress.finish()
        if let json = arguments.string("json") { try AtomicFile.writeJSON(report, to: URL(fileURLWithPath: json)) }
        out.write(report.table() + "\n")
        return 0
    }
}
