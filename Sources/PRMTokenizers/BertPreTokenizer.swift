import Foundation

/// `BertPreTokenizer` (tokenizers/src/pre_tokenizers/bert.rs): split on whitespace (removed),
/// then isolate every punctuation character (`is_ascii_punctuation || is_punctuation`).
struct BertPreTokenizer: PreTokenizer {
    func preTokenize(_ text: UnsafeBufferPointer<UInt32>, into pieces: inout Pieces) {
        var wordStart = -1
        for code in text {
            if UnicodeClasses.isWhitespace(code) {
                if wordStart >= 0 { pieces.ranges.append(wordStart..<pieces.scalars.count); wordStart = -1 }
            } else if UnicodeClasses.flags(code).contains(.bertPunctuation) {
                if wordStart >= 0 { pieces.ranges.append(wordStart..<pieces.scalars.count); wordStart = -1 }
                pieces.scalars.append(code)
                pieces.ranges.append(pieces.scalars.count - 1..<pieces.scalars.count)
            } else {
                if wordStart < 0 { wordStart = pieces.scalars.count }
                pieces.scalars.append(code)
            }
        }
        if wordStart >= 0 { pieces.ranges.append(wordStart..<pieces.scalars.count) }
    }
}
