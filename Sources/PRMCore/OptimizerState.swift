import Foundation

/// What `--resume` needs beyond a checkpoint folder, saved beside its files by `prm train`,
/// `prm sft` and `prm ppo` alike:
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
    public static func save<State: RunState>(_ optimizer: AdamW, state: State, to directory: URL) throws {
        let step = state.step
        try SafetensorsWriter.write([.init(name: "adamw.m", shape: [optimizer.m.count], data: optimizer.m.data),
                                     .init(name: "adamw.v", shape: [optimizer.v.count], data: optimizer.v.data)],
                                    metadata: ["step": String(step)], to: directory.appendingPathComponent(optimizerFile))
        try AtomicFile.writeJSON(state, to: directory.appendingPathComponent(stateFile))
    }
}
