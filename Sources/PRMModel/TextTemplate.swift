/// How a checkpoint's training data writes a conversation as text, so chat messages sent later
/// become the text the model learned from. Stored under "prm" in config.json as "template".
///
/// System messages are left out by both templates: the built-in data has no system turns, and
/// text the model never saw in that position would shift every score (what a system prompt says
/// about the user belongs in `user_info`). protocols/python's client wrote messages the same way
/// before the server did.
public enum TextTemplate: String, Codable, Sendable, CaseIterable {
    /// Anthropic hh-rlhf's turns, the built-in data's: "Human: …\n\nAssistant: …", the prompt
    /// ending with the "Assistant:" tag the reply answers (the reply follows without a space, as
    /// in data/lengthpref).
    case hh
    /// No turn tags: the messages' contents joined by blank lines.
    case plain

    /// The share of prompts following the hh turn structure above which `detect` chooses hh.
    public static let hhShare = 0.9

    /// A prompt's messages as text.
    public func prompt(_ messages: [ChatMessage]) -> String {
        let turns = messages.filter { $0.role != .system }
        switch self {
        case .hh:
            let written = turns.map { "\($0.role == .user ? Self.human : Self.assistant) \($0.content)" }
            return (written + [Self.assistant]).joined(separator: "\n\n")
        case .plain:
            return turns.map(\.content).joined(separator: "\n\n")
        }
    }

    /// A prompt as text: text as given (it is counted, not changed, when it does not `follow`
    /// the template), messages written out.
    public func prompt(_ input: ChatText) -> String {
        switch input {
        case .text(let text): return text
        case .messages(let messages): return prompt(messages)
        }
    }

    /// A reply as text: its message's content, which follows the prompt's closing tag as the
    /// data's replies do.
    public func reply(_ input: ChatText) -> String {
        switch input {
        case .text(let text): return text
        case .messages(let messages): return messages.map(\.content).joined(separator: "\n\n")
        }
    }

    /// Whether a prompt string is written the way this template writes prompts: for hh, it opens
    /// with a "Human:" turn and ends with the "Assistant:" tag (surrounding whitespace aside).
    public func follows(_ prompt: String) -> Bool {
        switch self {
        case .hh:
            let trimmed = prompt.trimmingWhitespace
            return trimmed.hasPrefix(Self.human) && trimmed.hasSuffix(Self.assistant)
        case .plain:
            return true
        }
    }

    /// The template of a training set's prompts: hh when at least `hhShare` of them follow it.
    /// Message prompts count as following it (hh writes them so).
    public static func detect(_ prompts: some Collection<ChatText>) -> TemplateDetection {
        let following = prompts.reduce(0) { count, prompt in
            guard case .text(let text) = prompt else { return count + 1 }
            return count + (TextTemplate.hh.follows(text) ? 1 : 0)
        }
        let share = prompts.isEmpty ? 0 : Double(following) / Double(prompts.count)
        return TemplateDetection(template: share >= hhShare ? .hh : .plain, hhShare: share)
    }

    /// hh's turn tags.
    private static let human = "Human:", assistant = "Assistant:"
}

private extension String {
    var trimmingWhitespace: Substring {
        let scalars = unicodeScalars
        guard let first = scalars.firstIndex(where: { !$0.properties.isWhitespace }),
              let last = scalars.lastIndex(where: { !$0.properties.isWhitespace }) else { return "" }
        return Substring(scalars[first...last])
    }
}
