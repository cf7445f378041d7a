import Foundation
import PRMCore
import PRMModel
import PRMScoring

/// The P-RM trainer: micro-steps of forward, pair loss and backward, its log entry, held-out
/// accuracy at epoch ends and the model check before a checkpoint, run by `StepLoop` (nanoGPT's
/// order: set LR → micro-steps → clip → AdamW step → zero grads → log; evaluate and checkpoint
/// at epoch ends).
///
/// Loss per comparison (App. F.2): −[α·log σ(r(x,y_c,u_i) − r(x,y_r,u_i)) + (1−α)·log σ(r(x,y_c,u_0) − r(x,y_r,u_0))].
public final class Trainer {
    typealias Loop = StepLoop<Float, TrainingLogEntry>
    public let model: RewardModel
    public let users: UserTable
    public let settings: TrainingSettings
    public let optimizer: AdamW
    let loop: Loop
    let train: [EncodedComparison]
    let dev: [EncodedComparison]
    public var log: [TrainingLogEntry] { loop.log }
    /// Called with every log entry (the CLI writes the live JSONL log and progress from it).
    public var onLog: ((TrainingLogEntry) -> Void)? { get { loop.onLog } set { loop.onLog = newValue } }
    public var progress: ProgressBar? { get { loop.progress } set { loop.progress = newValue } }

    public var stepsPerEpoch: Int { loop.plan.stepsPerEpoch }
    public var totalSteps: Int { loop.plan.totalSteps }
    /// Updates skipped because the loss or the gradient norm was not finite.
    public var skippedUpdates: Int { loop.update.skipped }
    /// The final refit of seen users' vectors, once `refitSeenUsers()` has run.
    public private(set) var refit: SeenUserRefit?
    /// The final model's scores on the training comparisons, per user, once
    /// `recordScoreStatistics()` has run.
    public private(set) var scoreStatistics: ScoreStatistics?

    /// `ranks`: the data-parallel ranks sharing every step's batch and the epoch-end evaluation
    /// (`Ranks.single` alone); `allreduce`: how they sum the gradients.
    public init(model: RewardModel, users: UserTable, settings: TrainingSettings,
                train: [EncodedComparison], dev: [EncodedComparison] = [], ranks: Ranks = .single,
                allreduce: AllreduceMode = .once) throws {
        try settings.validate()
        guard !train.isEmpty else { throw TrainingError("no training comparisons") }
        self.model = model
        self.users = users
        self.settings = settings
        self.train = train
        self.dev = dev
        let plan = StepPlan(examples: train.count, batchSize: settings.batchSize, seed: settings.seed,
                            epochs: settings.epochs, warmupFraction: settings.warmupFraction)
        if let problem = plan.problem { throw TrainingError(problem) }
        model.backbone.computesParameterGradients = !settings.freezeBackbone
        model.backbone.hiddenDropout.probability = settings.dropout
        optimizer = AdamW(parameters: model.parameters, groups: [
            .backbone: .init(schedule: plan.schedule(peak: settings.learningRate), frozen: settings.freezeBackbone),
            .user: .init(schedule: plan.schedule(peak: settings.userLearningRate), frozen: false),
            .head: .init(schedule: plan.schedule(peak: settings.userLearningRate), frozen: false),
            .mixture: .init(schedule: plan.schedule(peak: settings.userLearningRate * settings.mixtureLearningRateScale), frozen: false),
        ])
        optimizer.weightDecay = settings.weightDecay
        let update = GuardedUpdate(optimizer: optimizer, maxNorm: settings.gradientClip, advice: "Lower --lr/--user-lr or check the data")
        loop = Loop(plan: plan, update: update, logEvery: settings.logEvery, ranks: ranks, allreduce: allreduce,
                    segments: model.backbone.gradientSegments)
    }

    /// Runs optimizer steps from the optimizer's current step to `untilStep` (default: the end),
    /// calling `checkpoint` at each epoch end.
    public func run(untilStep: Int? = nil, checkpoint: ((Int) throws -> Void)? = nil) throws {
        try loop.run(until: untilStep,
                     accumulate: { shard, step in
                         accumulateGradients(shard.indices.map { train[$0] }, step: step, offset: shard.offset, total: shard.total)
                     },
                     entry: logEntry, evaluate: addDevAccuracy, summary: Self.summary,
                     beforeCheckpoint: requireScoringModel, checkpoint: checkpoint)
    }

    func logEntry(_ report: Loop.Report) -> TrainingLogEntry {
        TrainingLogEntry(step: report.step, epoch: report.epoch, loss: report.loss, accuracy: report.accuracy,
                         learningRate: optimizer.learningRate(.backbone), userLearningRate: optimizer.learningRate(.user),
                         gradientNorm: report.gradientNorm, tokensPerSecond: report.tokensPerSecond,
                         elapsedSeconds: report.elapsedSeconds, skippedUpdates: skippedUpdates, allreduceSeconds: report.allreduceSeconds)
    }

    /// At epoch ends: accuracy on the held-out comparisons, when there are any. Each rank scores
    /// its contiguous share of them and the counts are summed, so N ranks take 1/N of the time.
    func addDevAccuracy(to entry: inout TrainingLogEntry) throws {
        guard !dev.isEmpty else { return }
        let ranks = loop.ranks
        let shard = ranks.shard(Array(dev.indices))
        let cell = Evaluator(model: model, users: users).evaluate(shard.indices.map { dev[$0] }).overall
        var counts = [Double(cell.correct), Double(cell.n)]
        try ranks.sum(&counts)
        entry.devAccuracy = Float(Double(ratio: Int(counts[0]), of: Int(counts[1])))
    }

    static func summary(_ entry: TrainingLogEntry) -> String {
        String(format: "loss %.3f acc %.3f %.0f tok/s", entry.loss, entry.accuracy, entry.tokensPerSecond)
    }

    /// Whether the final stage applies: asked for, and a model whose users it can refit
    /// (linear head, individual users with trained vectors).
    public var refitsSeenUsers: Bool {
        settings.refitSeenUsers && settings.aggregator == .linearHead && settings.userModel == .individual && model.userModel.rowSize > 0
    }

    /// The stage after the last epoch: every seen user's vector refitted on their training
    /// comparisons with backbone, head and user 0 frozen (`UserAdapter.refitSeenUsers`, prior
    /// scale `settings.refitPriorScale`). The held-out accuracy (--dev or the validation split)
    /// is measured before and after. nil when `refitsSeenUsers` is false.
    @discardableResult
    public func refitSeenUsers() throws -> SeenUserRefit? {
        guard refitsSeenUsers else { return nil }
        var adapt = AdaptSettings()
        adapt.priorScale = settings.refitPriorScale
        let evaluator = dev.isEmpty ? nil : Evaluator(model: model, users: users)
        // The last epoch end measured it already, unless this process only resumed into the refit.
        let measured = log.last.flatMap { $0.step == totalSteps ? $0.devAccuracy : nil }
        let heldOutBefore = measured ?? evaluator?.accuracy(dev)
        var result = try UserAdapter(model: model, users: users, settings: adapt).refitSeenUsers(train)
        try requireScoringModel()
        result.heldOutBefore = heldOutBefore
        result.heldOutAfter = evaluator?.accuracy(dev)
        refit = result
        return result
    }

    /// The last stage: the final model's statistics of each user's scores on their training
    /// comparisons, recorded in the checkpoint for a server's drift check (`ScoreStatistics`).
    public func recordScoreStatistics() {
        scoreStatistics = Evaluator(model: model, users: users, batchSize: 64).scoreStatistics(train)
    }

    /// The data's identity for `--resume`: the comparisons' users and token ids.
    var fingerprint: DataFingerprint {
        DataFingerprint(train, label: \.userID) { [$0.explicit, $0.prompt, $0.chosen, $0.rejected] }
    }

    /// Refuses to checkpoint a model that cannot score: NaN or infinite weights, or finite ones
    /// (1e30 after a step at a huge rate) whose scores overflow (`ModelProbe`).
    func requireScoringModel() throws {
        do { try ModelProbe.check(model, users: users) } catch let error as ModelError {
            throw TrainingError("not writing a checkpoint: \(error). Lower --lr/--user-lr or check the data")
        }
    }

    /// Forward and backward over one optimizer step's comparisons in micro-batches; the gradients
    /// accumulate to those of the summed loss divided by `total` (default: the batch's mean loss).
    /// Returns the summed loss over the comparisons, those the personalized reward ordered right,
    /// and the backbone tokens run. A rank's shard of a global batch passes its `offset` in the
    /// batch and the batch's `total`: the ranks' gradients then sum to the whole batch's.
    func accumulateGradients(_ batch: [EncodedComparison], step: Int, offset: Int = 0, total batchTotal: Int? = nil) -> Loop.Outcome {
        var total = Loop.Outcome(loss: 0, count: batch.count, tokens: 0)
        let scale = 1 / Float(batchTotal ?? batch.count)
        let finished = model.parameters.onGradientsFinished
        defer { model.parameters.onGradientsFinished = finished }
        for micro in stride(from: 0, to: batch.count, by: settings.microBatch) {
            // Only the last micro-batch's backward pass finishes gradients; the earlier ones' are added to.
            model.parameters.onGradientsFinished = micro + settings.microBatch >= batch.count ? finished : nil
            // Masks are a function of (seed, step, the micro-batch's place in the global batch): a
            // resumed run draws the same ones, and so do ranks whose shards start on a micro-batch.
            model.backbone.hiddenDropout.seed = settings.seed &+ UInt64(step) &* 0x1_0000 &+ UInt64(offset + micro)
            let result = microStep(Array(batch[micro..<min(micro + settings.microBatch, batch.count)]), scale: scale)
            total.loss += result.loss
            total.correct += result.correct
            total.tokens += model.lastForwardTokens
        }
        return total
    }

    /// Forward, loss and backward for a few comparisons; gradients are scaled by `scale` so
    /// micro-steps accumulate to the batch mean.
    func microStep(_ batch: [EncodedComparison], scale: Float) -> (loss: Float, correct: Int) {
        let alpha = settings.alpha
        let useGeneric = alpha < 1
        var inputs: [RewardInput] = []
        for c in batch {
            let own = c.personalized()
            inputs += [own.chosen, own.rejected]
            if useGeneric {
                let generic = c.generic()
                inputs += [generic.chosen, generic.rejected]
            }
        }
        let rewards = model.forward(inputs, training: true)
        // Rewards come as [chosen, rejected] (personalized) then, with α < 1, [chosen, rejected] (generic)
        // per comparison: each loss term is one pair-loss call over the micro-batch.
        let perComparison = useGeneric ? 4 : 2, n = batch.count
        let terms: [(offset: Int, weight: Float)] = useGeneric ? [(0, alpha), (2, 1 - alpha)] : [(0, 1)]
        var loss: Float = 0
        var dRewards = [Float](repeating: 0, count: rewards.count)
        for term in terms where term.weight > 0 {
            let chosen = (0..<n).map { rewards[$0 * perComparison + term.offset] }
            let rejected = (0..<n).map { rewards[$0 * perComparison + term.offset + 1] }
            var losses = [Float](repeating: 0, count: n)
            var dChosen = [Float](repeating: 0, count: n), dRejected = [Float](repeating: 0, count: n)
            PairLoss.forward(losses: &losses, chosen: chosen, rejected: rejected, B: n)
            PairLoss.backward(dchosen: &dChosen, drejected: &dRejected, dlosses: [Float](repeating: term.weight * scale, count: n),
                              chosen: chosen, rejected: rejected, B: n)
            loss += term.weight * losses.reduce(0, +)
            for i in 0..<n {
                dRewards[i * perComparison + term.offset] += dChosen[i]
                dRewards[i * perComparison + term.offset + 1] += dRejected[i]
            }
        }
        let correct = (0..<n).filter { rewards[$0 * perComparison] > rewards[$0 * perComparison + 1] }.count
        model.backward(dRewards: dRewards)
        return (loss, correct)
    }
}
