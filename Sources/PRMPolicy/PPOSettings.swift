import Foundation

/// Every knob of a PPO run; saved with the checkpoint so the run can be resumed and reproduced.
/// Rollouts are sampled from the policy itself (temperature 1, no top-k/top-p): the ratios and
/// the KL penalty need the probabilities the replies were actually drawn with.
public struct PPOSettings: Codable, Sendable, Equatable {
    public var iterations = 60
    /// Replies sampled (one per prompt) per iteration.
    public var rollouts = 64
    public var minibatch = 16
    /// Passes over each iteration's rollouts.
    public var epochs = 4
    /// Constant learning rate of the decoder and word table.
    public var learningRate: Float = 5e-5
    /// Learning rate of the user vectors and the value head: each user's vectors see only that
    /// user's few replies per iteration (the reward model's practical note applies here too).
    public var userLearningRate: Float = 2e-3
    /// β of the per-token KL penalty −β·(log π − log π_ref) to the frozen SFT policy.
    public var klCoefficient: Float = 0.05
    /// Adaptive β: the KL per reply it steers towards (nil: β fixed).
    public var targetKL: Float?
    public var klHorizon: Float = 10_000
    /// ε of the clipped policy objective and of the value clipping.
    public var clipRange: Float = 0.2
    public var valueClipRange: Float = 0.2
    /// c_v: weight of the value loss.
    public var valueCoefficient: Float = 0.1
    public var gamma: Float = 1
    public var lambda: Float = 0.95
    /// Scores whitened across each iteration's rollouts before they become rewards.
    public var whitenRewards = true
    public var maxNewTokens = 64
    public var gradientClip: Float = 1
    public var seed: UInt64 = 42
    /// Iterations between checkpoints (the last one is always saved).
    public var checkpointEvery = 10

    enum CodingKeys: String, CodingKey {
        case iterations, rollouts, minibatch, epochs, learningRate = "learning_rate", userLearningRate = "user_learning_rate"
        case klCoefficient = "kl_coefficient", targetKL = "target_kl", klHorizon = "kl_horizon", clipRange = "clip_range"
        case valueClipRange = "value_clip_range", valueCoefficient = "value_coefficient", gamma, lambda
        case whitenRewards = "whiten_rewards", maxNewTokens = "max_new_tokens", gradientClip = "gradient_clip", seed
        case checkpointEvery = "checkpoint_every"
    }

    public init() {}

    /// Checks ranges; the message names the option.
    public func validate() throws {
        func fail(_ message: String) throws { throw PolicyError(message) }
        if iterations < 1 { try fail("--iterations must be at least 1, got \(iterations)") }
        if rollouts < 2 { try fail("--rollouts must be at least 2 (rewards and advantages are whitened across them), got \(rollouts)") }
        if minibatch < 1 || minibatch > rollouts { try fail("--minibatch must be in 1...\(rollouts), got \(minibatch)") }
        if epochs < 1 { try fail("--ppo-epochs must be at least 1, got \(epochs)") }
        if !(learningRate >= 0) || !(userLearningRate >= 0) { try fail("learning rates must be non-negative") }
        if !(klCoefficient >= 0) { try fail("--kl-coef must be non-negative, got \(klCoefficient)") }
        if let targetKL, !(targetKL > 0) { try fail("--target-kl must be positive, got \(targetKL)") }
        if !(klHorizon > 0) { try fail("--kl-horizon must be positive") }
        if !(clipRange > 0) || !(valueClipRange > 0) { try fail("--clip-range and --value-clip-range must be positive") }
        if !(valueCoefficient >= 0) { try fail("--vf-coef must be non-negative") }
        if !(0...1).contains(gamma) || !(0...1).contains(lambda) { try fail("--gamma and --lambda must be in [0, 1]") }
        if maxNewTokens < 1 { try fail("--max-new-tokens must be at least 1, got \(maxNewTokens)") }
        if checkpointEvery < 1 { try fail("--checkpoint-every must be at least 1") }
    }
}
