import Foundation
import PRMCore
import PRMModel

/// What `--resume` needs beyond the model: AdamW's moments and step, the settings, and a
/// fingerprint of the training data, saved beside the checkpoint's files.
///
///     optimizer.safetensors   m and v, in the parameter buffer's layout; metadata "step"
///     trainer_state.json      {"step", "settings", "data": {"count", "fingerprint"}, "data_file"}
///
/// model.safetensors carries the same step in its metadata, so a folder whose files come from
/// different steps (a crash between two renames) is detected instead of silently mixed.
public enum TrainingState {
    public static let optimizerFile = "optimizer.safetensors"
    public static let stateFile = "trainer_state.json"

    struct Saved: Codable {
        var step: Int
        var settings: TrainingSettings
        var data: DataFingerprint
        /// The training file's absolute path, so `--resume` without `--data` reads the run's own
        /// data. Optional: states saved before it was recorded still load.
        var dataFile: String?

        enum CodingKeys: String, CodingKey { case step, settings, data, dataFile = "data_file" }
    }

    struct DataFingerprint: Codable, Equatable {
        var count: Int
        var fingerprint: String
    }

    /// Saves model, optimizer and state for step `trainer.optimizer.step`; `dataFile` is the
    /// training file the run reads, recorded for `--resume`.
    public static func save(_ trainer: Trainer, dataFile: String? = nil, to directory: URL) throws {
        let step = trainer.optimizer.step
        var training: [String: Any] = ["settings": try RunFolder.jsonDictionary(encoding: trainer.settings), "step": step]
        if let refit = trainer.refit { training[refitKey] = try RunFolder.jsonDictionary(encoding: refit) }
        try Checkpoint.save(trainer.model, users: trainer.users, training: training, metadata: ["step": String(step)], to: directory)
        let o = trainer.optimizer
        try SafetensorsWriter.write([.init(name: "adamw.m", shape: [o.m.count], data: o.m.data),
                                     .init(name: "adamw.v", shape: [o.v.count], data: o.v.data)],
                                    metadata: ["step": String(step)], to: directory.appendingPathComponent(optimizerFile))
        let saved = Saved(step: step, settings: trainer.settings, data: fingerprint(trainer.train), dataFile: dataFile)
        try AtomicFile.writeJSON(saved, to: directory.appendingPathComponent(stateFile))
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
        let optimizerURL = directory.appendingPathComponent(optimizerFile)
        let file = try SafetensorsFile(contentsOf: optimizerURL)
        let modelFile = try SafetensorsFile(contentsOf: directory.appendingPathComponent("model.safetensors"))
        guard file.metadata["step"] == String(saved.step), modelFile.metadata["step"] == String(saved.step) else {
            throw TrainingError("\(directory.path): model (step \(modelFile.metadata["step"] ?? "?")), optimizer (step \(file.metadata["step"] ?? "?")) "
                                + "and trainer_state.json (step \(saved.step)) disagree; the checkpoint was interrupted while saving")
        }
        let current = fingerprint(trainer.train)
        guard current == saved.data else {
            throw TrainingError("\(directory.path): the training data differ from the run being resumed "
                                + "(\(current.count) comparisons vs \(saved.data.count)); resume with the same --data (and --limit)")
        }
        let count = trainer.model.parameters.count
        let m = try file.tensor("adamw.m", expectedShape: [count]), v = try file.tensor("adamw.v", expectedShape: [count])
        try trainer.optimizer.restore(step: saved.step, m: m.data, v: v.data, count: count)
    }

    static func loadSaved(_ directory: URL) throws -> Saved {
        let url = directory.appendingPathComponent(stateFile)
        guard let data = try? Data(contentsOf: url) else {
            throw TrainingError("\(url.path): not found; --resume needs a folder written by an earlier 'prm train --out'")
        }
        do {
            return try JSONDecoder().decode(Saved.self, from: data)
        } catch {
            throw TrainingError("\(url.path): cannot read training state: \(error)")
        }
    }

    /// FNV-1a over users and token ids: the same data always gives the same string.
    static func fingerprint(_ data: [EncodedComparison]) -> DataFingerprint {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        func mix(_ value: UInt64) {
            hash ^= value
            hash = hash &* 0x100_0000_01b3
        }
        for c in data {
            for byte in c.userID.utf8 { mix(UInt64(byte)) }
            for part in [c.explicit, c.prompt, c.chosen, c.rejected] {
                mix(UInt64(part.count))
                for id in part { mix(UInt64(UInt32(bitPattern: id))) }
            }
        }
        return DataFingerprint(count: data.count, fingerprint: String(hash, radix: 16))
    }
}
