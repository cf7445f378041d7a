import Foundation
import PRMCore
import PRMModel
import PRMPolicy
import PRMTraining

/// `prm sft`: train a GPT-2-style policy from scratch on the dialogues of preference data.
enum SftCommand: Subcommand {
    /// The settings' own defaults, shown in the help and used when an option is absent.
    static let defaults = SFTSettings()

    static let spec = CommandSpec(
        name: "sft",
        abstract: "Train a small GPT-2-style policy from scratch on dialogues (supervised fine-tuning).",
        discussion: """
        Every row of --data gives two dialogues, its prompt with each of its two replies; the policy \
        learns next-token prediction on the assistant turns only (the text and the end-of-reply token \
        of every assistant turn, the final reply's included), read as the generic user 0. Dialogues \
        are written in the format of data/policy/README.md with the vocabulary --tokenizer; a \
        dialogue longer than --positions keeps its end.

        At each epoch end the validation perplexity over --dev's assistant turns is logged beside a \
        unigram baseline (training-reply token frequencies, add-one smoothing), and --out receives a \
        prm-policy-v1 checkpoint (config.json, model.safetensors, tokenizer.json, users.json), the \
        optimizer state for --resume and sft_log.jsonl.

        Examples:
          prm sft --out runs/sft
          prm sft --out runs/sft --resume
          mpirun -np 2 prm sft --out runs/sft --threads 1      (2 data-parallel ranks, as for prm train)
        """,
        options: [
            .value("data", placeholder: "FILE", help: "Dialogues: preference JSONL (prompt, chosen, rejected).", default: DefaultData.trainFile),
            .value("dev", placeholder: "FILE", help: "Validation dialogues for perplexity (same format).", default: DefaultData.devFile),
            .value("tokenizer", placeholder: "FILE", help: "Byte-level BPE with the role tokens.", default: "data/policy/tokenizer.json"),
            .value("out", placeholder: "DIR", help: "Policy checkpoint folder (required)."),
            .value("layers", placeholder: "N", help: "Transformer blocks.", default: "\(defaults.layers)"),
            .value("heads", placeholder: "N", help: "Attention heads.", default: "\(defaults.heads)"),
            .value("embedding", placeholder: "C", help: "Width of the hidden states.", default: "\(defaults.embedding)"),
            .value("positions", placeholder: "N", help: "Context length: user vectors, prompt and reply.", default: "\(defaults.positions)"),
            .value("user-tokens", placeholder: "N", help: "T_u, user vectors before the prompt.", default: "\(defaults.userTokens)"),
            .value("epochs", placeholder: "N", help: "Passes over the dialogues.", default: "\(defaults.epochs)"),
            .value("lr", placeholder: "LR", help: "Peak learning rate (warm-up, cosine to a tenth).", default: "\(defaults.learningRate)"),
            .value("weight-decay", placeholder: "W", help: "AdamW decoupled weight decay (matrices only).", default: "\(defaults.weightDecay)"),
            .value("warmup", placeholder: "FRACTION", help: "Warm-up share of all steps.", default: "\(defaults.warmupFraction)"),
            .value("batch-size", placeholder: "N", help: "Dialogues per optimizer step.", default: "\(defaults.batchSize)"),
            .value("grad-clip", placeholder: "NORM", help: "Clip the global gradient norm.", default: "\(defaults.gradientClip)"),
            .value("dropout", placeholder: "P", help: "Hidden-state dropout while training.", default: "\(defaults.dropout)"),
            .value("seed", placeholder: "N", help: "Seed for initialisation, data order and dropout.", default: "\(defaults.seed)"),
            .value("log-every", placeholder: "N", help: "Optimizer steps between log lines.", default: "\(defaults.logEvery)"),
            DataParallel.threadsOption,
            .value("limit", placeholder: "N", help: "Use only the first N rows of --data (quick runs)."),
            .flag("resume", help: "Continue the run saved in --out exactly (its settings and, unless --data is given, its data file)."),
        ])

    static func run<Out: TextOutputStream>(_ arguments: ParsedArguments, output _: inout Out) throws -> Int32 {
        try DataParallel.run(arguments) { try train(arguments, ranks: $0) }
    }

    /// The run as one of `ranks`: every rank trains its shards, rank 0 alone writes --out.
    static func train(_ arguments: ParsedArguments, ranks: Ranks) throws -> Int32 {
        let run = try TrainingRun<SFTState>(arguments, name: "sft")
        let settings = try run.settings { try settingsFrom(arguments) }
        let dataFile = try run.dataFile(arguments)
        let rows = try run.comparisons(arguments) { try PreferenceDataset.load(URL(fileURLWithPath: $0)) }.comparisons
        let devRows = try PreferenceDataset.load(URL(fileURLWithPath: try arguments.require("dev"))).comparisons

        let policy = run.resume ? try PolicyCheckpoint.load(run.out).policy
            : try settings.makePolicy(tokenizerFile: URL(fileURLWithPath: arguments.string("tokenizer", default: "data/policy/tokenizer.json")))
        let train = SFTTrainer.sequences(dialogues(rows), policy: policy), dev = SFTTrainer.sequences(dialogues(devRows), policy: policy)
        let trainer = try SFTTrainer(policy: policy, settings: settings, train: train, dev: dev, ranks: ranks)
        let unigram = UnigramBaseline(train, vocabularySize: policy.vocabularySize).perplexity(dev)
        Log.info("\(train.count) training dialogues (\(train.reduce(0) { $0 + $1.scored.count }) reply tokens), \(dev.count) validation; "
                 + "\(policy.parameters.count) parameters; unigram baseline: validation perplexity \(String(format: "%.1f", unigram))")
        if let state = run.state {
            try state.restore(into: trainer, from: run.out)
            guard run.continues(at: trainer.optimizer.step, of: trainer.totalSteps, unit: "step") else { return 0 }
        }
        // Every rank starts from rank 0's weights; the other ranks compute their shards and write nothing.
        try ranks.broadcast(policy.parameters)
        guard ranks.isLeader else {
            try trainer.run()
            return 0
        }
        let (logWriter, progress) = try run.start(remaining: trainer.totalSteps - trainer.optimizer.step, unit: "step")
        trainer.progress = progress
        trainer.onLog = { entry in
            logWriter.write(entry)
            if let perplexity = entry.devPerplexity {
                Log.info(String(format: "step %d epoch %.2f: loss %.3f, validation perplexity %.2f (unigram %.1f)",
                                entry.step, entry.epoch, entry.loss, perplexity, unigram))
            }
        }
        try trainer.run { _ in try SFTState.save(trainer, dataFile: dataFile.absolute, unigramDevPerplexity: unigram, to: run.out) }
        run.finish(progress)
        return 0
    }

    /// Each comparison's prompt with each of its replies.
    static func dialogues(_ rows: [Comparison]) -> [(prompt: String, reply: String)] {
        rows.flatMap { [($0.prompt, $0.chosen), ($0.prompt, $0.rejected)] }
    }

    static func settingsFrom(_ a: ParsedArguments) throws -> SFTSettings {
        var s = SFTSettings()
        s.layers = try a.int("layers", default: s.layers)
        s.heads = try a.int("heads", default: s.heads)
        s.embedding = try a.int("embedding", default: s.embedding)
        s.positions = try a.int("positions", default: s.positions)
        s.userTokens = try a.int("user-tokens", default: s.userTokens)
        s.epochs = try a.int("epochs", default: s.epochs)
        s.learningRate = Float(try a.double("lr", default: Double(s.learningRate)))
        s.weightDecay = Float(try a.double("weight-decay", default: Double(s.weightDecay)))
        s.warmupFraction = Float(try a.double("warmup", default: Double(s.warmupFraction)))
        s.batchSize = try a.int("batch-size", default: s.batchSize)
        s.gradientClip = Float(try a.double("grad-clip", default: Double(s.gradientClip)))
        s.dropout = Float(try a.double("dropout", default: Double(s.dropout)))
        let seed = try a.int("seed", default: Int(s.seed))
        guard seed >= 0 else { throw a.usageError("--seed must be non-negative") }
        s.seed = UInt64(seed)
        s.logEvery = try a.count("log-every")
        do { try s.validate() } catch let error as PolicyError { throw a.usageError(error.description) }
        return s
    }
}
