import Foundation

/// The `Digits` pre-tokenizer (tokenizers/src/pre_tokenizers/digits.rs): numbers (`\p{N}`) are
/// split from the rest, each digit alone with `individual_digits` (SmolLM2's), else runs of them.
struct DigitsPreTokenizer: PreTokenizer, Decodable {
    let individualDigits: Bool

    private enum CodingKeys: String, CodingKey { case individualDigits = "individual_digits" }

    init(individualDigits: Bool) { self.individualDigits = individualDigits }

    init(from decoder: any Decoder) throws {
        let keys = try decoder.container(keyedBy: CodingKeys.self)
        self.init(individualDigits: try keys.decodeIfPresent(Bool.self, forKey: .individualDigits) ?? false)
    }

    func preTokenize(_ text: UnsafeBufferPointer<UInt32>, into pieces: inout Pieces) {
        var start = 0
        while start < text.count {
            let isNumber = UnicodeClasses.flags(text[start]).contains(.number)
            var end = start + 1
            if !(isNumber && individualDigits) {
                while end < text.count && UnicodeClasses.flags(text[end]).contains(.number) == isNumber { end += 1 }
            }
            pieces.append(text[start..<end])
            start = end
        }
    }
}
