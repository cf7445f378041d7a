import Foundation
import PRMCore
import PRMModel
import PRMScoring
import PRMTraining

/// `prm train`: fit a personalized reward model on per-user comparisons.
enum TrainCommand: Subcommand {
    static let spec = CommandSpec(
        name: "train",
        abstract: "Train a personalized reward model (P-RM) on per-user preference comparisons.",
        discussion: """
        Data is JSONL, one comparison per line: {"user_id", "prompt", "chosen", "rejected"} with optional \
        "user_info" (explicit user text); the TRL layout (no prompt, whole conversations in chosen/rejected) \
        is split at their common prefix. Every row is validated before training starts.

        The loss is the paper's (App. F.2): alpha on the user's own embedding plus (1 - alpha) on the \
        generic user 0, which is what unseen users get. --vanilla trains the ordinary reward model \
        (uniform users, no user tokens, alpha 1).

        --out DIR receives a Hugging Face-style checkpoint (config.json, model.safetensors, tokenizer.json, \
        users.json), the optimizer state for --resume, and train_log.jsonl (one JSON object per logging step). \
        Checkpoints are written at each epoch end.

        Examples:
          prm train --data data/lengthpref/train.jsonl --dev data/lengthpref/dev.jsonl --out runs/prm
          prm train --data train.jsonl --out runs/lin --aggregator linear-head --user-tokens 1
          prm train --data train.jsonl --out runs/vanilla --vanilla
          prm train --data train.jsonl --out runs/prm --resume
        """,
        options: [
            .value("data", placeholder: "FILE", help: "Training comparisons (JSONL).", default: "data/lengthpref/train.jsonl"),
            .value("dev", placeholder: "FILE", help: "Development comparisons, evaluated at each epoch end."),
            .value("out", placeholder: "DIR", help: "Checkpoint folder (required)."),
            .value("backbone", placeholder: "DIR", help: "Pretrained Hugging Face folder.", default: "models/all-MiniLM-L6-v2"),
            .value("user-model", placeholder: "KIND", help: "uniform | individual | cluster.", default: "individual"),
            .value("aggregator", placeholder: "KIND", help: "soft-prompt | linear-head.", default: "soft-prompt"),
            .value("user-tokens", placeholder: "N", help: "T_u, user tokens per user (linear-head: 1).", default: "10"),
            .value("clusters", placeholder: "K", help: "Cluster centres for --user-model cluster.", default: "10"),
            .flag("no-shared-generic", help: "Individual users without the shared generic part (e_i = o_i)."),
            .value("alpha", placeholder: "A", help: "Weight of the personalized term; 1 - A on the generic user.", default: "0.5"),
            .flag("vanilla", help: "Vanilla reward model: uniform users, 0 user tokens, alpha 1."),
            .value("epochs", placeholder: "N", help: "Passes over the data.", default: "3"),
            .value("lr", placeholder: "LR", help: "Peak learning rate of the backbone.", default: "3e-5"),
            .value("user-lr", placeholder: "LR", help: "Peak learning rate of user tables and head.", default: "1e-2"),
            .value("mixture-lr-scale", placeholder: "X", help: "Cluster users: mixture logits' rate relative to --user-lr.", default: "10"),
            .value("weight-decay", placeholder: "W", help: "AdamW decoupled weight decay (matrices only).", default: "0.01"),
            .value("warmup", placeholder: "FRACTION", help: "Warm-up share of all steps.", default: "0.1"),
            .value("batch-size", placeholder: "N", help: "Comparisons per optimizer step (effective batch).", default: "16"),
            .value("micro-batch", placeholder: "N", help: "Comparisons per forward pass (gradient accumulation).", default: "8"),
            .value("max-length", placeholder: "N", help: "Tokens per input, user tokens included; the prompt is trimmed from the left.", default: "256"),
            .value("grad-clip", placeholder: "NORM", help: "Clip the global gradient norm.", default: "1.0"),
            .flag("freeze-backbone", help: "Train only the user model and head."),
            .value("dropout", placeholder: "P", help: "Hidden-state dropout while training.", default: "0"),
            .value("seed", placeholder: "N", help: "Seed for initialisation and data order.", default: "42"),
            .value("log-every", placeholder: "N", help: "Optimizer steps between log lines.", default: "10"),
            .value("limit", placeholder: "N", help: "Use only the first N training comparisons (quick runs)."),
            .flag("resume", help: "Continue the run saved in --out exactly (its settings and, unless --data is given, its data file are reused)."),
            .flag("skip-invalid", help: "Skip invalid data rows (reported with a count) instead of stopping."),
        ])

    /// Training writes no results to stdout: progress and logs go to stderr, the model to --out.
    static func run<Out: TextOutputStream>(_ arguments: ParsedArguments, output _: inout Out) throws -> Int32 {
        let out = URL(fileURLWithPath: try arguments.require("out"))
        let resume = arguments.flag("resume")
        let settings = resume ? try TrainingState.settings(in: out) : try settingsFrom(arguments)

        // A resumed run reads the file it was started on unless --data says otherwise.
        let recorded = resume && !arguments.isSet("data") ? try TrainingState.dataFile(in: out) : nil
        let dataPath = recorded ?? arguments.string("data", default: "data/lengthpref/train.jsonl")
        var train = try loadData(dataPath, arguments)
        if let limit = try arguments.int("limit") { train.comparisons = Array(train.comparisons.prefix(max(limit, 1))) }
        let dev = try arguments.string("dev").map { try loadData($0, arguments) }

        let model: RewardModel, users: UserTable
        if resume {
            (model, users, _) = try Checkpoint.load(out)
        } else {
            users = UserTable(ids: train.userIDs)
            let backbone = try EmbedCommand.modelFolder(arguments, option: "backbone")
            model = try RewardModel.pretrained(backbone: backbone, config: settings.rewardModelConfig(users: users.count), seed: settings.seed)
        }
        Log.info("\(train.comparisons.count) comparisons from \(users.count) users; \(model.parameters.count) parameters; "
                 + "\(settings.userModel.rawValue) users, \(settings.aggregator.rawValue), T_u \(settings.userTokens), alpha \(settings.alpha)")
        let trainer = try Trainer(model: model, users: users, settings: settings,
                                  train: InputPreparer(model: model, users: users).encode(train.comparisons),
                                  dev: dev.map { InputPreparer(model: model, users: users).encode($0.comparisons) } ?? [])
        if resume {
            try TrainingState.restore(trainer, from: out)
            guard trainer.optimizer.step < trainer.totalSteps else {
                Log.info("\(out.path): the run already finished (step \(trainer.optimizer.step) of \(trainer.totalSteps)); nothing to do")
                return 0
            }
            Log.info("resuming at step \(trainer.optimizer.step) of \(trainer.totalSteps)")
        }
        try FileManager.default.createDirectory(at: out, withIntermediateDirectories: true)
        let logWriter = try JSONLogWriter(url: out.appendingPathComponent("train_log.jsonl"), append: resume)
        let progress = ProgressBar(total: trainer.totalSteps - trainer.optimizer.step, label: "train", unit: "step")
        trainer.progress = progress
        trainer.onLog = { entry in
            logWriter.write(entry)
            if let dev = entry.devAccuracy {
                Log.info(String(format: "step %d epoch %.2f: loss %.4f train acc %.3f dev acc %.3f", entry.step, entry.epoch, entry.loss, entry.accuracy, dev))
            }
        }
        let dataFile = URL(fileURLWithPath: dataPath).path
        try trainer.run { _ in try TrainingState.save(trainer, dataFile: dataFile, to: out) }
        progress.finish()
        Log.info("saved \(out.path)")
        return 0
    }

    static func settingsFrom(_ a: ParsedArguments) throws -> TrainingSettings {
        var s = TrainingSettings()
        s.userModel = try choice(a, "user-model", UserModelKind.self)
        s.aggregator = try choice(a, "aggregator", Aggregator.self)
        // The linear head has one user vector; only an explicit --user-tokens overrides that.
        s.userTokens = a.isSet("user-tokens") || s.aggregator == .softPrompt ? try a.int("user-tokens", default: 10) : 1
        s.clusters = try a.int("clusters", default: 10)
        s.sharedGeneric = !a.flag("no-shared-generic")
        s.alpha = Float(try a.double("alpha", default: 0.5))
        if a.flag("vanilla") { s.makeVanilla() }
        s.epochs = try a.int("epochs", default: 3)
        s.learningRate = Float(try a.double("lr", default: 3e-5))
        s.userLearningRate = Float(try a.double("user-lr", default: 1e-2))
        s.mixtureLearningRateScale = Float(try a.double("mixture-lr-scale", default: 10))
        s.weightDecay = Float(try a.double("weight-decay", default: 0.01))
        s.warmupFraction = Float(try a.double("warmup", default: 0.1))
        s.batchSize = try a.int("batch-size", default: 16)
        s.microBatch = try a.int("micro-batch", default: 8)
        s.maxLength = try a.int("max-length", default: 256)
        s.gradientClip = Float(try a.double("grad-clip", default: 1))
        s.freezeBackbone = a.flag("freeze-backbone")
        s.dropout = Float(try a.double("dropout", default: 0))
        let seed = try a.int("seed", default: 42)
        guard seed >= 0 else { throw a.usageError("--seed must be non-negative") }
        s.seed = UInt64(seed)
        s.logEvery = max(1, try a.int("log-every", default: 10))
        do { try s.validate() } catch let error as TrainingError { throw a.usageError(error.description) }
        return s
    }

    static func choice<T: RawRepresentable & CaseIterable>(_ a: ParsedArguments, _ name: String, _: T.Type) throws -> T where T.RawValue == String {
        let raw = a.string(name) ?? ""
        guard let value = T(rawValue: raw) else {
            throw a.usageError("--\(name) must be one of \(T.allCases.map(\.rawValue).joined(separator: ", ")); got '\(raw)'")
        }
        return value
    }

    static func loadData(_ path: String, _ arguments: ParsedArguments) throws -> PreferenceDataset {
        let data = try PreferenceDataset.load(URL(fileURLWithPath: path), skipInvalid: arguments.flag("skip-invalid"))
        if data.skipped > 0 { Log.warning("\(path): skipped \(data.skipped) invalid rows") }
        return data
    }
}
