import Foundation

/// The run's own part of trainer_state.json (`TrainingState`, `SFTState`, `PPOState`), saved
/// by `OptimizerState` beside AdamW's moments: the optimizer step it was saved at and the
/// fingerprint of the data it trained on. Each state names its command, its data and its
/// target's error; loading it and restoring AdamW from it are the same for all.
public protocol RunState: Codable {
    /// AdamW's step when the state was saved (model.safetensors and optimizer.safetensors carry it too).
    var step: Int { get }
    var data: DataFingerprint { get }
    /// The command that writes such folders ("prm sft"), named when none is found.
    static var command: String { get }
    /// What the run's data are and what counts them ("training dialogues", "dialogues").
    static var dataName: (what: String, unit: String) { get }
    /// A problem as the target's own error.
    static func error(_ problem: String) -> any Error
}

extension RunState {
    /// The state of the run saved in `directory`; failures are thrown as the target's error.
    public static func load(from directory: URL) throws -> Self {
        let url = directory.appendingPathComponent(OptimizerState.stateFile)
        guard let data = try? Data(contentsOf: url) else {
            throw error("\(url.path): not found; --resume needs a folder written by an earlier '\(command) --out'")
        }
        do {
            return try JSONDecoder().decode(Self.self, from: data)
        } catch let problem as DecodingError {
            throw error("\(url.path): cannot read the training state: " + DecodingProblem(problem).message)
        }
    }

    /// Restores `optimizer` from `directory` for a run that reads data `current`, after checking
    /// that they are the data this state was saved with and that model, optimizer and state were
    /// all saved at this state's step.
    public func restore(_ optimizer: AdamW, data current: DataFingerprint, from directory: URL) throws {
        guard current == data else {
            throw Self.error("\(directory.path): the \(Self.dataName.what) differ from the run being resumed "
                             + "(\(current.count) \(Self.dataName.unit) vs \(data.count)); resume with the same --data (and --limit)")
        }
        let file = try SafetensorsFile(contentsOf: directory.appendingPathComponent(OptimizerState.optimizerFile))
        let model = try SafetensorsFile(contentsOf: directory.appendingPathComponent("model.safetensors"))
        guard file.metadata["step"] == String(step), model.metadata["step"] == String(step) else {
            throw Self.error("\(directory.path): model (step \(model.metadata["step"] ?? "?")), optimizer (step \(file.metadata["step"] ?? "?")) "
                             + "and \(OptimizerState.stateFile) (step \(step)) disagree; the checkpoint was interrupted while saving")
        }
        let count = optimizer.parameters.count
        let m = try file.tensor("adamw.m", expectedShape: [count]), v = try file.tensor("adamw.v", expectedShape: [count])
        try optimizer.restore(step: step, m: m.data, v: v.data, count: count)
    }
}
