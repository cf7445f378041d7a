import PRMCore

/// A prompt or a reply as a caller gives it: text already in the model's format, or chat
/// messages that the checkpoint's `TextTemplate` writes out.
public enum ChatText: Sendable, Hashable {
    case text(String)
    /// A prompt's turns, or a reply's one assistant message.
    case messages([ChatMessage])

    /// A prompt from JSON: a string, or a non-empty list of `{"role", "content"}` messages. The
    /// one reading of messages for requests and training data alike; errors name `field`
    /// (`prompt[2].role`) and what was wrong with it.
    public static func prompt(_ value: JSONValue, field: String) throws(ModelError) -> ChatText {
        if let text = value.string { return .text(text) }
        guard let list = value.array else {
            throw ModelError("field '\(field)' must be a string or a list of {\"role\", \"content\"} messages, got \(value.kind.rawValue)")
        }
        guard !list.isEmpty else { throw ModelError("field '\(field)' is an empty list of messages; give at least one message, or a string") }
        var messages: [ChatMessage] = []
        messages.reserveCapacity(list.count)
        for (i, element) in list.enumerated() { messages.append(try message(element, field: "\(field)[\(i)]")) }
        return .messages(messages)
    }

    /// A reply from JSON: a string, or one `{"role": "assistant", "content"}` message.
    public static func reply(_ value: JSONValue, field: String) throws(ModelError) -> ChatText {
        if let text = value.string { return .text(text) }
        guard value.object != nil else {
            throw ModelError("field '\(field)' must be a string or a {\"role\": \"assistant\", \"content\"} message, got \(value.kind.rawValue)")
        }
        let reply = try message(value, field: field)
        guard reply.role == .assistant else {
            throw ModelError("field '\(field).role' is '\(reply.role.rawValue)'; a reply is an 'assistant' message")
        }
        return .messages([reply])
    }

    private static func message(_ value: JSONValue, field: String) throws(ModelError) -> ChatMessage {
        guard let member = value.object else {
            throw ModelError("field '\(field)' must be a {\"role\", \"content\"} message object, got \(value.kind.rawValue)")
        }
        let name = try string(member, "role", field: field)
        guard let role = ChatMessage.Role(rawValue: name) else {
            let known = ChatMessage.Role.allCases.map(\.rawValue).joined(separator: ", ")
            throw ModelError("field '\(field).role' is '\(name.prefix(40))', an unknown role; expected one of \(known)")
        }
        return ChatMessage(role: role, content: try string(member, "content", field: field))
    }

    private static func string(_ member: JSONObject, _ name: String, field: String) throws(ModelError) -> String {
        guard let value = member[name] else { throw ModelError("missing field '\(field).\(name)'") }
        guard let text = value.string else { throw ModelError("field '\(field).\(name)' must be a string, got \(value.kind.rawValue)") }
        return text
    }
}
