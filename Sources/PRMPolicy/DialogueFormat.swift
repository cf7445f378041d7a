import Foundation
import PRMTokenizers
import PRMModel

/// The policy's dialogue format (data/policy/README.md). Prompts arrive as the data and the reward
/// model have them ("Human: …\n\nAssistant: …\n\nHuman: …\n\nAssistant:"); the policy reads them
/// as turns, each a role token and the turn's text after one space:
///
///     <|human|> text<|assistant|> text<|end|><|human|> text<|assistant|>
///
/// An assistant turn ends with <|end|> (end of reply); the prompt ends with an open
/// <|assistant|>, where the reply starts, and generation stops at the next <|end|>. Role tokens
/// are inserted as ids, never spelled in text, so the turns' words cannot fake a turn boundary
/// (text that happens to contain "<|end|>" still encodes as that token, as Hugging Face
/// tokenizers match added tokens everywhere).
public struct DialogueFormat: Sendable {
    public enum Role: Sendable, Equatable { case human, assistant }

    public struct Turn: Sendable, Equatable {
        public var role: Role
        public var text: String

        public init(_ role: Role, _ text: String) {
            self.role = role
            self.text = text
        }
    }

    public static let humanToken = "<|human|>", assistantToken = "<|assistant|>", endToken = "<|end|>"

    public let tokenizer: any Tokenizer
    public let human: Int32, assistant: Int32, end: Int32

    /// Resolves the role tokens in `tokenizer`; `file` names the tokenizer in errors.
    public init(tokenizer: any Tokenizer, file: URL) throws {
        func id(_ token: String) throws -> Int32 {
            guard let id = tokenizer.id(of: token) else {
                throw PolicyError(file: file, "the vocabulary has no '\(token)' token; a policy vocabulary needs "
                                  + "\(Self.humanToken), \(Self.assistantToken) and \(Self.endToken) (data/policy/make_tokenizer.py)")
            }
            return Int32(id)
        }
        self.tokenizer = tokenizer
        human = try id(Self.humanToken)
        assistant = try id(Self.assistantToken)
        end = try id(Self.endToken)
    }

    /// The turns of a dialogue in the data's text form, each text stripped of surrounding whitespace
    /// (`ChatMessage.hhTurns`, the reward model's reading of the same text).
    public static func turns(_ text: String) -> [Turn] {
        ChatMessage.hhTurns(text).map { Turn($0.role == .assistant ? .assistant : .human, $0.content) }
    }

    /// Ids of a prompt, ending with the open <|assistant|> a reply follows.
    public func encodePrompt(_ prompt: String) -> [Int32] { render(prompt, reply: nil).ids }

    /// A whole dialogue for supervised training: ids, and which ids the model is trained to predict
    /// (the text and <|end|> of every assistant turn, the reply's included; never role tokens or
    /// human text).
    public func encodeDialogue(prompt: String, reply: String) -> (ids: [Int32], supervised: [Bool]) {
        render(prompt, reply: reply)
    }

    /// Ids of a reply (its text after one space, as the format puts it), without <|end|>.
    public func encodeReply(_ reply: String) -> [Int32] {
        let text = reply.trimmingCharacters(in: .whitespacesAndNewlines)
        return text.isEmpty ? [] : tokenizer.encode(" " + text, addSpecialTokens: false).map(Int32.init)
    }

    /// A reply's text from generated ids (an <|end|> and anything after it are dropped).
    public func decodeReply(_ ids: [Int32]) -> String {
        let text = ids.prefix { $0 != end }.map(Int.init)
        return tokenizer.decode(text, skipSpecialTokens: true).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    private func render(_ prompt: String, reply: String?) -> (ids: [Int32], supervised: [Bool]) {
        var turns = Self.turns(prompt)
        // The reply's turn: the prompt's own empty last assistant turn, or a new one.
        if let last = turns.last, last.role == .assistant, last.text.isEmpty {
            turns.removeLast()
        }
        let texts = turns.map { $0.text.isEmpty ? "" : " " + $0.text } + [reply.map { $0.trimmingCharacters(in: .whitespacesAndNewlines) }
            .map { $0.isEmpty ? "" : " " + $0 } ?? ""]
        let encoded = tokenizer.encodeBatch(texts, addSpecialTokens: false)
        var ids: [Int32] = [], supervised: [Bool] = []
        func append(_ new: [Int32], _ trained: Bool) {
            ids += new
            supervised += Array(repeating: trained, count: new.count)
        }
        for (turn, text) in zip(turns, encoded) {
            let isAssistant = turn.role == .assistant
            append([isAssistant ? assistant : human], false)
            append(text.map(Int32.init), isAssistant)
            if isAssistant { append([end], true) }
        }
        append([assistant], false)
        if reply != nil {
            append((encoded.last ?? []).map(Int32.init), true)
            append([end], true)
        }
        return (ids, supervised)
    }
}
