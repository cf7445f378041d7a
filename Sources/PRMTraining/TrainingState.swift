import Foundation
import PRMCore
import PRMModel

/// What `prm train --resume` needs beyond the model, saved beside the checkpoint's files as
/// `OptimizerState`: AdamW's moments, and trainer_state.json
/// {"step", "settings", "data": {"count", "fingerprint"}, "data_file"}.
public struct TrainingState: RunState {
    public var step: Int
    public var settings: TrainingSettings
    public var data: DataFingerprint
    /// The training file's absolute path, so `--resume` without `--data` reads the run's own
    /// data. Optional: states saved before it was recorded still load.
    public var dataFile: String?

    enum CodingKeys: String, CodingKey { case step, settings, data, dataFile = "data_file" }

    public static let command = "prm train"
    public static let dataName = (what: "training data", unit: "comparisons")
    public static func error(_ problem: String) -> any Error { TrainingError(problem) }

    /// Saves model, optimizer and state for step `trainer.optimizer.step`; `dataFile` is the
    /// training file the run reads, recorded for `--resume`.
    public static func save(_ trainer: Trainer, dataFile: String? = nil, to directory: URL) throws {
        let step = trainer.optimizer.step
        let record = RewardModelRecord(settings: trainer.settings, step: step, refitSeen: trainer.refit,
                                       scoreStatistics: trainer.scoreStatistics)
        try Checkpoint.save(trainer.model, users: trainer.users, training: record.merged(), metadata: ["step": String(step)], to: directory)
        let state = TrainingState(step: step, settings: trainer.settings, data: trainer.fingerprint, dataFile: dataFile)
        try OptimizerState.save(trainer.optimizer, state: state, to: directory)
    }

    /// Restores optimizer state into a trainer built from the checkpoint in `directory`, after
    /// checking that model, optimizer and data all belong to the same run and step.
    public func restore(into trainer: Trainer, from directory: URL) throws {
        try restore(trainer.optimizer, data: trainer.fingerprint, from: directory)
    }
}
