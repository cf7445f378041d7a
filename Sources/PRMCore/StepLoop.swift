import Foundation

/// The optimizer step of the epoch-based trainers (reward model, SFT) as a `TrainingLoop` unit,
/// in nanoGPT's order: the step's examples → forward, loss, backward → clip and step, or skip a
/// non-finite step (`GuardedUpdate`) → zero grads → log → progress → evaluate and checkpoint at
/// epoch ends.
///
/// The loop owns the order, the batches and every cadence, so the trainers cannot drift apart;
/// a trainer supplies only what differs: its passes over a step's examples, its log entry, its
/// epoch-end evaluation and its check before a checkpoint. Steps run from the optimizer's
/// `step`, and a step's examples are a function of seed and step, so a run restored at any step
/// takes the batches an uninterrupted one would. `Loss` is the type a trainer sums its loss in
/// (the windowed mean is taken in it, as each trainer did before the loop was shared).
///
/// Across data-parallel `Ranks` (`mpirun -np N prm train`), each rank computes its shard of
/// every step's global batch, the loop sums the flat gradient buffer and the step's outcome over
/// the ranks (one allreduce each), and every rank then takes the same update from the same sums,
/// so the weights stay identical without being sent again.
public final class StepLoop<Loss: BinaryFloatingPoint, Entry> {
    /// What one step's passes report.
    public struct Outcome {
        /// Summed over the step's `count` terms (comparisons, tokens).
        public var loss: Loss
        public var count: Int
        /// Backbone tokens run, for tokens per second.
        public var tokens: Int
        /// Terms the model got right (pairs ordered right); 0 for a trainer that counts none.
        public var correct: Int

        public init(loss: Loss, count: Int, tokens: Int, correct: Int = 0) {
            self.loss = loss
            self.count = count
            self.tokens = tokens
            self.correct = correct
        }

        /// Loss per term; a step without terms has loss 0 rather than 0/0.
        var meanLoss: Loss { loss / Loss(max(count, 1)) }
        var accuracy: Float { Float(correct) / Float(max(count, 1)) }

        static var zero: Outcome { Outcome(loss: 0, count: 0, tokens: 0) }

        /// The outcome summed over all ranks.
        func summed(over ranks: Ranks) throws -> Outcome {
            var values = [Double(loss), Double(count), Double(tokens), Double(correct)]
            try ranks.sum(&values)
            return Outcome(loss: Loss(values[0]), count: Int(values[1]), tokens: Int(values[2]), correct: Int(values[3]))
        }

        static func += (window: inout Outcome, step: Outcome) {
            window.loss += step.loss
            window.count += step.count
            window.tokens += step.tokens
            window.correct += step.correct
        }
    }

    /// The loop's numbers at a log point, from which a trainer builds its entry.
    public struct Report {
        /// Updates done.
        public let step: Int
        public let epoch: Double
        /// Mean loss per term since the previous entry.
        public let loss: Loss
        /// Share of the terms since the previous entry that were right.
        public let accuracy: Float
        /// This step's gradient norm before clipping.
        public let gradientNorm: Float
        /// Over the whole of this `run`.
        public let tokensPerSecond: Double
        public let elapsedSeconds: Double
        /// Seconds of this `run` spent summing gradients over the ranks; nil for one process.
        public let allreduceSeconds: Double?
    }

    public let plan: StepPlan
    public let update: GuardedUpdate
    /// The ranks the steps' batches are shared among (`Ranks.single`: this process alone).
    public let ranks: Ranks
    let logEvery: Int
    /// Order, log, progress and checkpoints, as every trainer runs them.
    let loop = TrainingLoop<Entry>()
    public var log: [Entry] { loop.log }
    /// Called with every log entry (the CLI writes the live JSONL log from it).
    public var onLog: ((Entry) -> Void)? { get { loop.onLog } set { loop.onLog = newValue } }
    public var progress: ProgressBar? { get { loop.progress } set { loop.progress = newValue } }

    /// How the gradients are summed over the ranks, and for `.overlapped` the segments the
    /// backward pass reports (`Backbone.gradientSegments`).
    let allreduce: AllreduceMode
    let segments: [Range<Int>]
    /// Whether the first overlapped step has said how much of the sum it overlapped.
    private var overlapReported = false

    public init(plan: StepPlan, update: GuardedUpdate, logEvery: Int, ranks: Ranks = .single,
                allreduce: AllreduceMode = .once, segments: [Range<Int>] = []) {
        self.plan = plan
        self.update = update
        self.ranks = ranks
        self.allreduce = allreduce
        self.segments = segments
        self.logEvery = logEvery
    }

    var optimizer: AdamW { update.optimizer }

    /// Runs optimizer steps from the optimizer's current step to `untilStep` (default: the end)
    /// in `TrainingLoop`, one step a unit, checkpointing at epoch ends.
    /// - Parameters:
    ///   - accumulate: forward, loss and backward over this rank's shard of step `step`'s
    ///     examples, gradients accumulated to those of the loss summed over the shard divided
    ///     by the global batch's size (so the ranks' sum is the step's mean loss's gradient);
    ///     returns the shard's outcome. It may throw (a trainer that sums a normaliser over
    ///     the ranks first).
    ///   - entry: the trainer's log entry from the loop's numbers.
    ///   - evaluate: adds the epoch-end evaluation to an entry (every rank calls it: a trainer
    ///     may share the evaluation among them).
    ///   - summary: the entry as the progress bar shows it.
    ///   - beforeCheckpoint: throws to refuse a checkpoint.
    ///   - checkpoint: called at each epoch end with the updates done.
    public func run(until untilStep: Int?,
                    accumulate: (_ shard: BatchShard, _ step: Int) throws -> Outcome,
                    entry: (Report) -> Entry,
                    evaluate: (inout Entry) throws -> Void,
                    summary: (Entry) -> String,
                    beforeCheckpoint: () throws -> Void = {},
                    checkpoint: ((Int) throws -> Void)?) throws {
        let end = min(untilStep ?? plan.totalSteps, plan.totalSteps)
        let logs = StepCadence(every: logEvery, last: end)
        let start = Date(), reducedBefore = ranks.reduceSeconds
        var batches = plan.batches
        // The window feeds the next entry's loss and accuracy; the total, tokens per second.
        var window = Outcome.zero, total = Outcome.zero
        optimizer.parameters.zeroGrad()
        try loop.run(done: { optimizer.step }, end: end, unit: {
            let step = optimizer.step
            let outcome = try accumulateAndSum(accumulate, step: step, batches: &batches)
            window += outcome
            total += outcome
            let norm = try update.apply(loss: Float(outcome.meanLoss), label: "step \(step + 1)")
            optimizer.parameters.zeroGrad()
            let done = optimizer.step
            let epochEnds = plan.endsEpoch(done)
            guard logs.isDue(done) || epochEnds else { return nil }
            let elapsed = Date().timeIntervalSince(start)
            var next = entry(Report(step: done, epoch: Double(done) / Double(plan.stepsPerEpoch), loss: window.meanLoss,
                                    accuracy: window.accuracy, gradientNorm: norm,
                                    tokensPerSecond: Double(total.tokens) / max(elapsed, 1e-9), elapsedSeconds: elapsed,
                                    allreduceSeconds: ranks.isDistributed ? ranks.reduceSeconds - reducedBefore : nil))
            if epochEnds { try evaluate(&next) }
            window = .zero
            return next
        }, summary: summary, checkpointDue: plan.endsEpoch, beforeCheckpoint: beforeCheckpoint, checkpoint: checkpoint)
    }

    /// This rank's shard of step `step`, then the gradients and the outcome summed over the ranks:
    /// with `.overlapped`, the gradient segments' sums start during the backward pass. The
    /// gradients are complete before the outcome's sum starts, so every rank starts its
    /// collectives in the same order even when its shard is empty.
    func accumulateAndSum(_ accumulate: (BatchShard, Int) throws -> Outcome, step: Int, batches: inout EpochBatches) throws -> Outcome {
        let parameters = optimizer.parameters
        let shard = ranks.shard(batches.indices(step: step))
        guard allreduce == .overlapped, let overlapped = ranks.overlappedSum(parameters.grads, segments: segments) else {
            let outcome = try accumulate(shard, step)
            try ranks.sum(parameters.grads)
            return try outcome.summed(over: ranks)
        }
        parameters.onGradientsFinished = { overlapped.finished($0) }
        defer { parameters.onGradientsFinished = nil }
        let outcome = try accumulate(shard, step)
        let startedDuringBackward = overlapped.started
        try overlapped.finish()
        if !overlapReported {
            overlapReported = true
            Log.info("gradient allreduce overlapped with the backward pass: \(startedDuringBackward) of \(overlapped.pieces) "
                     + "segments started before it ended")
        }
        return try outcome.summed(over: ranks)
    }
}
