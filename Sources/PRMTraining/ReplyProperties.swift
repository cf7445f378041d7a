import Foundation

/// Observable properties of a reply, measured from its text: the targets of `prm probe`'s linear
/// probes and nothing else.
///
/// They are a diagnostic of what a model's pooled state h carries (issue 16): they are never an
/// input to the reward model, its user model or its head, whose job is to learn from text what
/// users care about. Each is deliberately simple and documented, so a probe's score is about h
/// and not about a clever detector.
public struct ReplyProperties: Sendable, Equatable {
    /// What a probe predicts: one continuous property and five yes/no ones.
    public enum Property: String, CaseIterable, Sendable {
        case logWordCount = "log_word_count"
        case question
        case refusal
        case negation
        case firstPerson = "first_person"
        case list

        public enum Kind: String, Sendable { case continuous, binary }

        public var kind: Kind { self == .logWordCount ? .continuous : .binary }

        /// One line for the report's legend.
        public var meaning: String {
            switch self {
            case .logWordCount: return "log(words), words split on whitespace"
            case .question: return "contains a question mark"
            case .refusal: return "contains a refusal phrase (\(ReplyProperties.refusalPhrases.map { "\"\($0)\"" }.joined(separator: ", ")))"
            case .negation: return "contains a negation word (\(ReplyProperties.negationWords.joined(separator: ", "))), stylepref's n"
            case .firstPerson: return "uses I, I'm, my or me as a word"
            case .list: return "a line starts with -, *, • or a number and a period, then a space"
            }
        }
    }

    /// Whitespace-separated words (at least 1 for the logarithm: the data has no empty replies).
    public let wordCount: Int
    public let hasQuestion: Bool
    public let refuses: Bool
    public let negates: Bool
    public let firstPerson: Bool
    public let hasList: Bool

    /// Matched case-insensitively, with the typographic apostrophe ’ read as ', at the start of a
    /// word (so "Wii can't" does not refuse).
    public static let refusalPhrases = ["i'm sorry", "i am sorry", "i apologize", "i can't", "i cannot", "i won't", "i will not",
                                        "i'm not able to", "i am not able to", "i'm unable to", "i am unable to", "as an ai"]

    /// The negation words of stylepref's annotators (bench/make_stylepref.py: `n`, matched as whole
    /// words, case-insensitively), so a probe says whether h carries what those users weigh.
    public static let negationWords = ["no", "not", "can't", "cannot", "don't", "won't", "never", "unfortunately"]

    public init(_ reply: String) {
        wordCount = reply.split(whereSeparator: \.isWhitespace).count
        hasQuestion = reply.contains("?")
        let lowered = reply.lowercased().replacingOccurrences(of: "\u{2019}", with: "'")
        refuses = Self.refusalPhrases.contains { Self.containsAtWordStart(lowered, $0) }
        // Words are runs of letters, so I'm, I've and I'd count through their "i".
        let words = lowered.split { !$0.isLetter }
        firstPerson = words.contains { $0 == "i" || $0 == "my" || $0 == "me" }
        // Here words keep inner apostrophes, as the regex's \b...\b does for "can't" (’ read as ').
        let apostropheWords = Set(lowered.split { !$0.isLetter && $0 != "'" }.map { $0.trimmingCharacters(in: CharacterSet(charactersIn: "'")) })
        negates = Self.negationWords.contains { apostropheWords.contains($0) }
        hasList = reply.split(whereSeparator: \.isNewline).contains { Self.startsListItem($0) }
    }

    /// The probe's target value: the logarithm for the count, 1 or 0 for the others.
    public subscript(_ property: Property) -> Double {
        switch property {
        case .logWordCount: return log(Double(max(wordCount, 1)))
        case .question: return hasQuestion ? 1 : 0
        case .refusal: return refuses ? 1 : 0
        case .negation: return negates ? 1 : 0
        case .firstPerson: return firstPerson ? 1 : 0
        case .list: return hasList ? 1 : 0
        }
    }

    static func containsAtWordStart(_ text: String, _ phrase: String) -> Bool {
        var searchStart = text.startIndex
        while let range = text.range(of: phrase, range: searchStart..<text.endIndex) {
            if range.lowerBound == text.startIndex || !text[text.index(before: range.lowerBound)].isLetter { return true }
            searchStart = text.index(after: range.lowerBound)
        }
        return false
    }

    /// "- item", "* item", "• item", "12. item" (leading spaces allowed; a marker without a space
    /// after it, as in "-5 degrees" or "1.5 cups", is not a list).
    static func startsListItem(_ line: Substring) -> Bool {
        let trimmed = line.drop { $0 == " " || $0 == "\t" }
        guard let first = trimmed.first else { return false }
        let rest: Substring
        if first == "-" || first == "*" || first == "•" {
            rest = trimmed.dropFirst()
        } else {
            let digits = trimmed.prefix { $0.isASCII && $0.isNumber }
            guard !digits.isEmpty, trimmed.dropFirst(digits.count).first == "." else { return false }
            rest = trimmed.dropFirst(digits.count + 1)
        }
        return rest.first.map(\.isWhitespace) ?? false
    }
}
