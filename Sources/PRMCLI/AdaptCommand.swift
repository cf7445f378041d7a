import Foundation
import PRMCore
import PRMModel
import PRMScoring
import PRMTraining

/// `prm adapt`: add new users to a trained model from a few of their comparisons.
enum AdaptCommand: Subcommand {
    static let spec = CommandSpec(
        name: "adapt",
        abstract: "Add new users to a trained reward model from a few of their comparisons (everything trained stays frozen).",
        discussion: """
        Each user in --data that the model does not know gets their own user vector, fitted on \
        their comparisons while the backbone, the head and every trained user stay fixed; the \
        result is written to --out as a checkpoint with those users added (users.json and the \
        user.* tensors grow; nothing else changes). Users the model already knows are refused.

        Linear head: h is computed once per text and the user vector is a logistic regression on \
        h(chosen) - h(rejected) with a Gaussian prior estimated from the trained users' vectors, \
        centred on the generic user 0: with a handful of comparisons a new user moves the way \
        trained users differ (e.g. towards short replies) and otherwise stays generic. Seconds \
        per user. Soft prompt: the user's tokens are optimised with the backbone frozen \
        (--adapt-steps, --adapt-lr); each step runs the backbone over the user's comparisons.

        A Hugging Face …ForSequenceClassification folder given to --model is read as a linear-head \
        model with individual users and none trained (prm serve serves it the same way): the users \
        of --data are added on top of its score head, with an isotropic prior around it (no trained \
        users to estimate one from), and --out is a prm checkpoint.

        --refit-seen (linear head): users of --data that the model knows are refitted instead of \
        refused: each one's vector is replaced by the same regularised fit on all of their \
        comparisons in --data (normally the training file), the prior estimated from the vectors \
        as trained and widened by --refit-prior-scale. This is the last stage of prm train, for \
        checkpoints trained without it; users of --data the model does not know are then added \
        as usual (their prior comes from the refitted vectors).

        --merge folds the user log of a running server (prm serve's adapt op; --user-log, by \
        default adapted_users.jsonl in --model) into the checkpoint written to --out: each user's \
        last logged fit, exactly as the server used it. --data may then be left out. A torn or \
        malformed line is reported and skipped.

        The users of --data get score statistics in the checkpoint's training record (their \
        scores on their comparisons, as prm train records them for its users; prm serve measures \
        drift from them); users merged from a log get none.

        Cluster users (linear head): a new user is a mixture of the trained centres, and only \
        their K mixture logits are fitted, by the same regularised fit (prior from the trained \
        users' logits, centred on user 0's). Uniform user models have nothing per user to fit; \
        --refit-seen needs individual users.

        Example:
          prm adapt --model runs/prm --data new_users.jsonl --out runs/prm-plus
          prm adapt --model runs/prm --merge --out runs/prm-merged
          prm adapt --model runs/old --data data/lengthpref/train.jsonl --out runs/old-refit --refit-seen
          prm eval --model runs/prm --data data/lengthpref/dev.jsonl --few-shot 1,2,5,10   (the protocol, measured)
        """,
        options: [
            .value("model", placeholder: "DIR", help: "Trained reward-model checkpoint (from prm train), or a …ForSequenceClassification folder (users added on top of its score head)."),
            .value("data", placeholder: "FILE", help: "Comparisons of the new users (JSONL, as for prm train); optional with --merge."),
            .value("out", placeholder: "DIR", help: "Checkpoint folder to write, with the users added (not --model)."),
        ] + AdaptOptions.all + [
            .flag("refit-seen", help: "Refit the users the model knows on their comparisons in --data instead of refusing them."),
            .value("refit-prior-scale", placeholder: "TAU", help: "Width of the prior for --refit-seen. \(TrainingSettings.Rationale.refitPriorScale)",
                   default: "\(TrainingSettings().refitPriorScale)"),
            .flag("skip-invalid", help: "Skip invalid data rows instead of stopping."),
            .flag("merge", help: "Fold a server's user log (prm serve's adapt op) into the checkpoint written to --out."),
            .value("user-log", placeholder: "FILE", help: "The user log --merge reads (default: adapted_users.jsonl in --model)."),
            TemplateOption.spec,
        ])

    static func run<Out: TextOutputStream>(_ arguments: ParsedArguments, output out: inout Out) throws -> Int32 {
        let modelDir = URL(fileURLWithPath: try arguments.require("model"))
        let outDir = URL(fileURLWithPath: try arguments.require("out"))
        let merge = arguments.flag("merge")
        guard !arguments.isSet("user-log") || merge else { throw arguments.usageError("--user-log is read by --merge only") }
        guard modelDir.standardizedFileURL.path != outDir.standardizedFileURL.path else {
            throw arguments.usageError("--out must be another folder than --model (the trained run stays as it was)")
        }
        let settings = try AdaptOptions.settings(arguments)
        let (model, loadedUsers, training) = try ModelProbe.load(modelDir, template: try arguments.servedTemplate())
        var users = loadedUsers
        var record = try RewardModelRecord(training, in: modelDir)
        var added: [RewardModelRecord.AddedUser] = []
        if merge { added += try mergeLog(arguments, modelDir: modelDir, into: model, users: &users, record: &record, output: &out) }
        if let path = arguments.string("data") {
            added += try adapt(path, arguments, settings: settings, model: model, users: &users, record: &record, output: &out)
        } else if !merge {
            throw arguments.usageError("--data is required (or --merge)")
        }
        record.adapted = (record.adapted ?? []) + added
        do { try ModelProbe.check(model, users: users) } catch let error as ModelError {
            throw CLIError("not writing \(outDir.path)", cause: error)
        }
        try OutputFolder.create(outDir)
        try Checkpoint.save(model, users: users, training: record.merged(into: training), to: outDir)
        Log.info("saved \(outDir.path) (\(users.count) users)")
        return 0
    }

    /// Refits (--refit-seen) and adds the users of the comparisons in `path`.
    private static func adapt<Out: TextOutputStream>(_ path: String, _ arguments: ParsedArguments, settings: AdaptSettings, model: RewardModel,
                                                    users: inout UserTable, record: inout RewardModelRecord, output out: inout Out)
        throws -> [RewardModelRecord.AddedUser] {
        let data = try PreferenceDataset.load(URL(fileURLWithPath: path), skipInvalid: arguments.flag("skip-invalid"),
                                             template: model.config.template)
        if data.skipped > 0 { Log.warning("\(path): skipped \(data.skipped) invalid rows") }
        let refitSeen = arguments.flag("refit-seen")
        let known = data.userIDs.filter(users.contains)
        guard known.isEmpty || refitSeen else {
            throw CLIError("\(path): \(known.count) user(s) already in the model (\(known.prefix(5).joined(separator: ", "))); "
                           + "adapt adds new users only (--refit-seen refits them)")
        }
        let encoded = try EncodedComparison.encodeChecked(data.comparisons, name: path, with: InputPreparer(model: model, users: users))
        let start = Date()
        defer { Log.info("fitted the users of \(path) in " + String(format: "%.1f s", Date().timeIntervalSince(start))) }
        if refitSeen {
            var refitSettings = settings
            guard let tau = try arguments.double("refit-prior-scale") else { throw arguments.usageError("--refit-prior-scale has no value") }
            refitSettings.priorScale = tau
            do { try refitSettings.validate(priorScaleOption: "--refit-prior-scale") } catch let error as TrainingError {
                throw arguments.usageError(error.description)
            }
            let refit = try UserAdapter(model: model, users: users, settings: refitSettings).refitSeenUsers(encoded)
            Log.info(String(format: "refitted %d seen users in %.1f s (prior scale %g): their comparisons ordered right %.3f -> %.3f, "
                            + "loss %.4f -> %.4f", refit.users, Date().timeIntervalSince(start), refit.priorScale,
                            refit.before.accuracy, refit.after.accuracy, refit.before.meanLoss, refit.after.meanLoss))
            out.write("refitted \(refit.users) seen users on \(refit.after.n) comparisons\n")
            record.refitSeen = refit
        }
        let adapter = try UserAdapter(model: model, users: users, settings: settings)
        var added: [RewardModelRecord.AddedUser] = []
        for id in data.userIDs where !known.contains(id) {
            let mine = encoded.filter { $0.userID == id }
            let index = try adapter.addUser(mine)
            users.add(id, index: index)
            added.append(RewardModelRecord.AddedUser(userID: id, index: index, comparisons: mine.count))
            out.write("\(id)\t\(index)\t\(mine.count) comparisons\n")
        }
        // The users of --data, fitted or refitted: their statistics are now these.
        let measured = Evaluator(model: model, users: users, batchSize: 64).scoreStatistics(encoded)
        record.scoreStatistics = (record.scoreStatistics ?? ScoreStatistics()).merging(measured)
        return added
    }

    /// Applies every line of the user log (a later fit of a user replaces an earlier one) and
    /// returns the users it added.
    /// The log holds fits, not comparisons: its users get no score statistics, and a trained
    /// user it refitted loses the ones it had (a server then measures drift from what it serves).
    private static func mergeLog<Out: TextOutputStream>(_ arguments: ParsedArguments, modelDir: URL, into model: RewardModel,
                                                       users: inout UserTable, record: inout RewardModelRecord,
                                                       output out: inout Out) throws -> [RewardModelRecord.AddedUser] {
        let log = arguments.string("user-log").map { UserLog(URL(fileURLWithPath: $0)) } ?? UserLog(beside: modelDir)
        guard FileManager.default.fileExists(atPath: log.url.path) else { throw CLIError("--merge: no user log at \(log.url.path)") }
        let reading = try log.read(final: true)
        for problem in reading.problems { Log.warning("user log: \(problem)") }
        let known = Set(users.indices.keys)
        let fingerprint = ModelFingerprint.of(model, users: users)
        let (mine, others) = (reading.records.filter { $0.fits(fingerprint) }, reading.records.filter { !$0.fits(fingerprint) })
        for record in others { Log.warning("user log: user \(record.userID) was fitted on model \(record.model), this is \(fingerprint); skipped") }
        for problem in UserLog.apply(mine, to: model.userModel, users: &users) { Log.warning("user log: \(problem)") }
        var last: [String: UserLog.Record] = [:]
        for r in mine {
            last[r.userID] = r
            record.scoreStatistics?.users[r.userID] = nil
        }
        let added = users.indices.keys.filter { !known.contains($0) }.sorted().map { id in
            RewardModelRecord.AddedUser(userID: id, index: users.index(of: id), comparisons: last[id]?.fit.n ?? 0)
        }
        for user in added { out.write("\(user.userID)\t\(user.index)\t\(user.comparisons) comparisons (user log)\n") }
        Log.info("merged \(mine.count) fits from \(log.url.path): \(added.count) users added")
        return added
    }
}
