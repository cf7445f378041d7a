/// A PPO policy's training record, config.json's "prm.training": its settings, the iterations
/// done, and where its rewards and its KL reference came from.
public struct PPORecord: Codable {
    public var stage = "ppo"
    public var settings: PPOSettings
    public var iteration: Int
    /// The reward source's name (a reward-model folder or a server endpoint).
    public var reward: String
    /// The frozen reference policy's folder.
    public var reference: String

    enum CodingKeys: String, CodingKey { case stage, settings, iteration, reward, reference }

    public init(settings: PPOSettings, iteration: Int, reward: String, reference: String) {
        self.settings = settings
        self.iteration = iteration
        self.reward = reward
        self.reference = reference
    }
}
