import Foundation

/// GPT-2's reversible byte ↔ character map (openai/gpt-2 encoder.py `bytes_to_unicode`,
/// tokenizers/src/pre_tokenizers/byte_level.rs `bytes_char`): printable bytes stand for
/// themselves, the other 68 bytes take U+0100 upwards in byte order.
enum ByteLevelAlphabet {
    /// The character standing for each byte.
    static let characters: [UInt32] = {
        var table = [UInt32](repeating: 0, count: 256)
        var next: UInt32 = 256
        for byte in 0..<256 {
            if (0x21...0x7E).contains(byte) || (0xA1...0xAC).contains(byte) || (0xAE...0xFF).contains(byte) {
                table[byte] = UInt32(byte)
            } else {
                table[byte] = next
                next += 1
            }
        }
        return table
    }()

    /// The byte each character stands for, -1 for characters outside the alphabet (all of them
    /// are below U+0144).
    static let bytes: [Int16] = {
        var table = [Int16](repeating: -1, count: 0x144)
        for (byte, character) in characters.enumerated() { table[Int(character)] = Int16(byte) }
        return table
    }()

    @inline(__always)
    static func byte(for character: UInt32) -> UInt8? {
        guard character < UInt32(bytes.count) else { return nil }
        let byte = bytes[Int(character)]
        return byte < 0 ? nil : UInt8(byte)
    }
}

/// The `ByteLevel` pre-tokenizer: optionally a space before the segment, the GPT-2 split regex,
/// then every UTF-8 byte of each piece replaced by its alphabet character.
struct ByteLevelPreTokenizer: PreTokenizer, Decodable {
    /// Prepend a space when the segment does not start with one (the reference tests for
    /// U+0020 only), so the first word is tokenized like any other.
    let addPrefixSpace: Bool
    /// Split with the GPT-2 pattern; without it each segment is one piece.
    let useRegex: Bool

    private enum CodingKeys: String, CodingKey {
        case addPrefixSpace = "add_prefix_space"
        case useRegex = "use_regex"
    }

    init(addPrefixSpace: Bool = true, useRegex: Bool = true) {
        self.addPrefixSpace = addPrefixSpace
        self.useRegex = useRegex
    }

    init(from decoder: any Decoder) throws {
        let keys = try decoder.container(keyedBy: CodingKeys.self)
        self.init(addPrefixSpace: try keys.decodeIfPresent(Bool.self, forKey: .addPrefixSpace) ?? true,
                  useRegex: try keys.decodeIfPresent(Bool.self, forKey: .useRegex) ?? true)
    }

    func preTokenize(_ text: UnsafeBufferPointer<UInt32>, into pieces: inout Pieces) {
        guard !text.isEmpty else { return }
        if addPrefixSpace && text[0] != 0x20 {
            var prefixed = [UInt32](repeating: 0x20, count: text.count + 1)
            for index in 0..<text.count { prefixed[index + 1] = text[index] }
            prefixed.withUnsafeBufferPointer { split($0, into: &pieces) }
        } else {
            split(text, into: &pieces)
        }
    }

    private func split(_ text: UnsafeBufferPointer<UInt32>, into pieces: inout Pieces) {
        var start = 0
        while start < text.count {
            let end = useRegex ? GPT2Split.matchEnd(text, from: start) : text.count
            let pieceStart = pieces.scalars.count
            for index in start..<end { Self.appendBytes(of: text[index], to: &pieces.scalars) }
            pieces.ranges.append(pieceStart..<pieces.scalars.count)
            start = end
        }
    }

    /// The UTF-8 bytes of `code`, each as its alphabet character.
    @inline(__always)
    static func appendBytes(of code: UInt32, to output: inout [UInt32]) {
        let map = ByteLevelAlphabet.characters
        switch code {
        case 0..<0x80:
            output.append(map[Int(code)])
        case 0x80..<0x800:
            output.append(map[Int(0xC0 | code >> 6)])
            output.append(map[Int(0x80 | code & 0x3F)])
        case 0x800..<0x10000:
            output.append(map[Int(0xE0 | code >> 12)])
            output.append(map[Int(0x80 | code >> 6 & 0x3F)])
            output.append(map[Int(0x80 | code & 0x3F)])
        default:
            output.append(map[Int(0xF0 | code >> 18 & 0x07)])
            output.append(map[Int(0x80 | code >> 12 & 0x3F)])
            output.append(map[Int(0x80 | code >> 6 & 0x3F)])
            output.append(map[Int(0x80 | code & 0x3F)])
        }
    }
}

/// A hand-written matcher for GPT-2's split pattern
/// `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`
/// (Oniguruma, leftmost alternative first, greedy). Every character falls in exactly one of
/// letter, number, whitespace or other, so the pattern covers the whole text and a split is a
/// sequence of matches.
enum GPT2Split {
    enum Class { case letter, number, whitespace, other }

    @inline(__always)
    static func classify(_ code: UInt32) -> Class {
        if UnicodeClasses.isWhitespace(code) { return .whitespace }
        let flags = UnicodeClasses.flags(code)
        if flags.contains(.letter) { return .letter }
        if flags.contains(.number) { return .number }
        return .other
    }

    /// The end of the match that starts at `start` (< text.count).
    static func matchEnd(_ text: UnsafeBufferPointer<UInt32>, from start: Int) -> Int {
        let count = text.count
        let first = text[start]
        // 's 't 're 've 'm 'll 'd, lowercase only, as in the pattern.
        if first == 0x27, start + 1 < count {
            let second = text[start + 1]
            if second == 0x73 || second == 0x74 || second == 0x6D || second == 0x64 { return start + 2 } // s t m d
            if start + 2 < count {
                let third = text[start + 2]
                if (second == 0x72 || second == 0x76) && third == 0x65 { return start + 3 } // re ve
                if second == 0x6C && third == 0x6C { return start + 3 } // ll
            }
        }
        var runStart = start
        var kind = classify(first)
        // ` ?X+`: a single U+0020 joins the run of letters, numbers or others after it.
        if first == 0x20, start + 1 < count {
            let next = classify(text[start + 1])
            if next != .whitespace {
                kind = next
                runStart = start + 1
            }
        }
        var end = runStart + 1
        while end < count && classify(text[end]) == kind { end += 1 }
        guard kind == .whitespace else { return end }
        // `\s+(?!\S)`: a whitespace run that reaches the end is taken whole; one followed by a
        // non-space gives back its last character (which then prefixes the next word) when it
        // is longer than one; otherwise `\s+` takes the single character.
        if end == count { return end }
        return end - start >= 2 ? end - 1 : start + 1
    }
}

/// The `ByteLevel` decoder: every token's characters back to bytes (a token with a character
/// outside the alphabet contributes its own UTF-8, as the reference does), then the bytes as
/// UTF-8 with invalid sequences replaced by U+FFFD (Rust's `from_utf8_lossy`).
struct ByteLevelDecoder: TokenDecoder {
    func decode(_ tokens: [String]) -> String {
        var bytes: [UInt8] = []
        for token in tokens {
            let mark = bytes.count
            var mapped = true
            for scalar in token.unicodeScalars {
                guard let byte = ByteLevelAlphabet.byte(for: scalar.value) else { mapped = false; break }
                bytes.append(byte)
            }
            if !mapped {
                bytes.removeSubrange(mark...)
                bytes.append(contentsOf: token.utf8)
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}

/// Post-processors that add nothing to a single sequence (`ByteLevel` only trims offsets).
struct NoSpecialTokens: PostProcessor {
    func addingSpecialTokens(_ ids: [Int]) -> [Int] { ids }
    var specialTokenCount: Int { 0 }
}
