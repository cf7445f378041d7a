import Foundation

/// What `--resume` needs beyond a checkpoint folder, saved beside its files by `prm train` and
/// `prm sft` alike:
///
///     optimizer.safetensors   AdamW's m and v, in the parameter buffer's layout; metadata "step"
///     trainer_state.json      the run's own state (its step, settings, data fingerprint)
///
/// model.safetensors carries the same step in its metadata, so a folder whose files come from
/// different steps (a crash between two renames) is detected instead of silently mixed.
public enum OptimizerState {
    public static let optimizerFile = "optimizer.safetensors"
    public static let stateFile = "trainer_state.json"

    /// Writes the moments, then the run's state: last, because its presence means the step is complete.
    public static func save<State: Encodable>(_ optimizer: AdamW, step: Int, state: State, to directory: URL) throws {
        try SafetensorsWriter.write([.init(name: "adamw.m", shape: [optimizer.m.count], data: optimizer.m.data),
                                     .init(name: "adamw.v", shape: [optimizer.v.count], data: optimizer.v.data)],
                                    metadata: ["step": String(step)], to: directory.appendingPathComponent(optimizerFile))
        try AtomicFile.writeJSON(state, to: directory.appendingPathComponent(stateFile))
    }

    /// Restores AdamW after checking that model, optimizer and state were all saved at `step`;
    /// a mismatch is thrown as `error(problem)`, so each command reports it in its own error type.
    public static func restore(_ optimizer: AdamW, step: Int, from directory: URL, error: (String) -> any Error) throws {
        let file = try SafetensorsFile(contentsOf: directory.appendingPathComponent(optimizerFile))
        let model = try SafetensorsFile(contentsOf: directory.appendingPathComponent("model.safetensors"))
        guard file.metadata["step"] == String(step), model.metadata["step"] == String(step) else {
            throw error("model (step \(model.metadata["step"] ?? "?")), optimizer (step \(file.metadata["step"] ?? "?")) "
                        + "and \(stateFile) (step \(step)) disagree; the checkpoint was interrupted while saving")
        }
        let count = optimizer.parameters.count
        let m = try file.tensor("adamw.m", expectedShape: [count]), v = try file.tensor("adamw.v", expectedShape: [count])
        try optimizer.restore(step: step, m: m.data, v: v.data, count: count)
    }
}
