/// One turn of a chat conversation, as chat APIs and TRL's conversational data write it:
/// `{"role": "user", "content": "..."}`.
public struct ChatMessage: Sendable, Hashable {
    /// The roles a template knows how to write; others are refused where messages are read, so a
    /// typo ("asistant") is an error and not a turn the model never saw.
    public enum Role: String, Sendable, CaseIterable {
        case system, user, assistant
    }

    public var role: Role
    public var content: String

    public init(role: Role, content: String) {
        self.role = role
        self.content = content
    }
}
