import Foundation

/// One entry of `added_tokens`.
struct AddedToken: Decodable, Sendable {
    let id: Int
    let content: String
    /// Match only where the token is not inside a word (`\w` on neither side).
    let singleWord: Bool
    /// Absorb the whitespace on its left / right.
    let leftStrip: Bool
    let rightStrip: Bool
    /// Matched in the normalized text (true) or the raw text (false, the usual for specials).
    let normalized: Bool
    /// Skipped by `decode(skipSpecialTokens: true)`.
    let special: Bool

    private enum CodingKeys: String, CodingKey {
        case id, content, special, normalized
        case singleWord = "single_word"
        case leftStrip = "lstrip"
        case rightStrip = "rstrip"
    }

    /// A token matched as is in the raw text (GGUF's control and user-defined tokens).
    init(id: Int, content: String, special: Bool) {
        self.id = id
        self.content = content
        self.special = special
        normalized = false
        singleWord = false
        leftStrip = false
        rightStrip = false
    }

    init(from decoder: any Decoder) throws {
        let keys = try decoder.container(keyedBy: CodingKeys.self)
        id = try keys.decode(Int.self, forKey: .id)
        content = try keys.decode(String.self, forKey: .content)
        special = try keys.decodeIfPresent(Bool.self, forKey: .special) ?? false
        normalized = try keys.decodeIfPresent(Bool.self, forKey: .normalized) ?? !special
        singleWord = try keys.decodeIfPresent(Bool.self, forKey: .singleWord) ?? false
        leftStrip = try keys.decodeIfPresent(Bool.self, forKey: .leftStrip) ?? false
        rightStrip = try keys.decodeIfPresent(Bool.self, forKey: .rightStrip) ?? false
    }
}

/// Finds added tokens in a text as the reference's `AddedVocabulary::find_matches` does: an
/// Aho-Corasick search with leftmost-longest semantics (the earliest start, then the longest
/// token there), then the `single_word`, `lstrip` and `rstrip` rules. Everything between
/// matches is left for the normal pipeline.
struct AddedTokenMatcher: Sendable {
    private struct Options: Sendable {
        let singleWord: Bool
        let leftStrip: Bool
        let rightStrip: Bool
    }

    private let trie: ScalarTrie
    /// Options per trie value (an index into this array); the token id is alongside.
    private let options: [Options]
    private let ids: [Int]
    /// First scalars of the patterns: a quick filter so most positions cost one array read.
    private let startsASCII: [Bool]
    private let startsOther: Set<UInt32>

    /// `patterns` pairs each token with the text to look for (its content, or its normalized
    /// content for `normalized` tokens). Empty patterns are ignored, as in the reference.
    init?(_ patterns: [(token: AddedToken, id: Int, pattern: String)]) {
        var trie = ScalarTrie()
        var options: [Options] = [], ids: [Int] = []
        var ascii = [Bool](repeating: false, count: 128)
        var other = Set<UInt32>()
        for (token, id, pattern) in patterns where !pattern.isEmpty {
            let scalars = pattern.unicodeScalars.map(\.value)
            trie.insert(scalars, id: Int32(options.count))
            options.append(Options(singleWord: token.singleWord, leftStrip: token.leftStrip, rightStrip: token.rightStrip))
            ids.append(id)
            if scalars[0] < 128 { ascii[Int(scalars[0])] = true } else { other.insert(scalars[0]) }
        }
        guard !options.isEmpty else { return nil }
        self.trie = trie
        self.options = options
        self.ids = ids
        self.startsASCII = ascii
        self.startsOther = other
    }

    /// Calls `body` for each part of `text` in order: a range with the added token's id, or a
    /// range of ordinary text (never empty) with nil.
    func split(_ text: UnsafeBufferPointer<UInt32>, _ body: (Range<Int>, Int?) -> Void) {
        let count = text.count
        var done = 0
        var index = 0
        while index < count {
            let first = text[index]
            let mayStart = first < 128 ? startsASCII[Int(first)] : startsOther.contains(first)
            guard mayStart, let match = trie.longestMatch(in: text, from: index, to: count) else {
                index += 1
                continue
            }
            let option = options[Int(match.id)]
            var start = index, stop = match.end
            if option.singleWord {
                let startsWord = start == 0 || !UnicodeClasses.isWordCharacter(text[start - 1])
                let endsWord = stop == count || !UnicodeClasses.isWordCharacter(text[stop])
                if !(startsWord && endsWord) {
                    // The reference's search has consumed this match; it resumes after it.
                    index = stop
                    continue
                }
            }
            if option.leftStrip {
                while start > done && UnicodeClasses.isWhitespace(text[start - 1]) { start -= 1 }
            }
            if option.rightStrip {
                while stop < count && UnicodeClasses.isWhitespace(text[stop]) { stop += 1 }
            }
            if done < start { body(done..<start, nil) }
            body(start..<stop, ids[Int(match.id)])
            done = stop
            index = stop
        }
        if done < count { body(done..<count, nil) }
    }
}
