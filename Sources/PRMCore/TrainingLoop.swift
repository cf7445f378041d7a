/// The outer loop of every trainer: `StepLoop`'s optimizer steps (`prm train`, `prm sft`) and
/// `PPOTrainer`'s iterations of rollout and minibatch updates (`prm ppo`). From the unit the
/// run is at to its end, in order: one unit of work → its log entry, when it made one (kept and
/// passed to `onLog`) → the progress bar → when due, the check before a checkpoint and the
/// checkpoint. Units are counted by the trainer's own counter (AdamW's step, PPO's iteration),
/// which `--resume` restores, so a resumed run continues where the saved one stopped.
public final class TrainingLoop<Entry> {
    public private(set) var log: [Entry] = []
    /// Called with every log entry (the CLI writes the live JSONL log from it).
    public var onLog: ((Entry) -> Void)?
    public var progress: ProgressBar?

    public init() {}

    /// Runs units while `done()` is below `end`.
    /// - Parameters:
    ///   - unit: one unit of work; returns its log entry, or nil when it logs none.
    ///   - summary: the latest entry as the progress bar shows it.
    ///   - checkpointDue: whether a checkpoint is due once `done()` units are done.
    ///   - beforeCheckpoint: throws to refuse a checkpoint.
    ///   - checkpoint: writes one, given the units done.
    public func run(done: () -> Int, end: Int, unit: () throws -> Entry?, summary: (Entry) -> String,
                    checkpointDue: (Int) -> Bool, beforeCheckpoint: () throws -> Void = {},
                    checkpoint: ((Int) throws -> Void)?) throws {
        while done() < end {
            if let entry = try unit() {
                log.append(entry)
                onLog?(entry)
            }
            progress?.advance(by: 1, extra: log.last.map(summary) ?? "")
            let count = done()
            if checkpointDue(count), let checkpoint {
                try beforeCheckpoint()
                try checkpoint(count)
            }
        }
    }
}
