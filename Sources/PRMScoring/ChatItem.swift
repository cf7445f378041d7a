import PRMModel

/// One (user, prompt, reply) as a request gives it, before the checkpoint's template writes any
/// chat messages as text (`InputPreparer.render`).
public struct ChatItem: Sendable, Hashable {
    public var userID: String?
    public var userInfo: String?
    public var prompt: ChatText
    public var response: ChatText

    public init(userID: String?, userInfo: String? = nil, prompt: ChatText, response: ChatText) {
        self.userID = userID
        self.userInfo = userInfo
        self.prompt = prompt
        self.response = response
    }

    /// Whether the prompt is written as `template` writes prompts: messages always are; a string
    /// is checked (an hh checkpoint given a prompt without a "Human:" turn is scored, but counted).
    public func promptFollows(_ template: TextTemplate) -> Bool {
        guard case .text(let text) = prompt else { return true }
        return template.follows(text)
    }
}
