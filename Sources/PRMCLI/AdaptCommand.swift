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
        (--steps, --lr); each step runs the backbone over the user's comparisons.

        Only individual user models have per-user vectors to fit.

        Example:
          prm adapt --model runs/prm --data new_users.jsonl --out runs/prm-plus
          prm eval --model runs/prm --data data/lengthpref/dev.jsonl --few-shot 1,2,5,10   (the protocol, measured)
        """,
        options: [
            .value("model", placeholder: "DIR", help: "Trained reward-model checkpoint (from prm train)."),
            .value("data", placeholder: "FILE", help: "Comparisons of the new users (JSONL, as for prm train)."),
            .value("out", placeholder: "DIR", help: "Checkpoint folder to write, with the users added (not --model)."),
            .value("adapt-steps", placeholder: "N", help: "Soft prompt: optimizer steps per user.", default: "\(AdaptSettings().steps)"),
            .value("adapt-lr", placeholder: "LR", help: "Soft prompt: learning rate of the user's tokens.", default: "\(AdaptSettings().learningRate)"),
            .flag("skip-invalid", help: "Skip invalid data rows instead of stopping."),
        ])

    static func run<Out: TextOutputStream>(_ arguments: ParsedArguments, output out: inout Out) throws -> Int32 {
        let modelDir = URL(fileURLWithPath: try arguments.require("model"))
        let outDir = URL(fileURLWithPath: try arguments.require("out"))
        let path = try arguments.require("data")
        guard modelDir.standardizedFileURL.path != outDir.standardizedFileURL.path else {
            throw arguments.usageError("--out must be another folder than --model (the trained run stays as it was)")
        }
        let settings = try adaptSettings(arguments)
        var (model, users, training) = try Checkpoint.load(modelDir)
        let data = try PreferenceDataset.load(URL(fileURLWithPath: path), skipInvalid: arguments.flag("skip-invalid"))
        if data.skipped > 0 { Log.warning("\(path): skipped \(data.skipped) invalid rows") }
        let known = data.userIDs.filter(users.contains)
        guard known.isEmpty else {
            throw CLIError("\(path): \(known.count) user(s) already in the model (\(known.prefix(5).joined(separator: ", "))); "
                           + "adapt adds new users only")
        }
        let encoded = try TrainCommand.encode(data, name: path, InputPreparer(model: model, users: users))
        let adapter = try UserAdapter(model: model, users: users, settings: settings)
        let start = Date()
        var added: [[String: Any]] = []
        for id in data.userIDs {
            let mine = encoded.filter { $0.userID == id }
            let index = try adapter.addUser(mine)
            users.add(id, index: index)
            added.append(["user_id": id, "index": index, "comparisons": mine.count])
            out.write("\(id)\t\(index)\t\(mine.count) comparisons\n")
        }
        Log.info(String(format: "fitted %d users in %.1f s", added.count, Date().timeIntervalSince(start)))
        training["adapted"] = ((training["adapted"] as? [[String: Any]]) ?? []) + added
        try Checkpoint.save(model, users: users, training: training, to: outDir)
        Log.info("saved \(outDir.path) (\(users.count) users)")
        return 0
    }

    static func adaptSettings(_ arguments: ParsedArguments) throws -> AdaptSettings {
        // Both options declare AdaptSettings()'s values as their defaults.
        var settings = AdaptSettings()
        if let steps = try arguments.int("adapt-steps") { settings.steps = steps }
        if let lr = try arguments.double("adapt-lr") { settings.learningRate = Float(lr) }
        guard settings.steps >= 0 else { throw arguments.usageError("--adapt-steps must be non-negative, got \(settings.steps)") }
        guard settings.learningRate >= 0 else { throw arguments.usageError("--adapt-lr must be non-negative, got \(settings.learningRate)") }
        return settings
    }
}
