import Foundation
import PRMCore
import PRMModel

/// An SFT run's checkpoint for `--resume`: the policy folder, and beside it as `OptimizerState`
/// the optimizer and trainer_state.json {"step", "settings", "data": {"count", "fingerprint"}, "data_file"}.
public struct SFTState: Codable {
    public var step: Int
    public var settings: SFTSettings
    var data: DataFingerprint
    /// The training file's absolute path, so `--resume` without `--data` reads the run's own data.
    public var dataFile: String?

    enum CodingKeys: String, CodingKey { case step, settings, data, dataFile = "data_file" }

    /// Saves policy, optimizer and state at the trainer's current step; `summary` (perplexities)
    /// goes into config.json's "prm.training" for readers.
    public static func save(_ trainer: SFTTrainer, dataFile: String?, summary: [String: Any] = [:], to directory: URL) throws {
        let step = trainer.optimizer.step
        let settings = try RunFolder.jsonDictionary(encoding: trainer.settings)
        try PolicyCheckpoint.save(trainer.policy, users: UserTable(indices: [:]),
                                  training: summary.merging(["stage": "sft", "settings": settings, "step": step]) { $1 },
                                  metadata: ["step": String(step)], to: directory)
        let state = SFTState(step: step, settings: trainer.settings, data: trainer.fingerprint, dataFile: dataFile)
        try OptimizerState.save(trainer.optimizer, step: step, state: state, to: directory)
    }

    /// The state of the run saved in `directory`.
    public static func load(from directory: URL) throws -> SFTState {
        let url = directory.appendingPathComponent(OptimizerState.stateFile)
        guard let data = try? Data(contentsOf: url) else {
            throw PolicyError(file: url, "not found; --resume needs a folder written by an earlier 'prm sft --out'")
        }
        do {
            return try JSONDecoder().decode(SFTState.self, from: data)
        } catch let error as DecodingError {
            throw PolicyError(file: url, "cannot read the training state: " + DecodingProblem(error).message)
        }
    }

    /// Restores the optimizer into a trainer built on the checkpoint's policy, after checking
    /// that it reads the same data.
    public func restore(into trainer: SFTTrainer, from directory: URL) throws {
        guard trainer.fingerprint == data else {
            throw PolicyError(file: directory, "the training dialogues differ from the run being resumed "
                              + "(\(trainer.fingerprint.count) vs \(data.count)); resume with the same --data (and --limit)")
        }
        try OptimizerState.restore(trainer.optimizer, step: step, from: directory) { PolicyError(file: directory, $0) }
    }
}
