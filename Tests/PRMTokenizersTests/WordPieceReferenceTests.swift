import Foundation
import PRMTestSupport
import XCTest
@testable import PRMTokenizers

/// all-MiniLM-L6-v2's BERT WordPiece tokenizer against Hugging Face `tokenizers` on the same file.
final class WordPieceReferenceTests: XCTestCase {
    private func load() throws -> (any Tokenizer, URL) {
        let url = try Reference.miniLMTokenizer
        return (try TokenizerLoader.load(contentsOf: url), url)
    }

    func testCorpusIDsAndDecodingMatchReference() throws {
        let (tokenizer, url) = try load()
        let texts = try Reference.corpus()
        let reference = try Reference.encode(tokenizer: url, texts: texts, addSpecialTokens: true)
        let ids = tokenizer.encodeBatch(texts, addSpecialTokens: true)
        assertSameIDs(ids, reference.ids, texts: texts, label: "MiniLM corpus")
        // Decode HF's ids so a decoding difference is not masked by an encoding one.
        assertSameStrings(reference.ids.map { tokenizer.decode($0, skipSpecialTokens: false) }, reference.decoded,
                          inputs: texts, label: "MiniLM corpus decode")
        assertSameStrings(reference.ids.map { tokenizer.decode($0, skipSpecialTokens: true) },
                          reference.decodedSkippingSpecial, inputs: texts, label: "MiniLM corpus decode skipping special")
    }

    func testEdgeCasesMatchReference() throws {
        let (tokenizer, url) = try load()
        let texts = edgeCaseTexts + [try Reference.corpus().prefix(40).joined(separator: "\n")]
        for addSpecial in [false, true] {
            let reference = try Reference.encode(tokenizer: url, texts: texts, addSpecialTokens: addSpecial)
            let ids = texts.map { tokenizer.encode($0, addSpecialTokens: addSpecial) }
            assertSameIDs(ids, reference.ids, texts: texts, label: "MiniLM edge cases, special \(addSpecial)")
            assertSameStrings(reference.ids.map { tokenizer.decode($0, skipSpecialTokens: false) }, reference.decoded,
                              inputs: texts, label: "MiniLM edge-case decode")
            assertSameStrings(reference.ids.map { tokenizer.decode($0, skipSpecialTokens: true) },
                              reference.decodedSkippingSpecial, inputs: texts, label: "MiniLM edge-case decode skipping special")
        }
    }

    func testDecodingArbitraryIDsMatchesReference() throws {
        let (tokenizer, url) = try load()
        // Continuation pieces first, specials in the middle, an id beyond the vocabulary
        // (skipped by both), punctuation the cleanup glues, " do not" split across tokens.
        let lists: [[Int]] = [
            [], [2001], [7592, 999999, 2088], [1001, 1001], [101, 102, 0, 100, 103],
            [2023, 1012, 2003, 1029, 999, 1010, 1005, 1056, 2079, 2025],
            [tokenizer.id(of: "##ing") ?? -1, tokenizer.id(of: "run") ?? -1, tokenizer.id(of: "##ning") ?? -1],
            Array(0..<300), Array(29_900..<30_522),
        ]
        let reference = try Reference.encode(tokenizer: url, texts: [], addSpecialTokens: false, decode: lists)
        let inputs = lists.map { "\($0.prefix(10))" }
        assertSameStrings(lists.map { tokenizer.decode($0, skipSpecialTokens: false) }, reference.decodedIDs,
                          inputs: inputs, label: "MiniLM decode ids")
        assertSameStrings(lists.map { tokenizer.decode($0, skipSpecialTokens: true) }, reference.decodedIDsSkippingSpecial,
                          inputs: inputs, label: "MiniLM decode ids skipping special")
    }

    /// Added tokens matched after normalization (`normalized: true`), one of them single-word
    /// and special, plus a raw one with lstrip/rstrip, against the reference.
    func testAddedTokenOptionsMatchReference() throws {
        let source = try Reference.miniLMTokenizer
        guard var json = try JSONSerialization.jsonObject(with: Data(contentsOf: source)) as? [String: Any],
              var added = json["added_tokens"] as? [[String: Any]] else {
            throw TestSupport.Failure("\(source.path) has no added_tokens")
        }
        func token(_ id: Int, _ content: String, normalized: Bool, special: Bool, singleWord: Bool = false,
                   strip: Bool = false) -> [String: Any] {
            ["id": id, "content": content, "single_word": singleWord, "lstrip": strip, "rstrip": strip,
             "normalized": normalized, "special": special]
        }
        added += [
            token(30522, "HéLLo wOrld", normalized: true, special: false),
            token(30523, "Dogs", normalized: true, special: true, singleWord: true),
            token(30524, "<<X>>", normalized: false, special: true, strip: true),
        ]
        json["added_tokens"] = added
        let folder = try TestSupport.temporaryDirectory("prm-minilm-variant")
        defer { try? FileManager.default.removeItem(at: folder) }
        let url = folder.appendingPathComponent("tokenizer.json")
        try JSONSerialization.data(withJSONObject: json).write(to: url)

        let tokenizer = try TokenizerLoader.load(contentsOf: url)
        let texts = ["say HELLO world and hello world", "Hello  World", "dogs hotdogs DOGS dogs.", "héllo world",
                     "a  <<X>>  b", "<<X>><<X>>", "x<<X>>y [CLS] hello world"]
        let tokens = ["HéLLo wOrld", "hello world", "Dogs", "<<X>>"]
        let reference = try Reference.encode(tokenizer: url, texts: texts, addSpecialTokens: true, tokens: tokens)
        assertSameIDs(texts.map { tokenizer.encode($0, addSpecialTokens: true) }, reference.ids, texts: texts,
                      label: "MiniLM added tokens")
        assertSameStrings(reference.ids.map { tokenizer.decode($0, skipSpecialTokens: false) }, reference.decoded,
                          inputs: texts, label: "MiniLM added tokens decode")
        assertSameStrings(reference.ids.map { tokenizer.decode($0, skipSpecialTokens: true) },
                          reference.decodedSkippingSpecial, inputs: texts, label: "MiniLM added tokens decode skipping special")
        XCTAssertEqual(tokenizer.vocabularySize, reference.vocabularySize)
        for token in tokens { XCTAssertEqual(tokenizer.id(of: token), reference.tokenIDs[token] ?? nil, "id of \(token)") }
    }

    func testVocabularyAndSpecialTokens() throws {
        let (tokenizer, url) = try load()
        let tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "hello", "##ing", "not-a-token", "Hello"]
        let reference = try Reference.encode(tokenizer: url, texts: ["hello"], addSpecialTokens: true, tokens: tokens)
        XCTAssertEqual(tokenizer.vocabularySize, reference.vocabularySize)
        XCTAssertEqual(tokenizer.vocabularySize, 30_522)
        for token in tokens {
            XCTAssertEqual(tokenizer.id(of: token), reference.tokenIDs[token] ?? nil, "id of \(token)")
        }
        XCTAssertEqual(tokenizer.padTokenID, 0)
        XCTAssertEqual(tokenizer.specialTokensPerSequence, 2)
        XCTAssertEqual(tokenizer.addingSpecialTokens([7592]), [101, 7592, 102])
        XCTAssertEqual(tokenizer.encode("hello", addSpecialTokens: true), reference.ids[0])
    }

    func testTruncationKeepsSpecialTokens() throws {
        let (tokenizer, _) = try load()
        let text = "one two three four five six seven eight"
        let full = tokenizer.encode(text, addSpecialTokens: false)
        XCTAssertEqual(full.count, 8)
        XCTAssertEqual(tokenizer.encode(text, addSpecialTokens: true, maxLength: 5), [101] + full.prefix(3) + [102])
        XCTAssertEqual(tokenizer.encode(text, addSpecialTokens: false, maxLength: 5), Array(full.prefix(5)))
        XCTAssertEqual(tokenizer.encode(text, addSpecialTokens: true, maxLength: 100), [101] + full + [102])
    }

    func testBatchEqualsSingleEncodes() throws {
        let (tokenizer, _) = try load()
        let texts = Array(try Reference.corpus().prefix(200)) + edgeCaseTexts
        let batch = tokenizer.encodeBatch(texts, addSpecialTokens: false)
        XCTAssertEqual(batch, texts.map { tokenizer.encode($0, addSpecialTokens: false) })
        XCTAssertEqual(tokenizer.encodeBatch([], addSpecialTokens: true), [])
    }
}
