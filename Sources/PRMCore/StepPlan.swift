/// How long an epoch-based run is and how its learning rate moves: the batches of every step,
/// steps per epoch, total steps and the warm-up schedule, computed once for the reward-model
/// and SFT trainers (their inits build the optimizer from it, their loops run it).
public struct StepPlan {
    /// The examples of every step, a function of seed and step (what makes `--resume` exact).
    public let batches: EpochBatches
    public let epochs: Int
    /// The share of all steps spent warming up (nanoGPT's `warmup_iters` as a fraction).
    public let warmupFraction: Float

    /// `examples` shuffled afresh each epoch from `seed`, `batchSize` a step.
    public init(examples: Int, batchSize: Int, seed: UInt64, epochs: Int, warmupFraction: Float) {
        batches = EpochBatches(count: examples, batchSize: batchSize, seed: seed)
        self.epochs = epochs
        self.warmupFraction = warmupFraction
    }

    /// Why the plan cannot run, or nil: an absurd `--epochs` would overflow the step counter
    /// (checked before `totalSteps`, which would trap).
    public var problem: String? {
        epochs <= Int(Int32.max) / stepsPerEpoch ? nil : "--epochs \(epochs) × \(stepsPerEpoch) steps per epoch overflows the step counter"
    }

    public var stepsPerEpoch: Int { batches.stepsPerEpoch }
    public var totalSteps: Int { stepsPerEpoch * epochs }
    public var warmupSteps: Int { Int((Float(totalSteps) * warmupFraction).rounded()) }

    /// Whether the step that brings the count of updates to `done` ends an epoch (the last
    /// step of the run ends one too).
    public func endsEpoch(_ done: Int) -> Bool {
        StepCadence(every: stepsPerEpoch, last: totalSteps).isDue(done)
    }

    /// Warm-up to `peak`, cosine decay to the floor 0.1 · peak (nanoGPT's) at the run's end.
    public func schedule(peak: Float) -> LearningRateSchedule {
        LearningRateSchedule(peak: peak, warmupSteps: warmupSteps, totalSteps: totalSteps, floorFraction: 0.1)
    }
}
