import Foundation
import PRMCore
import PRMModel

/// A PPO run's checkpoint for `--resume`: the policy folder, and beside it as `OptimizerState`
/// the optimizer and trainer_state.json {"step", "iteration", "settings", "kl", "data", "data_file",
/// "reference"}. With the iteration the run's draws, sampling seeds and minibatch orders follow
/// (each a function of seed and iteration); the KL controller's β is the one running state
/// besides AdamW's (rewards and advantages are whitened within each iteration).
public struct PPOState: RunState {
    /// AdamW's updates (minibatches), not iterations.
    public var step: Int
    public var iteration: Int
    public var settings: PPOSettings
    public var kl: KLController
    public var data: DataFingerprint
    /// The prompt file's absolute path, so `--resume` without `--data` reads the run's own prompts.
    public var dataFile: String?
    /// The frozen reference policy's folder: a resumed run pays its KL to the same policy.
    public var reference: String

    enum CodingKeys: String, CodingKey { case step, iteration, settings, kl, data, dataFile = "data_file", reference }

    public static let command = "prm ppo"
    public static let dataName = (what: "prompts", unit: "(user, prompt) pairs")
    public static func error(_ problem: String) -> any Error { PolicyError(problem) }

    /// Saves policy, optimizer and state after the trainer's latest iteration.
    public static func save(_ trainer: PPOTrainer, dataFile: String?, reference: String, to directory: URL) throws {
        let step = trainer.optimizer.step
        let record = PPORecord(settings: trainer.settings, iteration: trainer.iteration, reward: trainer.reward.name, reference: reference)
        try PolicyCheckpoint.save(trainer.policy, users: trainer.users, training: RunFolder.jsonDictionary(encoding: record),
                                  metadata: ["step": String(step), "iteration": String(trainer.iteration)], to: directory)
        let state = PPOState(step: step, iteration: trainer.iteration, settings: trainer.settings, kl: trainer.kl, data: trainer.fingerprint,
                             dataFile: dataFile, reference: reference)
        try OptimizerState.save(trainer.optimizer, state: state, to: directory)
    }

    /// Restores optimizer, iteration and β into a trainer built on the checkpoint's policy, after
    /// checking that it draws from the same prompts.
    public func restore(into trainer: PPOTrainer, from directory: URL) throws {
        try restore(trainer.optimizer, data: trainer.fingerprint, from: directory)
        trainer.resume(iteration: iteration, kl: kl)
    }
}
