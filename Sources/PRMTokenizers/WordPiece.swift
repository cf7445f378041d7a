import Foundation

/// The `WordPiece` model (tokenizers/src/models/wordpiece/mod.rs `tokenize`): greedy
/// longest-match-first from the start of the word; every later piece is looked up with the
/// continuation prefix (`##`); a word with more than `max_input_chars_per_word` characters, or one
/// with a position no vocabulary entry matches, becomes the single unk token.
struct WordPieceModel: TokenModel, Decodable {
    private let vocabulary: [String: Int]
    private let tokens: [String?]
    private let trie: ScalarTrie
    /// The trie node after the continuation prefix: continuation pieces are matched from here,
    /// as the reference looks up `prefix + piece`. -1 when no token has the prefix.
    private let continuationNode: Int32
    let unknownID: Int
    let maxInputCharsPerWord: Int

    private enum CodingKeys: String, CodingKey {
        case vocab
        case unkToken = "unk_token"
        case continuingSubwordPrefix = "continuing_subword_prefix"
        case maxInputCharsPerWord = "max_input_chars_per_word"
    }

    init(from decoder: any Decoder) throws {
        let keys = try decoder.container(keyedBy: CodingKeys.self)
        let vocabulary = try keys.decode([String: Int].self, forKey: .vocab)
        let unkToken = try keys.decodeIfPresent(String.self, forKey: .unkToken) ?? "[UNK]"
        let prefix = try keys.decodeIfPresent(String.self, forKey: .continuingSubwordPrefix) ?? "##"
        let maxChars = try keys.decodeIfPresent(Int.self, forKey: .maxInputCharsPerWord) ?? 100
        try self.init(vocabulary: vocabulary, unkToken: unkToken, continuationPrefix: prefix,
                      maxInputCharsPerWord: maxChars)
    }

    init(vocabulary: [String: Int], unkToken: String, continuationPrefix: String, maxInputCharsPerWord: Int) throws {
        guard let unknownID = vocabulary[unkToken] else {
            throw ConfigProblem(.missingToken, "model.vocab has no unk token '\(unkToken)'")
        }
        self.tokens = try makeIDTable(vocabulary, section: "model.vocab")
        var trie = ScalarTrie()
        for (token, id) in vocabulary { trie.insert(token.unicodeScalars.lazy.map(\.value), id: Int32(id)) }
        self.continuationNode = trie.node(for: continuationPrefix.unicodeScalars.lazy.map(\.value))
        self.trie = trie
        self.vocabulary = vocabulary
        self.unknownID = unknownID
        self.maxInputCharsPerWord = maxInputCharsPerWord
    }

    func tokenize(_ piece: UnsafeBufferPointer<UInt32>, into ids: inout [Int]) {
        // The reference counts characters (scalars), not bytes.
        if piece.count > maxInputCharsPerWord {
            ids.append(unknownID)
            return
        }
        let mark = ids.count
        var start = 0
        while start < piece.count {
            let node = start == 0 ? ScalarTrie.root : continuationNode
            guard node >= 0,
                  let match = trie.longestMatch(in: piece, from: start, to: piece.count, startingAt: node) else {
                // One unsplittable position makes the whole word unknown, not just that piece.
                ids.removeSubrange(mark...)
                ids.append(unknownID)
                return
            }
            ids.append(Int(match.id))
            start = match.end
        }
    }

    func id(of token: String) -> Int? { vocabulary[token] }

    func token(of id: Int) -> String? { id >= 0 && id < tokens.count ? tokens[id] : nil }

    var idCount: Int { tokens.count }

    var vocabularyCount: Int { vocabulary.count }
}

/// id → token table for a vocabulary; ids must be non-negative and small enough to index.
///
/// Known limit: vocabularies are decoded as `[String: Int]`, and Swift compares strings by
/// canonical equivalence, so two keys that differ only in composition ("é" and "e\u{301}")
/// collapse into one and the other's id is lost. Neither MiniLM's vocabulary nor a byte-level
/// one (whose alphabet holds no combining marks) has such a pair.
func makeIDTable(_ vocabulary: [String: Int], section: String) throws -> [String?] {
    guard let largest = vocabulary.values.max() else {
        throw ConfigProblem(.invalidValue, "\(section) is empty")
    }
    guard let smallest = vocabulary.values.min(), smallest >= 0, largest < Int(Int32.max) else {
        throw ConfigProblem(.invalidValue, "\(section) has ids outside 0..<\(Int32.max)")
    }
    var tokens = [String?](repeating: nil, count: largest + 1)
    for (token, id) in vocabulary { tokens[id] = token }
    return tokens
}

/// The `WordPiece` decoder (tokenizers/src/decoders/wordpiece.rs): a token with the prefix is
/// glued to the previous one, any other gets a space; with `cleanup`, each token (with its
/// leading space) goes through the reference's `cleanup` replacements.
struct WordPieceDecoder: TokenDecoder, Decodable {
    let prefix: String
    let cleanup: Bool

    private enum CodingKeys: String, CodingKey { case prefix, cleanup }

    init(prefix: String = "##", cleanup: Bool = true) {
        self.prefix = prefix
        self.cleanup = cleanup
    }

    init(from decoder: any Decoder) throws {
        let keys = try decoder.container(keyedBy: CodingKeys.self)
        self.init(prefix: try keys.decodeIfPresent(String.self, forKey: .prefix) ?? "##",
                  cleanup: try keys.decodeIfPresent(Bool.self, forKey: .cleanup) ?? true)
    }

    /// The reference's `cleanup`, in its order. Applied per token, so " do not" never matches
    /// across tokens there either.
    private static let replacements: [([UInt8], [UInt8])] = [
        (" .", "."), (" ?", "?"), (" !", "!"), (" ,", ","), (" ' ", "'"), (" n't", "n't"),
        (" 'm", "'m"), (" do not", " don't"), (" 's", "'s"), (" 've", "'ve"), (" 're", "'re"),
    ].map { (Array($0.0.utf8), Array($0.1.utf8)) }

    func decode(_ tokens: [String]) -> String {
        let prefixBytes = Array(prefix.utf8)
        var output: [UInt8] = []
        for (index, token) in tokens.enumerated() {
            var bytes = Array(token.utf8)
            if index != 0 {
                // An empty prefix matches every token (Rust's `strip_prefix("")`), so all glue.
                if bytes.starts(with: prefixBytes) {
                    bytes.removeFirst(prefixBytes.count)
                } else {
                    bytes.insert(0x20, at: 0)
                }
            }
            if cleanup {
                for (pattern, replacement) in Self.replacements {
                    bytes = replaceAll(bytes, pattern, replacement)
                }
            }
            output.append(contentsOf: bytes)
        }
        return String(decoding: output, as: UTF8.self)
    }
}

/// Rust's `str::replace` on bytes: every non-overlapping occurrence, left to right. (Swift's
/// `String.replacing` compares Characters, so " ." would not match before a combining mark.)
func replaceAll(_ bytes: [UInt8], _ pattern: [UInt8], _ replacement: [UInt8]) -> [UInt8] {
    guard !pattern.isEmpty, bytes.count >= pattern.count else { return bytes }
    var result: [UInt8] = []
    result.reserveCapacity(bytes.count)
    var index = 0
    while index < bytes.count {
        if index + pattern.count <= bytes.count && bytes[index] == pattern[0]
            && bytes[index..<index + pattern.count].elementsEqual(pattern) {
            result.append(contentsOf: replacement)
            index += pattern.count
        } else {
            result.append(bytes[index])
            index += 1
        }
    }
    return result
}
