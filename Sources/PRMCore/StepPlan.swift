/// How long an epoch-based run is and how its learning rate moves: the batches of every step,
/// steps per epoch, total steps and the warm-up schedule, computed once for the reward-model
/// and SFT trainers (their inits build the optimizer from it, their loops run it).
public struct StepPlan {
    /// The examples of every step, a function of seed and step (what makes `--resume` exact).
    public let batches: EpochBatches
    public let epochs: Int
    /// The share of all steps spent warming up (nanoGPT's `warmup_iters` as a fraction).
    public let warmupFraction: Float

    public init(batches: EpochBatches, epochs: Int, warmupFraction: Float) {
        self.batches = batches
        self.epochs = epochs
        self.warmupFraction = warmupFraction
    }

    public var stepsPerEpoch: Int { batches.stepsPerEpoch }
    /// Whether `totalSteps` fits the step counter; checked before it is computed, which would
    /// trap on overflow for an absurd `--epochs`.
    public var fitsStepCounter: Bool { epochs <= Int(Int32.max) / stepsPerEpoch }
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
