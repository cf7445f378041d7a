/// How a checkpoint's training data writes a conversation as text, so chat messages sent later
/// become the text the model learned from. Stored under "prm" in config.json as "template".
///
/// System messages are left out by hh and plain: the built-in data has no system turns, and
/// text the model never saw in that position would shift every score (what a system prompt says
/// about the user belongs in `user_info`). protocols/python's client wrote messages the same way
/// before the server did. A chat template writes them as the model's own template does.
///
/// Recorded as its name ("hh", "plain"), a chat template as the object `ChatTemplate` encodes.
/// `rawValue` names every template; `init(rawValue:)` and `allCases` know only the ones a name
/// alone gives (`--template`): a chat template comes from a model folder.
public enum TextTemplate: Sendable, Hashable, Codable, RawRepresentable, CaseIterable {
    /// Anthropic hh-rlhf's turns, the built-in data's: "Human: …\n\nAssistant: …", the prompt
    /// ending with the "Assistant:" tag the reply answers (the reply follows without a space, as
    /// in data/lengthpref).
    case hh
    /// No turn tags: the messages' contents joined by blank lines.
    case plain
    /// A `…ForSequenceClassification` folder's own chat template (`ClassificationHead.servedAsIs`):
    /// the prompt is the conversation up to the open assistant turn, the reply that turn's rest,
    /// as `apply_chat_template` renders [prompt turns…, reply] without a generation prompt. A
    /// string prompt is read as hh turns (a bare string is one user turn).
    case chat(ChatTemplate)

    public static let allCases: [TextTemplate] = [.hh, .plain]

    public init?(rawValue: String) {
        guard let named = Self.allCases.first(where: { $0.rawValue == rawValue }) else { return nil }
        self = named
    }

    public var rawValue: String {
        switch self {
        case .hh: "hh"
        case .plain: "plain"
        case .chat(let template): template.name
        }
    }

    public init(from decoder: any Decoder) throws {
        if let name = try? decoder.singleValueContainer().decode(String.self) {
            guard let named = TextTemplate(rawValue: name) else {
                throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "unknown template '\(name)'; expected hh, plain or a chat template object"))
            }
            self = named
        } else {
            self = .chat(try ChatTemplate(from: decoder))
        }
    }

    public func encode(to encoder: any Encoder) throws {
        if case .chat(let template) = self { return try template.encode(to: encoder) }
        var c = encoder.singleValueContainer()
        try c.encode(rawValue)
    }

    /// Whether the text carries the model's special tokens itself, so the tokenizer's
    /// post-processor must not add its own (transformers tokenizes a rendered chat with
    /// `add_special_tokens=False`; Llama-3's template writes `<|begin_of_text|>`).
    public var writesSpecialTokens: Bool {
        if case .chat = self { return true }
        return false
    }

    /// The share of prompts following the hh turn structure above which `detect` chooses hh.
    public static let hhShare = 0.9

    /// A prompt's messages as text.
    public func prompt(_ messages: [ChatMessage]) -> String {
        let turns = messages.filter { $0.role != .system }
        switch self {
        case .chat(let template):
            return String(template.render(messages, addGenerationPrompt: true).dropLast(template.replyOpening.count))
        case .hh:
            let written = turns.map { "\($0.role == .user ? Self.human : Self.assistant) \($0.content)" }
            return (written + [Self.assistant]).joined(separator: "\n\n")
        case .plain:
            return turns.map(\.content).joined(separator: "\n\n")
        }
    }

    /// A prompt as text: text as given (it is counted, not changed, when it does not `follow`
    /// the template), messages written out; for a chat template, text is read as hh turns first.
    public func prompt(_ input: ChatText) -> String {
        switch (input, self) {
        case (.text(let text), .chat):
            var turns = ChatMessage.hhTurns(text)
            // The closing "Assistant:" is the turn the reply fills.
            if turns.count > 1, let last = turns.last, last.role == .assistant, last.content.isEmpty { turns.removeLast() }
            return prompt(turns)
        case (.text(let text), _): return text
        case (.messages(let messages), _): return prompt(messages)
        }
    }

    /// A reply as text: its message's content, which follows the prompt's closing tag as the
    /// data's replies do.
    public func reply(_ input: ChatText) -> String {
        let content = switch input {
        case .text(let text): text
        case .messages(let messages): messages.map(\.content).joined(separator: "\n\n")
        }
        guard case .chat(let template) = self else { return content }
        return template.replyOpening + template.closingReply(content)
    }

    /// Whether a prompt string is written the way this template writes prompts: for hh, it opens
    /// with a "Human:" turn and ends with the "Assistant:" tag (surrounding whitespace aside); a
    /// chat template writes any string as turns.
    public func follows(_ prompt: String) -> Bool {
        switch self {
        case .hh:
            let trimmed = prompt.trimmingWhitespace
            return trimmed.hasPrefix(Self.human) && trimmed.hasSuffix(Self.assistant)
        case .plain, .chat:
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
