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
        is split at their common prefix. A prompt may be a list of {"role", "content"} chat messages, \
        written out in the checkpoint's text template (--template) as the server writes requests' messages. \
        Every row is validated before training starts.

        The loss is the paper's (App. F.2): alpha on the user's own embedding plus (1 - alpha) on the \
        generic user 0, which is what unseen users get. --vanilla trains the ordinary reward model \
        (uniform users, no user tokens, alpha 1).

        --out DIR receives a Hugging Face-style checkpoint (config.json, model.safetensors, tokenizer.json, \
        users.json), the optimizer state for --resume, and train_log.jsonl (one JSON object per logging step). \
        Checkpoints are written at each epoch end, and only of a model that scores: finite weights, \
        and a fixed set of probe replies scored finitely for the generic user and every user (a run \
        that diverged exits 1 naming the score that was not finite, with no checkpoint written).

        After the last epoch (linear head, individual users) every seen user's vector is refitted \
        on their training comparisons with the backbone, the head and the generic user frozen: \
        the regularised logistic regression of prm adapt, on h computed once per text, with the \
        prior estimated from the trained users' vectors (--refit-prior-scale widens or narrows it; \
        --no-refit-seen skips the stage). The checkpoint is rewritten with the refitted vectors \
        and a "refit_seen" record (fit before and after, held-out accuracy before and after).

        Last, every user's training comparisons are scored by the final model and the checkpoint \
        records each user's count, mean score, the standard deviation of those means and the mean \
        spread |r(chosen) - r(rejected)| ("score_statistics"): prm serve's per-user health measures \
        drift from them (README: Per-user health).

        --init-from DIR starts from an existing reward model instead of a bare backbone. A Hugging \
        Face …ForSequenceClassification folder (num_labels 1) gives the backbone and its score head, \
        which becomes the generic user's vector (linear head; every centre with --user-model cluster) \
        or the soft prompt's head (bias 0; its user tokens start fresh, so its scores are the \
        folder's only after training); the user table starts fresh, every user at the generic user, and the reply counts start \
        muted, so the linear head's first step scores the generic user exactly as the folder's model. \
        A prm checkpoint gives everything it trained: its structure (\(structureOptions.map { "--" + $0 }.joined(separator: ", ")) \
        are the checkpoint's and may not be given), the backbone, head, reply counts and interactions, \
        the generic user, and the vector of every user of --data whose id it knows; the other users \
        of --data start fresh, and its users absent from --data are dropped. The source is recorded \
        in the training record (settings.init_from: path, kind, kept_users). --init-from replaces \
        --backbone; --resume continues --out's own run, which remembers where it started.

        The defaults are the recipe chosen on a validation split of lengthpref's train.jsonl \
        (bench/recipe.sh, bench/results/recipe) and then tested once on dev.jsonl and on a second \
        preference set over three seeds (bench/quality.sh, bench/results/quality).

        Examples:
          prm train --data data/lengthpref/train.jsonl --out runs/prm
          prm train --data train.jsonl --out runs/prm --val-fraction 0.2          (choose settings on a held-back split)
          prm train --data train.jsonl --out runs/soft --aggregator soft-prompt
          prm train --data train.jsonl --out runs/vanilla --vanilla
          prm train --data train.jsonl --out runs/prm --resume
          prm train --data train.jsonl --out runs/mine --init-from Skywork-Reward-V2-Qwen3-0.6B   (fine-tune a reward model with users)
          mpirun -np 4 prm train --data train.jsonl --out runs/prm     (4 data-parallel ranks; README: Training on several ranks)

        Under Open MPI's mpirun every rank computes its contiguous share of each step's batch (the \
        batches, seed and result are those of one process), gradients are summed with one MPI_Allreduce \
        a step (--allreduce overlapped: one MPI_Iallreduce per BERT layer, started as the backward pass \
        finishes it), and rank 0 alone logs, shows progress and writes --out. --threads is per rank: \
        give ranks × threads = cores.
        """,
        options: options)

    /// Every default comes from `TrainingSettings()`: written once, shown by --help, returned by the getters.
    static var options: [OptionSpec] {
        let d = TrainingSettings()
        func text(_ value: Float) -> String { "\(value)" }
        return [
            .value("data", placeholder: "FILE", help: "Training comparisons (JSONL).", default: DefaultData.trainFile),
            .value("dev", placeholder: "FILE", help: "Held-out comparisons, evaluated at each epoch end (a test file: choose recipes with --val-fraction instead)."),
            .value("val-fraction", placeholder: "F", help: "Hold back this share of each user's comparisons, evaluate them at each epoch end and "
                   + "write them to DIR/val.jsonl: the split to choose a recipe on.", default: "\(d.validationFraction)"),
            .value("val-by", placeholder: "UNIT", help: "What --val-fraction is a share of: comparisons (each user's) | prompts "
                   + "(whole prompts with all their comparisons, so the held-back texts are new, as a test set's are).",
                   default: d.validationSplit.rawValue),
            .value("out", placeholder: "DIR", help: "Checkpoint folder (required)."),
            .value("backbone", placeholder: "DIR", help: "Pretrained Hugging Face folder (model_type bert, gpt2, llama, mistral, qwen2, qwen3), "
                   + "or a llama GGUF file (SmolLM2; weights dequantized to fp32, its tokenizer saved as tokenizer.json).", default: ModelLocator.searchOrder),
            .value("init-from", placeholder: "DIR", help: "Start from an existing reward model: a …ForSequenceClassification folder "
                   + "(backbone + score head as the generic user's) or a prm checkpoint (all it trained, users kept by id); see above."),
            .value("user-model", placeholder: "KIND", help: "uniform | individual | cluster.", default: d.userModel.rawValue),
            .value("aggregator", placeholder: "KIND", help: "soft-prompt | linear-head. \(TrainingSettings.Rationale.aggregator)", default: d.aggregator.rawValue),
            .value("user-tokens", placeholder: "N", help: "T_u, user tokens per user (default: 1 with linear-head, "
                   + "\(TrainingSettings.softPromptUserTokens) with soft-prompt)."),
            .value("clusters", placeholder: "K", help: "Cluster centres for --user-model cluster.", default: "\(d.clusters)"),
            .flag("no-shared-generic", help: "Individual users without the shared generic part (e_i = o_i)."),
            .value("alpha", placeholder: "A", help: "Weight of the personalized term; 1 - A on the generic user.", default: text(d.alpha)),
            .flag("vanilla", help: "Vanilla reward model: uniform users, 0 user tokens, alpha 1."),
            .value("epochs", placeholder: "N", help: "Passes over the data. \(TrainingSettings.Rationale.epochs)", default: "\(d.epochs)"),
            .value("lr", placeholder: "LR", help: "Peak learning rate of the backbone: \(text(d.learningRate)) for the linear head, "
                   + "\(text(TrainingSettings.softPromptLearningRate)) for the soft prompt. \(TrainingSettings.Rationale.learningRate) "
                   + TrainingSettings.Rationale.softPromptLearningRate),
            .value("user-lr", placeholder: "LR", help: "Peak learning rate of user tables and head. \(TrainingSettings.Rationale.userLearningRate)",
                   default: text(d.userLearningRate)),
            .value("mixture-lr-scale", placeholder: "X", help: "Cluster users: mixture logits' rate relative to --user-lr.",
                   default: text(d.mixtureLearningRateScale)),
            .value("weight-decay", placeholder: "W", help: "AdamW decoupled weight decay (matrices only).", default: text(d.weightDecay)),
            .value("warmup", placeholder: "FRACTION", help: "Warm-up share of all steps, in [0, 1].", default: text(d.warmupFraction)),
            .value("batch-size", placeholder: "N", help: "Comparisons per optimizer step (effective batch).", default: "\(d.batchSize)"),
            .value("micro-batch", placeholder: "N", help: "Comparisons per forward pass (gradient accumulation).", default: "\(d.microBatch)"),
            .value("max-length", placeholder: "N", help: "Tokens per input, user tokens included; the prompt is trimmed from the left. "
                   + TrainingSettings.Rationale.maxLength, default: "\(d.maxLength)"),
            .value("reply-counts", placeholder: "K", help: "Learned log-counts over the reply added to the pooled state (0: mean pooling alone). "
                   + TrainingSettings.Rationale.replyCounts,
                   default: "\(d.replyCounts)"),
            .value("silent-counts", placeholder: "E", help: "How many of the reply counts start silent (bias -4) to learn to count "
                   + "rare tokens, a question mark or a refusal; the rest start counting every token.", default: "\(d.silentCounts)"),
            .value("interactions", placeholder: "M", help: "Width of a shared residual layer on the pooled state, "
                   + "h + W2 gelu(W1 h + b1), so that a user vector can weigh combinations of what h carries "
                   + "(longer is better unless the reply refuses); 0: none. " + TrainingSettings.Rationale.interactions,
                   default: "\(d.interactions)"),
            .value("pooled-scale", placeholder: "S|auto", help: "A fixed factor on the backbone's pooled state, so that the head's "
                   + "rates and start suit a backbone whose state is larger or smaller than MiniLM's. " + TrainingSettings.Rationale.pooledScale,
                   default: "auto"),
            .value("user-spread", placeholder: "S", help: "Individual users' offsets from the generic user start at S times a random "
                   + "token embedding (0: every user starts as the generic user).", default: text(d.userSpread)),
            .value("pooling", placeholder: "SPAN", help: "Rows the mean pool reads: window (all of them) | reply (the reply's only). "
                   + "Default: window for the linear head, reply for the soft prompt. " + TrainingSettings.Rationale.pooling),
            .value("template", placeholder: "NAME", help: "The data's text template, recorded in the checkpoint to write chat messages as "
                   + "the model's text: hh (\"Human: …\\n\\nAssistant: …\" turns) | plain (contents joined by blank lines). "
                   + "Default: the chat template of an --init-from …ForSequenceClassification folder that has one (as it is served); "
                   + "else hh when at least \(Int(TextTemplate.hhShare * 100))% of the prompts are in hh turns, else plain."),
            .value("grad-clip", placeholder: "NORM", help: "Clip the global gradient norm (0: no clipping).", default: text(d.gradientClip)),
            .flag("freeze-backbone", help: "Train only the user model and head."),
            .value("dropout", placeholder: "P", help: "Hidden-state dropout while training. \(TrainingSettings.Rationale.dropout)", default: text(d.dropout)),
            .value("seed", placeholder: "N", help: "Seed for initialisation, data order, dropout and the validation split.", default: "\(d.seed)"),
            .flag("no-refit-seen", help: "Keep the seen users' vectors as SGD left them. \(TrainingSettings.Rationale.refitSeenUsers)"),
            .value("refit-prior-scale", placeholder: "TAU", help: "Width of the refit's prior (its covariance times TAU). "
                   + TrainingSettings.Rationale.refitPriorScale, default: "\(d.refitPriorScale)"),
            .value("log-every", placeholder: "N", help: "Optimizer steps between log lines.", default: "\(d.logEvery)"),
            DataParallel.threadsOption,
            DataParallel.allreduceOption,
            .value("limit", placeholder: "N", help: "Use only the first N training comparisons (quick runs)."),
            .flag("resume", help: "Continue the run saved in --out exactly (its settings and, unless --data is given, its data file are reused)."),
            .flag("skip-invalid", help: "Skip invalid data rows (reported with a count) instead of stopping."),
        ]
    }

    /// Training writes no results to stdout: progress and logs go to stderr, the model to --out.
    static func run<Out: TextOutputStream>(_ arguments: ParsedArguments, output _: inout Out) throws -> Int32 {
        try DataParallel.run(arguments) { try train(arguments, ranks: $0) }
    }

    /// The options that choose a model's structure: a checkpoint given to --init-from has its own.
    static let structureOptions = ["aggregator", "user-model", "user-tokens", "clusters", "no-shared-generic", "vanilla", "reply-counts",
                                   "silent-counts", "interactions", "pooled-scale", "pooling", "template", "max-length"]

    /// The run as one of `ranks`: every rank trains its shards, rank 0 alone writes --out.
    static func train(_ arguments: ParsedArguments, ranks: Ranks) throws -> Int32 {
        let run = try TrainingRun<TrainingState>(arguments, name: "train")
        let start = try initialModel(arguments, resume: run.resume)
        var settings = try run.settings { try settingsFrom(arguments, structure: start?.structure) }
        let dataFile = try run.dataFile(arguments)
        // A score-head folder's own chat template writes the data unless --template says otherwise.
        let folderTemplate = settings.template == nil && !run.resume ? try start?.chatTemplate() : nil
        settings.template = settings.template ?? folderTemplate
        var train = try run.comparisons(arguments) { try loadData($0, arguments, template: settings.template) }
        logTemplate(train, given: settings.template, from: folderTemplate == nil ? "--template" : "the chat template of --init-from")
        // The held-out file is written the training data's way, whatever its own prompts look like.
        var dev = try arguments.string("dev").map { try loadData($0, arguments, template: train.template) }
        if settings.validationFraction > 0 {
            (train, dev) = train.split(validationFraction: settings.validationFraction, by: settings.validationSplit, seed: settings.seed)
            let share = settings.validationSplit == .prompts ? "of the prompts" : "of each user's"
            Log.info("validation split: \(dev?.comparisons.count ?? 0) comparisons held back (\(settings.validationFraction) \(share))")
        }

        let model: RewardModel, users: UserTable
        var refitted = false
        if run.resume {
            let training: [String: Any]
            (model, users, training) = try Checkpoint.load(run.out)
            refitted = try RewardModelRecord(training, in: run.out).refitSeen != nil
        } else {
            users = UserTable(ids: train.userIDs)
            let build = try freshModel(arguments, start: start, users: users, seed: settings.seed, initialization: settings.freshInitialization)
            try resolvePooledScale(&settings, users: users, train: train) { try build($0).model }
            let built = try build(settings.rewardModelConfig(users: users.count, template: train.template))
            (model, settings.initFrom) = (built.model, built.source)
            if let source = built.source {
                Log.info("starting from \(source.path) (\(source.kind.rawValue); \(source.keptUsers) of \(users.count) users kept)")
            }
        }
        Log.info("\(train.comparisons.count) comparisons from \(users.count) users; \(model.parameters.count) parameters; "
                 + "\(settings.userModel.rawValue) users, \(settings.aggregator.rawValue), T_u \(settings.userTokens), alpha \(settings.alpha)")
        let preparer = InputPreparer(model: model, users: users)
        let encodedTrain = try EncodedComparison.encodeChecked(train.comparisons, name: dataFile.path, with: preparer)
        let devName = settings.validationFraction > 0 ? "validation split" : arguments.string("dev") ?? ""
        let encodedDev = try dev.map { try EncodedComparison.encodeChecked($0.comparisons, name: devName, with: preparer) } ?? []
        let trainer = try Trainer(model: model, users: users, settings: settings, train: encodedTrain, dev: encodedDev, ranks: ranks,
                                  allreduce: try choice(arguments, "allreduce", AllreduceMode.self))
        if let state = run.state {
            try state.restore(into: trainer, from: run.out)
            // A run stopped between its last epoch and the refit resumes into the refit.
            guard run.continues(at: trainer.optimizer.step, of: trainer.totalSteps, unit: "step",
                                pending: trainer.refitsSeenUsers && !refitted) else { return 0 }
        }
        // Every rank starts from rank 0's weights: the same whichever way each built or loaded them.
        try ranks.broadcast(model.parameters)
        guard ranks.isLeader else {
            // The other ranks compute their shards and write nothing; the refit is rank 0's.
            try trainer.run()
            return 0
        }
        let (logWriter, progress) = try run.start(remaining: trainer.totalSteps - trainer.optimizer.step, unit: "step")
        if settings.validationFraction > 0, let dev { try dev.write(to: run.out.appendingPathComponent("val.jsonl")) }
        trainer.progress = progress
        trainer.onLog = { entry in
            logWriter.write(entry)
            if let dev = entry.devAccuracy {
                Log.info(String(format: "step %d epoch %.2f: loss %.4f train acc %.3f dev acc %.3f", entry.step, entry.epoch, entry.loss, entry.accuracy, dev))
            }
        }
        try trainer.run { _ in try TrainingState.save(trainer, dataFile: dataFile.absolute, to: run.out) }
        progress.finish()
        if let refit = try trainer.refitSeenUsers() {
            var line = String(format: "refitted %d seen users (prior scale %g): training comparisons ordered right %.3f -> %.3f, loss %.4f -> %.4f",
                              refit.users, refit.priorScale, refit.before.accuracy, refit.after.accuracy, refit.before.meanLoss, refit.after.meanLoss)
            if let before = refit.heldOutBefore, let after = refit.heldOutAfter { line += String(format: "; held-out acc %.3f -> %.3f", before, after) }
            Log.info(line)
        }
        trainer.recordScoreStatistics()
        Log.info("recorded the score statistics of \(trainer.scoreStatistics?.users.count ?? 0) users on their training comparisons")
        try TrainingState.save(trainer, dataFile: dataFile.absolute, to: run.out)
        run.finish(progress)
        return 0
    }

    /// How a new run builds its model for a config: from --init-from's model (and where it
    /// started, recorded), or from --backbone's pretrained weights.
    static func freshModel(_ arguments: ParsedArguments, start: InitialModel?, users: UserTable, seed: UInt64,
                           initialization: FreshInitialization) throws -> (RewardModelConfig) throws -> (model: RewardModel, source: InitSource?) {
        if let start {
            return { config in
                let started = try start.model(config: config, users: users, seed: seed, initialization: initialization)
                return (started.model, started.source)
            }
        }
        let backbone = try arguments.modelFolder("backbone")
        return { (try RewardModel.pretrained(backbone: backbone, config: $0, seed: seed, initialization: initialization), nil) }
    }

    /// `--pooled-scale auto` resolved on a probe model `build` makes (`PooledScaleChoice`), said in the log.
    static func resolvePooledScale(_ settings: inout TrainingSettings, users: UserTable, train: PreferenceDataset,
                                   build: (RewardModelConfig) throws -> RewardModel) throws {
        guard let choice = try PooledScaleChoice.resolve(&settings, users: users, comparisons: train.comparisons, template: train.template,
                                                         build: build) else { return }
        Log.info(choice.description)
    }

    /// The model --init-from names, read (nil without it); it excludes --backbone and --resume.
    static func initialModel(_ a: ParsedArguments, resume: Bool) throws -> InitialModel? {
        guard let path = a.string("init-from") else { return nil }
        if a.isSet("backbone") { throw a.usageError("--init-from and --backbone cannot be combined: the model to start from has its backbone") }
        if resume { throw a.usageError("--init-from starts a new run; --resume continues the one in --out (which remembers where it started)") }
        return try InitialModel(URL(fileURLWithPath: path))
    }

    /// Settings from the command line; every option falls back to its declared default. With
    /// `structure` (a checkpoint's, --init-from) the structure options are that checkpoint's.
    static func settingsFrom(_ a: ParsedArguments, structure: RewardModelConfig? = nil) throws -> TrainingSettings {
        func number(_ name: String) throws -> Float {
            guard let value = try a.double(name) else { throw a.usageError("--\(name) has no value") }
            return Float(value)
        }
        func integer(_ name: String) throws -> Int {
            guard let value = try a.int(name) else { throw a.usageError("--\(name) has no value") }
            return value
        }
        var s = TrainingSettings()
        // The soft prompt's own defaults; --vanilla (a soft prompt without users) keeps the base recipe's.
        var softPromptDefaults: Bool { s.aggregator == .softPrompt && !a.flag("vanilla") }
        if let structure {
            if let given = structureOptions.first(where: a.isSet) {
                throw a.usageError("--\(given) cannot be given with --init-from of a prm checkpoint: its structure is the checkpoint's")
            }
            s.adoptStructure(of: structure)
        } else {
            s.userModel = try choice(a, "user-model", UserModelKind.self)
            s.aggregator = try choice(a, "aggregator", Aggregator.self)
            // The linear head has one user vector; only an explicit --user-tokens overrides that.
            s.userTokens = a.isSet("user-tokens") ? try integer("user-tokens")
                : s.aggregator == .softPrompt ? TrainingSettings.softPromptUserTokens : 1
            s.clusters = try integer("clusters")
            s.sharedGeneric = !a.flag("no-shared-generic")
            s.replyCounts = try integer("reply-counts")
            s.pooling = a.isSet("pooling") ? try choice(a, "pooling", PoolingSpan.self)
                : softPromptDefaults ? .reply : .window
            s.template = a.isSet("template") ? try choice(a, "template", TextTemplate.self) : nil
            s.silentCounts = try integer("silent-counts")
            s.interactions = try integer("interactions")
            s.pooledScale = a.string("pooled-scale") == "auto" ? nil : try number("pooled-scale")
            s.maxLength = try integer("max-length")
        }
        s.alpha = try number("alpha")
        s.userSpread = try number("user-spread")
        if a.flag("vanilla") { s.makeVanilla() }
        s.epochs = try integer("epochs")
        s.learningRate = a.isSet("lr") ? try number("lr")
            : softPromptDefaults ? TrainingSettings.softPromptLearningRate : TrainingSettings().learningRate
        s.userLearningRate = try number("user-lr")
        s.mixtureLearningRateScale = try number("mixture-lr-scale")
        s.weightDecay = try number("weight-decay")
        s.warmupFraction = try number("warmup")
        s.batchSize = try integer("batch-size")
        s.microBatch = try integer("micro-batch")
        s.gradientClip = try number("grad-clip")
        s.freezeBackbone = a.flag("freeze-backbone")
        s.dropout = try number("dropout")
        let seed = try integer("seed")
        guard seed >= 0 else { throw a.usageError("--seed must be non-negative") }
        s.seed = UInt64(seed)
        s.logEvery = try integer("log-every")
        s.refitSeenUsers = !a.flag("no-refit-seen")
        guard let tau = try a.double("refit-prior-scale") else { throw a.usageError("--refit-prior-scale has no value") }
        s.refitPriorScale = tau
        s.validationFraction = try a.double("val-fraction") ?? 0
        s.validationSplit = try choice(a, "val-by", ValidationSplit.self)
        if a.isSet("val-fraction") && a.isSet("dev") { throw a.usageError("--val-fraction and --dev cannot be combined: choose one held-out set") }
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

    /// The one line saying how the data's prompts are written, so a wrong format shows before training.
    static func logTemplate(_ data: PreferenceDataset, given: TextTemplate?, from source: String) {
        let share = String(format: "%.1f%%", 100 * data.hhShare)
        Log.info(given == nil
                 ? "text template \(data.template.rawValue): detected, \(share) of the prompts are in hh turns (hh from \(Int(TextTemplate.hhShare * 100))%)"
                 : "text template \(data.template.rawValue): from \(source) (\(share) of the prompts are in hh turns)")
    }

    static func loadData(_ path: String, _ arguments: ParsedArguments, template: TextTemplate?) throws -> PreferenceDataset {
        let data = try PreferenceDataset.load(URL(fileURLWithPath: path), skipInvalid: arguments.flag("skip-invalid"), template: template)
        if data.skipped > 0 { Log.warning("\(path): skipped \(data.skipped) invalid rows") }
        return data
    }
}
