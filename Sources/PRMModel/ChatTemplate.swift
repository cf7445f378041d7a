import Foundation

/// A model's own chat template (a GGUF file's `tokenizer.chat_template`, a tokenizer_config's
/// `chat_template`), recognised by its text and rendered as jinja renders it, so the prompt is
/// the one the model was tuned on. Recognised: ChatML, alone or with a default system message
/// added before a conversation that has none (SmolLM2's). Anything else is refused by name.
public enum ChatTemplate: Sendable, Equatable {
    case chatML(defaultSystem: String?)

    /// Prompts end with the open assistant turn; a reply ends with this token.
    public var endOfTurn: String {
        switch self {
        case .chatML: "<|im_end|>"
        }
    }

    /// The jinja source of each recognised form; `systemSlot` is where SmolLM2's default system
    /// message sits.
    private static let systemSlot = "\u{0}SYSTEM\u{0}"
    private static let chatMLLoop = "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}"
        + "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
    private static let plainChatML = "{% for message in messages %}" + chatMLLoop
    private static let chatMLWithDefaultSystem = "{% for message in messages %}"
        + "{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\n" + systemSlot + "<|im_end|>\n' }}{% endif %}"
        + chatMLLoop

    /// The template `source` names, or an error naming `origin` (the file and key) when it is
    /// not one prm renders.
    public static func recognize(_ source: String, origin: String) throws -> ChatTemplate {
        let text = source.trimmingCharacters(in: .whitespacesAndNewlines)
        if text == plainChatML { return .chatML(defaultSystem: nil) }
        let parts = chatMLWithDefaultSystem.components(separatedBy: systemSlot)
        if text.hasPrefix(parts[0]) && text.hasSuffix(parts[1]) && text.count >= parts[0].count + parts[1].count {
            let system = String(text.dropFirst(parts[0].count).dropLast(parts[1].count))
            // The message is a jinja string literal in single quotes: refuse what would need unescaping.
            if !system.contains("'") && !system.contains("\\") && !system.contains("{") {
                return .chatML(defaultSystem: system)
            }
        }
        throw ModelError("\(origin): unknown chat template (recognised: ChatML, with or without a default system message); it starts \(String(text.prefix(80)).debugDescription)")
    }

    /// The conversation as the template renders it, ending with the open assistant turn when
    /// `addGenerationPrompt`.
    public func render(_ messages: [ChatMessage], addGenerationPrompt: Bool) -> String {
        switch self {
        case .chatML(let defaultSystem):
            var text = ""
            if let defaultSystem, let first = messages.first, first.role != .system {
                text += "<|im_start|>system\n\(defaultSystem)<|im_end|>\n"
            }
            for message in messages { text += "<|im_start|>\(message.role.rawValue)\n\(message.content)<|im_end|>\n" }
            if addGenerationPrompt { text += "<|im_start|>assistant\n" }
            return text
        }
    }
}
