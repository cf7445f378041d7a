import Foundation
import PRMCore
import PRMModel

/// An SFT run's checkpoint for `--resume`: the policy folder, and beside it as `OptimizerState`
/// the optimizer and trainer_state.json {"step", "settings", "data": {"count", "fingerprint"}, "data_file"}.
public struct SFTState: RunState {
    public var step: Int
    public var settings: SFTSettings
    public var data: DataFingerprint
    /// The training file's absolute path, so `--resume` without `--data` reads the run's own data.
    public var dataFile: String?

    enum CodingKeys: String, CodingKey { case step, settings, data, dataFile = "data_file" }

    public static let command = "prm sft"
    public static let dataName = (what: "training dialogues", unit: "dialogues")
    public static func error(_ problem: String) -> any Error { PolicyError(problem) }

    /// Saves policy, optimizer and state at the trainer's current step; the latest validation
    /// perplexity and `unigramDevPerplexity` go into the training record for readers.
    public static func save(_ trainer: SFTTrainer, dataFile: String?, unigramDevPerplexity: Double? = nil, to directory: URL) throws {
        let step = trainer.optimizer.step
        let record = SFTRecord(settings: trainer.settings, step: step, devPerplexity: trainer.log.last?.devPerplexity,
                               unigramDevPerplexity: unigramDevPerplexity)
        try PolicyCheckpoint.save(trainer.policy, users: UserTable(indices: [:]), training: RunFolder.jsonDictionary(encoding: record),
                                  metadata: ["step": String(step)], to: directory)
        try OptimizerState.save(trainer.optimizer, state: SFTState(step: step, settings: trainer.settings, data: trainer.fingerprint,
                                                                   dataFile: dataFile), to: directory)
    }

    /// Restores the optimizer into a trainer built on the checkpoint's policy, after checking
    /// that it reads the same data.
    public func restore(into trainer: SFTTrainer, from directory: URL) throws {
        try restore(trainer.optimizer, data: trainer.fingerprint, from: directory)
    }
}
