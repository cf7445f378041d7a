import Foundation
import PRMCore

/// What `--resume` needs beyond the policy checkpoint, saved beside its files (the habit of
/// `prm train`'s TrainingState):
///
///     optimizer.safetensors   AdamW's m and v in the parameter buffer's layout; metadata "step"
///     trainer_state.json      the run's own state (settings, data fingerprint, position), with "step"
///
/// model.safetensors carries the same step in its metadata, so a folder whose files come from
/// different steps (a crash between two renames) is detected instead of silently mixed.
enum ResumeState {
    static let optimizerFile = "optimizer.safetensors"
    static let stateFile = "trainer_state.json"

    /// Writes the optimizer, then the state (last: its presence means the step is complete).
    static func save<State: Encodable>(optimizer: AdamW, state: State, step: Int, to directory: URL) throws {
        try SafetensorsWriter.write([.init(name: "adamw.m", shape: [optimizer.m.count], data: optimizer.m.data),
                                     .init(name: "adamw.v", shape: [optimizer.v.count], data: optimizer.v.data)],
                                    metadata: ["step": String(step)], to: directory.appendingPathComponent(optimizerFile))
        try AtomicFile.writeJSON(state, to: directory.appendingPathComponent(stateFile))
    }

    /// The saved state of the run in `directory`.
    static func load<State: Decodable>(_ type: State.Type, from directory: URL, command: String) throws -> State {
        let url = directory.appendingPathComponent(stateFile)
        guard let data = try? Data(contentsOf: url) else {
            throw PolicyError(file: url, "not found; --resume needs a folder written by an earlier '\(command) --out'")
        }
        do {
            return try JSONDecoder().decode(State.self, from: data)
        } catch let error as DecodingError {
            throw PolicyError(file: url, "cannot read the training state: " + DecodingProblem(error).message)
        }
    }

    /// Restores AdamW after checking that model, optimizer and state were saved at the same `step`.
    static func restore(_ optimizer: AdamW, step: Int, from directory: URL) throws {
        let file = try SafetensorsFile(contentsOf: directory.appendingPathComponent(optimizerFile))
        let model = try SafetensorsFile(contentsOf: directory.appendingPathComponent("model.safetensors"))
        guard file.metadata["step"] == String(step), model.metadata["step"] == String(step) else {
            throw PolicyError(file: directory, "model (step \(model.metadata["step"] ?? "?")), optimizer (step \(file.metadata["step"] ?? "?")) "
                              + "and \(stateFile) (step \(step)) disagree; the checkpoint was interrupted while saving")
        }
        let count = optimizer.parameters.count
        let m = try file.tensor("adamw.m", expectedShape: [count]), v = try file.tensor("adamw.v", expectedShape: [count])
        try optimizer.restore(step: step, m: m.data, v: v.data, count: count)
    }
}

/// Identifies a run's data: a count and FNV-1a over its token ids, so `--resume` refuses other data.
struct DataFingerprint: Codable, Equatable {
    var count: Int
    var fingerprint: String

    init(_ parts: [[Int32]]) {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        func mix(_ value: UInt64) {
            hash ^= value
            hash = hash &* 0x100_0000_01b3
        }
        for part in parts {
            mix(UInt64(part.count))
            for id in part { mix(UInt64(UInt32(bitPattern: id))) }
        }
        count = parts.count
        fingerprint = String(hash, radix: 16)
    }
}
