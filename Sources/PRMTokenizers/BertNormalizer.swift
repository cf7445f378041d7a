import Foundation

/// `BertNormalizer` (tokenizers/src/normalizers/bert.rs), in the reference's order:
/// clean_text, handle_chinese_chars, strip_accents (NFD, then drop Mn), lowercase.
struct BertNormalizer: Normalizer, Decodable {
    /// Drop NUL, U+FFFD and control characters; map every whitespace to U+0020.
    let cleanText: Bool
    /// Put spaces around CJK ideographs so each becomes its own word.
    let handleChineseChars: Bool
    /// NFD, then drop non-spacing marks. `strip_accents: null` follows `lowercase` (the reference's
    /// `strip_accents.unwrap_or(lowercase)`), which is what uncased BERT files rely on.
    let stripAccents: Bool
    let lowercase: Bool

    private enum CodingKeys: String, CodingKey {
        case cleanText = "clean_text"
        case handleChineseChars = "handle_chinese_chars"
        case stripAccents = "strip_accents"
        case lowercase
    }

    init(cleanText: Bool = true, handleChineseChars: Bool = true, stripAccents: Bool? = nil, lowercase: Bool = true) {
        self.cleanText = cleanText
        self.handleChineseChars = handleChineseChars
        self.stripAccents = stripAccents ?? lowercase
        self.lowercase = lowercase
    }

    init(from decoder: any Decoder) throws {
        let keys = try decoder.container(keyedBy: CodingKeys.self)
        self.init(
            cleanText: try keys.decodeIfPresent(Bool.self, forKey: .cleanText) ?? true,
            handleChineseChars: try keys.decodeIfPresent(Bool.self, forKey: .handleChineseChars) ?? true,
            stripAccents: try keys.decodeIfPresent(Bool.self, forKey: .stripAccents),
            lowercase: try keys.decodeIfPresent(Bool.self, forKey: .lowercase) ?? true)
    }

    func normalize(_ input: UnsafeBufferPointer<UInt32>, into output: inout [UInt32]) {
        let mark = output.count
        if normalizeWithoutNFD(input, into: &output) { return }
        output.removeSubrange(mark...)
        normalizeWithNFD(input, into: &output)
    }

    /// One pass doing every step per scalar: exact while no scalar needs NFD, which holds for
    /// nearly all text. Returns false (leaving partial output) as soon as one does.
    private func normalizeWithoutNFD(_ input: UnsafeBufferPointer<UInt32>, into output: inout [UInt32]) -> Bool {
        for code in input {
            if code < 0x80 {
                if cleanText {
                    if code == 0x20 || code == 0x09 || code == 0x0A || code == 0x0D { output.append(0x20); continue }
                    if code < 0x20 || code == 0x7F { continue }
                }
                output.append(lowercase && code >= 0x41 && code <= 0x5A ? code + 0x20 : code)
                continue
            }
            let flags = UnicodeClasses.flags(code)
            if cleanText {
                // The reference filters controls first, then maps whitespace: U+0085 is both
                // and is dropped.
                if code == 0xFFFD || flags.contains(.bertControl) { continue }
                if UnicodeClasses.isWhitespace(code) { output.append(0x20); continue }
            }
            if stripAccents && flags.contains(.needsNFD) { return false }
            if handleChineseChars && UnicodeClasses.isChineseCharacter(code) {
                output.append(0x20); output.append(code); output.append(0x20)
                continue
            }
            if lowercase { Self.appendLowercase(code, to: &output) } else { output.append(code) }
        }
        return true
    }

    /// The reference's steps one after another, with Foundation's NFD (canonical reordering
    /// spans scalars, so it cannot be done per scalar).
    private func normalizeWithNFD(_ input: UnsafeBufferPointer<UInt32>, into output: inout [UInt32]) {
        var cleaned = String.UnicodeScalarView()
        for code in input {
            guard let scalar = Unicode.Scalar(code) else { continue }
            if cleanText {
                if code == 0 || code == 0xFFFD || UnicodeClasses.flags(code).contains(.bertControl) { continue }
                if code == 0x09 || code == 0x0A || code == 0x0D || UnicodeClasses.isWhitespace(code) {
                    cleaned.append(" ")
                    continue
                }
            }
            if handleChineseChars && UnicodeClasses.isChineseCharacter(code) {
                cleaned.append(" "); cleaned.append(scalar); cleaned.append(" ")
            } else {
                cleaned.append(scalar)
            }
        }
        let decomposed = String(cleaned).decomposedStringWithCanonicalMapping
        for scalar in decomposed.unicodeScalars {
            let code = scalar.value
            if UnicodeClasses.flags(code).contains(.nonspacingMark) { continue }
            if lowercase { Self.appendLowercase(code, to: &output) } else { output.append(code) }
        }
    }

    /// Rust's `char::to_lowercase`, the full mapping without context (so 'İ' becomes "i̇" and
    /// final sigma is not special): the same as Swift's `lowercaseMapping`.
    @inline(__always)
    static func appendLowercase(_ code: UInt32, to output: inout [UInt32]) {
        if code < 0x80 {
            output.append(code >= 0x41 && code <= 0x5A ? code + 0x20 : code)
            return
        }
        guard let scalar = Unicode.Scalar(code) else { return }
        for lower in scalar.properties.lowercaseMapping.unicodeScalars { output.append(lower.value) }
    }
}
