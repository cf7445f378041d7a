import Foundation
import PRMCore
import PRMModel

/// Supervised fine-tuning of a policy from scratch on dialogues, run by `StepLoop` (nanoGPT's
/// loop): set LR → forward → next-token cross-entropy on the reply tokens only → backward →
/// clip → AdamW → zero grads → log; evaluate and checkpoint at epoch ends. Every dialogue is
/// read as the generic user 0, whose vectors train with the backbone, so every user starts PPO
/// from the same policy.
public final class SFTTrainer {
    typealias Loop = StepLoop<Double, SFTLogEntry>
    public let policy: Policy
    public let settings: SFTSettings
    public let optimizer: AdamW
    let loop: Loop
    let train: [PolicySequence]
    let dev: [PolicySequence]
    public var log: [SFTLogEntry] { loop.log }
    public var onLog: ((SFTLogEntry) -> Void)? { get { loop.onLog } set { loop.onLog = newValue } }
    public var progress: ProgressBar? { get { loop.progress } set { loop.progress = newValue } }
    private let probs = GrowableBuffer(), dlogits = GrowableBuffer()

    public var stepsPerEpoch: Int { loop.plan.stepsPerEpoch }
    public var totalSteps: Int { loop.plan.totalSteps }
    /// Updates skipped because the loss or the gradient norm was not finite.
    public var skippedUpdates: Int { loop.update.skipped }

    /// `ranks`: the data-parallel ranks sharing every step's batch and the epoch-end evaluation
    /// (`Ranks.single` alone).
    public init(policy: Policy, settings: SFTSettings, train: [PolicySequence], dev: [PolicySequence] = [], ranks: Ranks = .single) throws {
        try settings.validate()
        guard !train.isEmpty else { throw PolicyError("no training dialogues") }
        self.policy = policy
        self.settings = settings
        self.train = train
        self.dev = dev
        policy.backbone.hiddenDropout.probability = settings.dropout
        let plan = StepPlan(examples: train.count, batchSize: settings.batchSize, seed: settings.seed,
                            epochs: settings.epochs, warmupFraction: settings.warmupFraction)
        if let problem = plan.problem { throw PolicyError(problem) }
        let schedule = plan.schedule(peak: settings.learningRate)
        // One rate for everything: the generic user's vectors are part of the language model here.
        optimizer = AdamW(parameters: policy.parameters, groups: Dictionary(uniqueKeysWithValues: Parameters.Group.allCases.map {
            ($0, AdamW.GroupSettings(schedule: schedule))
        }))
        optimizer.weightDecay = settings.weightDecay
        let update = GuardedUpdate(optimizer: optimizer, maxNorm: settings.gradientClip, advice: "Lower --lr or check the data")
        loop = Loop(plan: plan, update: update, logEvery: settings.logEvery, ranks: ranks)
    }

    /// Dialogues as training sequences for `policy`: the generic user, the end of each dialogue
    /// that fits the model's positions, scored on its supervised ids. Identical dialogues are kept once.
    public static func sequences(_ dialogues: [(prompt: String, reply: String)], policy: Policy) -> [PolicySequence] {
        var seen = Set<[Int32]>()
        return dialogues.compactMap { dialogue in
            let (ids, supervised) = policy.format.encodeDialogue(prompt: dialogue.prompt, reply: dialogue.reply)
            let keep = policy.window(ids, reserve: 0).count
            let tokens = Array(ids.suffix(keep)), mask = supervised.suffix(keep)
            guard seen.insert(tokens).inserted else { return nil }
            let scored = mask.enumerated().compactMap { index, trained in trained && index >= 1 ? index : nil }
            return scored.isEmpty ? nil : PolicySequence(user: 0, tokens: tokens, scored: scored)
        }
    }

    /// Runs optimizer steps from the optimizer's current step to `untilStep` (default: the end),
    /// calling `checkpoint` at each epoch end.
    public func run(untilStep: Int? = nil, checkpoint: ((Int) throws -> Void)? = nil) throws {
        try loop.run(until: untilStep, accumulate: trainingStep, entry: logEntry, evaluate: addDevLoss, summary: Self.summary,
                     checkpoint: checkpoint)
    }

    /// The cross-entropy step over this rank's shard of optimizer step `step`'s examples. The
    /// loss is a mean over the scored tokens of the whole global batch, so the ranks first sum
    /// their token counts (one small allreduce; nothing to do for a single process).
    func trainingStep(_ shard: BatchShard, step: Int) throws -> Loop.Outcome {
        // Masks are a function of (seed, step, the shard's place in the global batch): a resumed
        // run draws the same ones. Ranks draw other masks than one process (the same distribution).
        policy.backbone.hiddenDropout.seed = settings.seed &+ UInt64(step) &* 0x1_0000 &+ UInt64(shard.offset)
        let batch = shard.indices.map { train[$0] }
        var tokens = [Double(Self.targets(batch).count)]
        try loop.ranks.sum(&tokens)
        let loss = crossEntropyStep(batch, meanOver: Int(tokens[0]))
        return Loop.Outcome(loss: loss.sum, count: loss.count, tokens: policy.lastForwardTokens)
    }

    func logEntry(_ report: Loop.Report) -> SFTLogEntry {
        SFTLogEntry(step: report.step, epoch: report.epoch, loss: Float(report.loss), learningRate: optimizer.learningRate(.backbone),
                    gradientNorm: report.gradientNorm, tokensPerSecond: report.tokensPerSecond, elapsedSeconds: report.elapsedSeconds)
    }

    /// At epoch ends: cross-entropy and perplexity on the dev dialogues, when there are any. Each
    /// rank scores its contiguous share of them and the sums are added.
    func addDevLoss(to entry: inout SFTLogEntry) throws {
        guard !dev.isEmpty else { return }
        let shard = loop.ranks.shard(Array(dev.indices))
        let part = crossEntropySum(shard.indices.map { dev[$0] })
        var sums = [part.sum, Double(part.count)]
        try loop.ranks.sum(&sums)
        let devLoss = sums[0] / max(sums[1], 1)
        entry.devLoss = devLoss
        entry.devPerplexity = Foundation.exp(devLoss)
    }

    static func summary(_ entry: SFTLogEntry) -> String {
        String(format: "loss %.3f %.0f tok/s", entry.loss, entry.tokensPerSecond)
    }

    /// Forward, cross-entropy over the batch's scored tokens divided by `meanOver` (default: their
    /// count, the batch mean), backward. Returns the summed loss and the token count.
    func crossEntropyStep(_ batch: [PolicySequence], meanOver: Int? = nil) -> (sum: Double, count: Int) {
        let outputs = policy.forward(batch, training: true)
        let (R, V) = (outputs.rows, policy.vocabularySize)
        guard R > 0 else { return (0, 0) }
        let targets = Self.targets(batch)
        let p = probs.ensure(R * V)
        var losses = [Float](repeating: 0, count: R)
        CrossEntropy.forward(losses: &losses, probs: p, logits: outputs.logits, targets: targets, N: R, V: V)
        let d = dlogits.zeroed(R * V)
        CrossEntropy.backward(dlogits: d, dlosses: [Float](repeating: 1 / Float(meanOver ?? R), count: R), probs: p, targets: targets, N: R, V: V)
        policy.backward(dlogits: d, dvalues: nil)
        return (losses.reduce(0) { $0 + Double($1) }, R)
    }

    /// Mean next-token cross-entropy (nats) over the scored tokens of `sequences`, no dropout.
    public func evaluate(_ sequences: [PolicySequence]) -> Double {
        let total = crossEntropySum(sequences)
        return total.sum / Double(max(total.count, 1))
    }

    /// Next-token cross-entropy summed over the scored tokens of `sequences`, and their count.
    func crossEntropySum(_ sequences: [PolicySequence]) -> (sum: Double, count: Int) {
        var sum = 0.0, count = 0
        let V = policy.vocabularySize
        for start in stride(from: 0, to: sequences.count, by: settings.batchSize) {
            let batch = Array(sequences[start..<min(start + settings.batchSize, sequences.count)])
            let outputs = policy.forward(batch, training: false)
            let R = outputs.rows
            guard R > 0 else { continue }
            var losses = [Float](repeating: 0, count: R)
            CrossEntropy.forward(losses: &losses, probs: probs.ensure(R * V), logits: outputs.logits, targets: Self.targets(batch), N: R, V: V)
            sum += losses.reduce(0) { $0 + Double($1) }
            count += R
        }
        return (sum, count)
    }

    /// The scored token ids of each sequence, in the order `Policy.forward` returns their rows.
    static func targets(_ batch: [PolicySequence]) -> [Int32] {
        batch.flatMap { sequence in sequence.scored.map { sequence.tokens[$0] } }
    }

    /// The data's identity for `--resume`.
    var fingerprint: DataFingerprint { DataFingerprint(train) { [$0.tokens] } }
}
