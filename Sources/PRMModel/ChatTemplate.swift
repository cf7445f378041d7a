import Foundation
import PRMCore

/// A model's own chat template (a GGUF file's `tokenizer.chat_template`, a tokenizer_config's
/// `chat_template`), recognised by its text and rendered as jinja renders it, so the text is the
/// one the model was tuned on. Recognised: ChatML, alone or with a default system message added
/// before a conversation that has none (SmolLM2's, Qwen2's), and Llama-3's (headers, contents
/// trimmed, `bos_token` written before the first turn). Anything else is refused by name.
public enum ChatTemplate: Sendable, Hashable, Codable {
    case chatML(defaultSystem: String?)
    /// `bos` is the tokenizer's `bos_token`, which the template writes itself.
    case llama3(bos: String)

    /// Prompts end with the open assistant turn; a reply ends with this token.
    public var endOfTurn: String {
        switch self {
        case .chatML: "<|im_end|>"
        case .llama3: "<|eot_id|>"
        }
    }

    /// Whether the rendered text starts with the tokenizer's BOS token, so the tokenizer must not
    /// add another (transformers' `apply_chat_template` tokenizes with `add_special_tokens=False`).
    public var writesBOS: Bool {
        if case .llama3 = self { return true }
        return false
    }

    /// A short name for logs, `info` and metrics.
    public var name: String {
        switch self {
        case .chatML: "chatml"
        case .llama3: "llama3"
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
    /// Meta-Llama-3-8B-Instruct's tokenizer_config.json.
    private static let llama3Source = "{% set loop_messages = messages %}{% for message in loop_messages %}"
        + "{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' %}"
        + "{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}"
        + "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"

    /// The template `source` names, or an error naming `origin` (the file and key) when it is
    /// not one prm renders. `bosToken`: the tokenizer's, for a template that writes it.
    public static func recognize(_ source: String, bosToken: String? = nil, origin: String) throws -> ChatTemplate {
        let text = source.trimmingCharacters(in: .whitespacesAndNewlines)
        if text == plainChatML { return .chatML(defaultSystem: nil) }
        if text == llama3Source {
            guard let bosToken else { throw ModelError("\(origin): the Llama-3 chat template writes bos_token, but the tokenizer names none") }
            return .llama3(bos: bosToken)
        }
        let parts = chatMLWithDefaultSystem.components(separatedBy: systemSlot)
        if text.hasPrefix(parts[0]) && text.hasSuffix(parts[1]) && text.count >= parts[0].count + parts[1].count {
            let system = String(text.dropFirst(parts[0].count).dropLast(parts[1].count))
            // The message is a jinja string literal in single quotes: refuse what would need unescaping.
            if !system.contains("'") && !system.contains("\\") && !system.contains("{") {
                return .chatML(defaultSystem: system)
            }
        }
        throw ModelError("\(origin): unknown chat template (recognised: ChatML, with or without a default system message, and Llama-3's); "
                         + "it starts \(String(text.prefix(80)).debugDescription)")
    }

    /// The chat template of a Hugging Face model folder, as transformers' tokenizer loads it:
    /// `chat_template.jinja` when present, else tokenizer_config.json's `chat_template` (a string,
    /// or a list of named templates whose "default" is taken), with the config's `bos_token`.
    /// nil when the folder has none; an error naming the file and key for one prm does not render.
    public static func ofFolder(_ folder: URL) throws -> ChatTemplate? {
        let configURL = folder.appendingPathComponent("tokenizer_config.json")
        let config = FileManager.default.fileExists(atPath: configURL.path) ? try HFConfig.jsonObject(configURL) : JSONObject()
        let bos = config["bos_token"].flatMap { $0.string ?? $0.object?["content"]?.string }
        let jinja = folder.appendingPathComponent("chat_template.jinja")
        if FileManager.default.fileExists(atPath: jinja.path) {
            return try recognize(String(decoding: try HFConfig.readFile(jinja), as: UTF8.self), bosToken: bos, origin: jinja.path)
        }
        guard let value = config["chat_template"], !value.isNull else { return nil }
        let origin = "\(configURL.path): key 'chat_template'"
        if let source = value.string { return try recognize(source, bosToken: bos, origin: origin) }
        let named = value.array?.compactMap { $0.object }.first { $0["name"]?.string == "default" }
        guard let source = named?["template"]?.string else {
            throw ModelError("\(origin) is neither a template string nor a list of named templates with a \"default\" one")
        }
        return try recognize(source, bosToken: bos, origin: "\(origin), template \"default\"")
    }

    /// The conversation as the template renders it, ending with the open assistant turn when
    /// `addGenerationPrompt`.
    public func render(_ messages: [ChatMessage], addGenerationPrompt: Bool) -> String {
        var text = ""
        switch self {
        case .chatML(let defaultSystem):
            if let defaultSystem, let first = messages.first, first.role != .system {
                text += "<|im_start|>system\n\(defaultSystem)<|im_end|>\n"
            }
            for message in messages { text += "<|im_start|>\(message.role.rawValue)\n\(message.content)<|im_end|>\n" }
            if addGenerationPrompt { text += "<|im_start|>assistant\n" }
        case .llama3(let bos):
            for (i, message) in messages.enumerated() {
                text += (i == 0 ? bos : "") + "<|start_header_id|>\(message.role.rawValue)<|end_header_id|>\n\n"
                    + Self.jinjaTrim(message.content) + "<|eot_id|>"
            }
            if addGenerationPrompt { text += "<|start_header_id|>assistant<|end_header_id|>\n\n" }
        }
        return text
    }

    /// The end of the open assistant turn after its last control token ("assistant\n" after
    /// ChatML's `<|im_start|>`). A tokenizer splits text at control tokens before anything else,
    /// so a prompt cut there and a reply that starts with it tokenize as the whole conversation.
    public var replyOpening: String {
        switch self {
        case .chatML: "assistant\n"
        case .llama3: "\n\n"
        }
    }

    /// What a reply adds after the open assistant turn: `render(messages + [reply], false)` is
    /// `render(messages, true) + closingReply(reply.content)` whenever `messages` is not empty.
    public func closingReply(_ content: String) -> String {
        switch self {
        case .chatML: content + "<|im_end|>\n"
        case .llama3: Self.jinjaTrim(content) + "<|eot_id|>"
        }
    }

    /// jinja's `trim` filter: Python's `str.strip()`, whose whitespace is Unicode's White_Space
    /// and the four separators U+001C…U+001F.
    static func jinjaTrim(_ text: String) -> String {
        let isSpace = { (s: Unicode.Scalar) in s.properties.isWhitespace || (0x1C...0x1F).contains(s.value) }
        let scalars = text.unicodeScalars
        guard let first = scalars.firstIndex(where: { !isSpace($0) }), let last = scalars.lastIndex(where: { !isSpace($0) }) else { return "" }
        return String(scalars[first...last])
    }

    /// As a checkpoint's config.json records it: `{"chat_template": "chatml", "default_system": …}`,
    /// `{"chat_template": "llama3", "bos_token": …}`.
    private enum CodingKeys: String, CodingKey { case name = "chat_template", defaultSystem = "default_system", bos = "bos_token" }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let name = try c.decode(String.self, forKey: .name)
        switch name {
        case "chatml": self = .chatML(defaultSystem: try c.decodeIfPresent(String.self, forKey: .defaultSystem))
        case "llama3": self = .llama3(bos: try c.decode(String.self, forKey: .bos))
        default: throw DecodingError.dataCorruptedError(forKey: .name, in: c, debugDescription: "unknown chat template '\(name)'; expected chatml or llama3")
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(name, forKey: .name)
        switch self {
        case .chatML(let defaultSystem): try c.encodeIfPresent(defaultSystem, forKey: .defaultSystem)
        case .llama3(let bos): try c.encode(bos, forKey: .bos)
        }
    }
}
