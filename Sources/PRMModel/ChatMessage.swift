import Foundation

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

    /// A turn starts at the beginning of the text or after a blank line; text before the first tag,
    /// or text without tags, is a user turn (a bare question is a one-turn dialogue).
    nonisolated(unsafe) private static let hhTag = #/(?:^|\n\n)(Human|Assistant):/#

    /// The turns of a dialogue written in hh-rlhf's text form ("Human: …\n\nAssistant: …"), each
    /// content stripped of surrounding whitespace; a prompt's closing "Assistant:" is an empty
    /// assistant turn.
    public static func hhTurns(_ text: String) -> [ChatMessage] {
        let matches = text.matches(of: hhTag)
        var turns: [ChatMessage] = []
        let lead = text[text.startIndex..<(matches.first?.range.lowerBound ?? text.endIndex)]
        if !lead.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty || matches.isEmpty {
            turns.append(ChatMessage(role: .user, content: lead.trimmingCharacters(in: .whitespacesAndNewlines)))
        }
        for (i, match) in matches.enumerated() {
            let end = i + 1 < matches.count ? matches[i + 1].range.lowerBound : text.endIndex
            turns.append(ChatMessage(role: match.output.1 == "Human" ? .user : .assistant,
                                     content: text[match.range.upperBound..<end].trimmingCharacters(in: .whitespacesAndNewlines)))
        }
        return turns
    }
}
