/// One iteration's measurements, written to the JSON log.
public struct PPOLogEntry: Codable, Sendable {
    /// What the replies of one user group got and how long they were.
    public struct Group: Codable, Sendable {
        public var replies: Int
        /// Mean score from the reward source (before whitening).
        public var reward: Double
        /// Mean reply length in policy tokens (<|end|> not counted) and in words.
        public var lengthTokens: Double
        public var lengthWords: Double

        enum CodingKeys: String, CodingKey { case replies, reward, lengthTokens = "length_tokens", lengthWords = "length_words" }
    }

    public var iteration: Int
    public var reward: Double
    public var lengthTokens: Double
    public var lengthWords: Double
    /// Mean over replies of Σ_t (log π − log π_ref): the sampled estimate of KL(π ‖ π_ref) per reply.
    public var kl: Double
    public var klCoefficient: Float
    /// Mean entropy (nats) of the policy's next-token distribution over the reply tokens.
    public var entropy: Double
    /// Token means over every minibatch of every epoch.
    public var policyLoss: Double
    public var valueLoss: Double
    public var clipFraction: Double
    public var gradientNorm: Float
    public var groups: [String: Group]
    public var rolloutSeconds: Double
    public var scoringSeconds: Double
    public var updateSeconds: Double
    public var elapsedSeconds: Double

    enum CodingKeys: String, CodingKey {
        case iteration, reward, lengthTokens = "length_tokens", lengthWords = "length_words", kl, klCoefficient = "kl_coefficient", entropy
        case policyLoss = "policy_loss", valueLoss = "value_loss", clipFraction = "clip_fraction", gradientNorm = "gradient_norm", groups
        case rolloutSeconds = "rollout_seconds", scoringSeconds = "scoring_seconds", updateSeconds = "update_seconds"
        case elapsedSeconds = "elapsed_seconds"
    }
}
