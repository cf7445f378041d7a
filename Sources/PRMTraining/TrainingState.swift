import Foundation
import PRMCore
import PRMModel

/// What `prm train --resume` needs beyond the model, saved beside the checkpoint's files as
/// `OptimizerState`: AdamW's moments, and trainer_state.json
/// {"step", "settings", "data": {"count", "fingerprint"}, "data_file"}.
public enum TrainingState {
    struct Saved: Codable {
        var step: Int
        var settings: TrainingSettings
        var data: DataFingerprint
        /// The training file's absolute path, so `--resume` without `--data` reads the run's own
        /// data. Optional: states saved before it was recorded still load.
        var dataFile: String?

        enum CodingKeys: String, CodingKey { case step, settings, data, dataFile = "data_file" }
    }

    /// Saves model, optimizer and state for step `trainer.optimizer.step`; `dataFile` is the
    /// training file the run reads, recorded for `--resume`.
    public static func save(_ trainer: Trainer, dataFile: String? = nil, to directory: URL) throws {
        let step = trainer.optimizer.step
        var training: [String: Any] = ["settings": try RunFolder.jsonDictionary(encoding: trainer.settings), "step": step]
        if let refit = trainer.refit { training[refitKey] = try RunFolder.jsonDictionary(encoding: refit) }
        try Checkpoint.save(trainer.model, users: trainer.users, training: training, metadata: ["step": String(step)], to: directory)
        let saved = Saved(step: step, settings: trainer.settings, data: fingerprint(trainer.train), dataFile: dataFile)
        try OptimizerState.save(trainer.optimizer, step: step, state: saved, to: directory)
    }

    /// The checkpoint's training record of the final refit of seen users (`Trainer.refitSeenUsers`).
    public static let refitKey = "refit_seen"

    /// The settings a run in `directory` was started with.
    public static func settings(in directory: URL) throws -> TrainingSettings {
        try loadSaved(directory).settings
    }

    /// The training file a run in `directory` was saved with, if it was recorded.
    public static func dataFile(in directory: URL) throws -> String? {
        try loadSaved(directory).dataFile
    }

    /// Restores optimizer state into a trainer built from the checkpoint in `directory`, after
    /// checking that model, optimizer and data all belong to the same run and step.
    public static func restore(_ trainer: Trainer, from directory: URL) throws {
        let saved = try loadSaved(directory)
        let current = fingerprint(trainer.train)
        guard current == saved.data else {
            throw TrainingError("\(directory.path): the training data differ from the run being resumed "
                                + "(\(current.count) comparisons vs \(saved.data.count)); resume with the same --data (and --limit)")
        }
        try OptimizerState.restore(trainer.optimizer, step: saved.step, from: directory) { TrainingError("\(directory.path): \($0)") }
    }

    static func loadSaved(_ directory: URL) throws -> Saved {
        let url = directory.appendingPathComponent(OptimizerState.stateFile)
        guard let data = try? Data(contentsOf: url) else {
            throw TrainingError("\(url.path): not found; --resume needs a folder written by an earlier 'prm train --out'")
        }
        do {
            return try JSONDecoder().decode(Saved.self, from: data)
        } catch {
            throw TrainingError("\(url.path): cannot read training state: \(error)")
        }
    }

    /// The comparisons' users and token ids.
    static func fingerprint(_ data: [EncodedComparison]) -> DataFingerprint {
        DataFingerprint(data, label: \.userID) { [$0.explicit, $0.prompt, $0.chosen, $0.rejected] }
    }
}
