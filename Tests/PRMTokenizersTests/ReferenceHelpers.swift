import Foundation
import PRMTestSupport
import XCTest
@testable import PRMTokenizers

/// Calls into Tests/Reference/tokenizer_reference.py and train_bpe.py, and the corpus.
enum Reference {
    /// One JSON request to tokenizer_reference.py; the JSON object it prints.
    static func call(_ request: [String: Any]) throws -> [String: Any] {
        let input = try JSONSerialization.data(withJSONObject: request)
        let output = try TestSupport.runPython(TestSupport.referenceScript("tokenizer_reference.py"), input: input)
        guard let answer = try JSONSerialization.jsonObject(with: output) as? [String: Any] else {
            throw TestSupport.Failure("tokenizer_reference.py printed no JSON object")
        }
        return answer
    }

    struct Encoded {
        let ids: [[Int]]
        let decoded: [String]
        let decodedSkippingSpecial: [String]
        let decodedIDs: [String]
        let decodedIDsSkippingSpecial: [String]
        let vocabularySize: Int
        let tokenIDs: [String: Int?]
    }

    static func encode(tokenizer: URL, texts: [String], addSpecialTokens: Bool,
                       decode: [[Int]] = [], tokens: [String] = []) throws -> Encoded {
        let answer = try call([
            "tokenizer": tokenizer.path, "texts": texts, "add_special_tokens": addSpecialTokens,
            "decode": decode, "tokens": tokens,
        ])
        func field<T>(_ key: String, as _: T.Type) throws -> T {
            guard let value = answer[key] as? T else { throw TestSupport.Failure("reference answer lacks '\(key)' as \(T.self)") }
            return value
        }
        var tokenIDs: [String: Int?] = [:]
        for (token, id) in try field("token_ids", as: [String: Any].self) { tokenIDs[token] = id as? Int }
        return Encoded(
            ids: try field("ids", as: [[Int]].self),
            decoded: try field("decoded", as: [String].self),
            decodedSkippingSpecial: try field("decoded_skipping_special", as: [String].self),
            decodedIDs: try field("decoded_ids", as: [String].self),
            decodedIDsSkippingSpecial: try field("decoded_ids_skipping_special", as: [String].self),
            vocabularySize: try field("vocab_size", as: Int.self),
            tokenIDs: tokenIDs)
    }

    static func normalize(tokenizer: URL, texts: [String]) throws -> [String] {
        guard let result = try call(["tokenizer": tokenizer.path, "normalize": texts])["normalized"] as? [String] else {
            throw TestSupport.Failure("reference answer lacks 'normalized'")
        }
        return result
    }

    static func preTokenize(tokenizer: URL, texts: [String]) throws -> [[String]] {
        guard let result = try call(["tokenizer": tokenizer.path, "pre_tokenize": texts])["pre_tokenized"] as? [[String]] else {
            throw TestSupport.Failure("reference answer lacks 'pre_tokenized'")
        }
        return result
    }

    /// The lengthpref data; missing data is a failure.
    static var lengthprefDirectory: URL {
        get throws {
            let directory = TestSupport.lengthprefDirectory
            guard FileManager.default.fileExists(atPath: directory.appendingPathComponent("train.jsonl").path) else {
                throw TestSupport.Failure("lengthpref data not found (looked in data/lengthpref and shared/data/lengthpref above \(TestSupport.repoRoot.path))")
            }
            return directory
        }
    }

    /// Every prompt, chosen and rejected text of lengthpref's train.jsonl and dev.jsonl.
    static func corpus() throws -> [String] {
        var texts: [String] = []
        for name in ["train.jsonl", "dev.jsonl"] {
            let url = try lengthprefDirectory.appendingPathComponent(name)
            guard FileManager.default.fileExists(atPath: url.path) else {
                throw TestSupport.Failure("corpus file missing: \(url.path)")
            }
            let data = try Data(contentsOf: url)
            for (number, line) in String(decoding: data, as: UTF8.self).split(separator: "\n").enumerated() {
                guard let record = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else {
                    throw TestSupport.Failure("\(name):\(number + 1) is not a JSON object")
                }
                for field in ["prompt", "chosen", "rejected"] {
                    guard let text = record[field] as? String else {
                        throw TestSupport.Failure("\(name):\(number + 1) has no string '\(field)'")
                    }
                    texts.append(text)
                }
            }
        }
        guard texts.count > 1000 else { throw TestSupport.Failure("corpus has only \(texts.count) texts") }
        return texts
    }

    static var miniLMTokenizer: URL {
        get throws { try TestSupport.miniLMDirectory().appendingPathComponent("tokenizer.json") }
    }

    /// A byte-level BPE tokenizer.json trained by train_bpe.py on the corpus, once per run.
    static func trainedBPE() throws -> URL {
        try TrainedBPE.shared.url()
    }
}

/// Trains the BPE tokenizer once per test process (training takes about a second).
private final class TrainedBPE: @unchecked Sendable {
    // @unchecked: `cached` is only touched while holding `lock`.
    static let shared = TrainedBPE()
    private let lock = NSLock()
    private var cached: URL?

    func url() throws -> URL {
        lock.lock()
        defer { lock.unlock() }
        if let cached { return cached }
        let folder = try TestSupport.temporaryDirectory("prm-bpe")
        let out = folder.appendingPathComponent("tokenizer.json")
        let data = try Reference.lengthprefDirectory
        try TestSupport.runPython(TestSupport.referenceScript("train_bpe.py"), [
            "--corpus", data.appendingPathComponent("train.jsonl").path, data.appendingPathComponent("dev.jsonl").path,
            "--vocab-size", "2000", "--out", out.path,
        ])
        cached = out
        return out
    }
}

/// The first index where `a` and `b` differ (the shorter count when one is a prefix).
func firstMismatch<T: Equatable>(_ a: [T], _ b: [T]) -> Int {
    for index in 0..<min(a.count, b.count) where a[index] != b[index] { return index }
    return min(a.count, b.count)
}

/// Compares id lists text by text; reports the first few mismatches with the text and both
/// lists, and fails.
func assertSameIDs(_ swift: [[Int]], _ reference: [[Int]], texts: [String], label: String,
                   file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertEqual(swift.count, reference.count, "\(label): result counts differ", file: file, line: line)
    var mismatches = 0
    for index in 0..<min(swift.count, reference.count) where swift[index] != reference[index] {
        mismatches += 1
        if mismatches <= 5 {
            let text = texts[index]
            let shown = text.count > 300 ? String(text.prefix(300)) + "…" : text
            let first = firstMismatch(swift[index], reference[index])
            XCTFail("""
                \(label): text \(index) differs at id \(first): \(shown.debugDescription)
                  swift:     \(swift[index].prefix(first + 12))\(swift[index].count > first + 12 ? "… (\(swift[index].count) ids)" : "")
                  reference: \(reference[index].prefix(first + 12))\(reference[index].count > first + 12 ? "… (\(reference[index].count) ids)" : "")
                """, file: file, line: line)
        }
    }
    if mismatches > 5 { XCTFail("\(label): \(mismatches) texts differ in all", file: file, line: line) }
}

/// Compares decoded strings one by one, reporting the first few differences.
func assertSameStrings(_ swift: [String], _ reference: [String], inputs: [String], label: String,
                       file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertEqual(swift.count, reference.count, "\(label): result counts differ", file: file, line: line)
    var mismatches = 0
    for index in 0..<min(swift.count, reference.count) where swift[index] != reference[index] {
        mismatches += 1
        if mismatches <= 5 {
            XCTFail("""
                \(label): input \(index) \(String(inputs[index].prefix(200)).debugDescription)
                  swift:     \(String(swift[index].prefix(300)).debugDescription)
                  reference: \(String(reference[index].prefix(300)).debugDescription)
                """, file: file, line: line)
        }
    }
    if mismatches > 5 { XCTFail("\(label): \(mismatches) differ in all", file: file, line: line) }
}

/// Texts that exercise every stage's corner cases; `[CLS]` and `<|endoftext|>` are added
/// tokens of the two tokenizers under test.
let edgeCaseTexts: [String] = [
    "", " ", "   ", "\t", "\n", "\t\n\r ", "\n\n\n", "\r\n",
    "Hello, world!", "MiXeD CaSe TeXt WITH CAPS", "  leading and trailing  ", "multiple   spaces\t\there",
    "héllo wörld", "Ñandú, Åsa, café, naïve, résumé, façade", "e\u{301}", "a\u{300}\u{316}b", "cafe\u{301} au lait",
    "a\u{0308}\u{0301}o", "\u{212B}ngström", "İstanbul ΣΊΣΥΦΟΣ ß ﬁ ﬀ Ǆǅǆ", "Ｆｕｌｌｗｉｄｔｈ ＡＢＣ",
    "日本語のテキスト", "中文字符测试，标点。", "한국어 텍스트 한", "\u{F900}\u{F901} compatibility ideographs", "日本\u{3099}",
    "مرحبا بالعالم", "नमस्ते दुनिया", "Ελληνικά κείμενα", "Русский текст",
    "emoji 😀🎉👍🏽 👨‍👩‍👧‍👦 🥲 🫠 🇺🇸", "😀", "👍🏽",
    "control\u{01}\u{07}\u{1B}chars\u{7F}", "tab\tnew\nline\r\ncr", "nul\u{0}inside", "\u{0}",
    "replacement\u{FFFD}char", "zero\u{200B}width\u{200C}join\u{200D}er\u{FEFF}bom", "soft\u{AD}hyphen",
    "\u{A0}nbsp\u{2003}emspace\u{3000}ideographic", "\u{85}nel\u{2028}ls\u{2029}ps\u{0B}vt\u{0C}ff",
    "\u{E000}private use \u{F0000}", "\u{378}unassigned \u{10FFFF}", "\u{1E6C0}\u{11DB0} new letters",
    String(repeating: "a", count: 500), String(repeating: "abc", count: 34), String(repeating: "x", count: 100),
    String(repeating: "é", count: 101), String(repeating: "supercalifragilistic", count: 10),
    "https://example.com/path/to/page?query=1&x=y#fragment", "mail me at someone@example.org!",
    "3.14159, 1,000,000 and -42.5% or $19.99 (approx.) 2nd 10:30pm", "123abc 4½ ²³ ١٢٣ 0x1F",
    "don't won't I'm you're they've we'll he'd it's", "'s 'S 're 'RE '' 'll ' ''s", "foo!!!bar???baz...",
    "[CLS] inside [SEP] text [PAD][MASK] [UNK]", "a[CLS]b", "[cls] lowercase [Cls]", "[CLS]",
    "<|endoftext|>", "<|endoftext|>between<|endoftext|>", "text <|endoftext|> more", "<|endoftext|<|endoftext|>>",
    "He said: \"yes\" — and ‘no’… “quotes”", "C++ & C# | a<b>c {x} [y] ~z^ `code` \\ /",
    "Human: How are you?\n\nAssistant: I'm fine, thanks!",
]
