/// A prompt PPO may sample, with the user it is asked for (nil: the generic user).
public struct PPOPrompt: Sendable, Hashable {
    public var userID: String?
    public var prompt: String

    public init(userID: String?, prompt: String) {
        self.userID = userID
        self.prompt = prompt
    }
}
