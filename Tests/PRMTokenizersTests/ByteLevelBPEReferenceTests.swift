import Foundation
import PRMTestSupport
import XCTest
@testable import PRMTokenizers

/// A GPT-2 style byte-level BPE trained by train_bpe.py, against Hugging Face `tokenizers`.
final class ByteLevelBPEReferenceTests: XCTestCase {
    func testCorpusIDsAndDecodingMatchReference() throws {
        let url = try Reference.trainedBPE()
        let tokenizer = try TokenizerLoader.load(contentsOf: url)
        let texts = try Reference.corpus()
        let reference = try Reference.encode(tokenizer: url, texts: texts, addSpecialTokens: true)
        assertSameIDs(tokenizer.encodeBatch(texts, addSpecialTokens: true), reference.ids, texts: texts,
                      label: "BPE corpus")
        assertSameStrings(reference.ids.map { tokenizer.decode($0, skipSpecialTokens: false) }, reference.decoded,
                          inputs: texts, label: "BPE corpus decode")
        // Byte-level decoding is lossless: the corpus comes back.
        XCTAssertEqual(reference.decoded, texts)
    }

    func testEdgeCasesMatchReference() throws {
        let url = try Reference.trainedBPE()
        try compareEdgeCases(url, label: "BPE")
    }

    /// The same vocabulary written the older way: merges as "a b" strings, a prefix space, and a
    /// TemplateProcessing post-processor that wraps each text in <|endoftext|>.
    func testLegacyMergesPrefixSpaceAndTemplateMatchReference() throws {
        let url = try variant(of: try Reference.trainedBPE()) { json in
            guard var model = json["model"] as? [String: Any], let merges = model["merges"] as? [[String]] else {
                throw TestSupport.Failure("trained tokenizer.json has no pair merges")
            }
            model["merges"] = merges.map { $0.joined(separator: " ") }
            json["model"] = model
            json["pre_tokenizer"] = ["type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true]
            json["post_processor"] = [
                "type": "TemplateProcessing",
                "single": [["SpecialToken": ["id": "<|endoftext|>", "type_id": 0]], ["Sequence": ["id": "A", "type_id": 0]],
                           ["SpecialToken": ["id": "<|endoftext|>", "type_id": 0]]],
                "pair": [["Sequence": ["id": "A", "type_id": 0]], ["Sequence": ["id": "B", "type_id": 1]]],
                "special_tokens": ["<|endoftext|>": ["id": "<|endoftext|>", "ids": [0], "tokens": ["<|endoftext|>"]]],
            ]
        }
        let tokenizer = try TokenizerLoader.load(contentsOf: url)
        XCTAssertEqual(tokenizer.specialTokensPerSequence, 2)
        XCTAssertEqual(tokenizer.addingSpecialTokens([5, 6]), [0, 5, 6, 0])
        let texts = Array(try Reference.corpus().prefix(300))
        let reference = try Reference.encode(tokenizer: url, texts: texts, addSpecialTokens: true)
        assertSameIDs(tokenizer.encodeBatch(texts, addSpecialTokens: true), reference.ids, texts: texts,
                      label: "BPE variant corpus")
        try compareEdgeCases(url, label: "BPE variant")
    }

    /// Added tokens with lstrip/rstrip/single_word and a normalized one, without a pre-tokenizer
    /// prefix space, against the reference.
    func testAddedTokenOptionsMatchReference() throws {
        let url = try variant(of: try Reference.trainedBPE()) { json in
            guard var added = json["added_tokens"] as? [[String: Any]], let model = json["model"] as? [String: Any],
                  let vocab = model["vocab"] as? [String: Int] else {
                throw TestSupport.Failure("trained tokenizer.json lacks added_tokens or vocab")
            }
            var next = (vocab.values.max() ?? 0) + 1
            func add(_ content: String, lstrip: Bool = false, rstrip: Bool = false, singleWord: Bool = false,
                     normalized: Bool = false, special: Bool = false) {
                added.append(["id": next, "content": content, "single_word": singleWord, "lstrip": lstrip,
                              "rstrip": rstrip, "normalized": normalized, "special": special])
                next += 1
            }
            add("<mask>", lstrip: true, special: true)
            add("<sep>", rstrip: true, special: true)
            add("word", singleWord: true)
            add("<sepx>", special: true)  // longest match wins over <sep>
            add("hello world", normalized: true)
            json["added_tokens"] = added
        }
        let tokenizer = try TokenizerLoader.load(contentsOf: url)
        let texts = [
            "a   <mask> b", "<mask>x", "x<sep>   y", "<sep>", "word words sword word.", "a word", "<sepx> <sep>x",
            "say hello world twice: hello world", "hello  world", "<mask><mask>  <sep>  <sep>", "wordword word",
        ]
        let reference = try Reference.encode(tokenizer: url, texts: texts, addSpecialTokens: false,
                                             decode: [[0, 2000, 2001, 2004]], tokens: ["<mask>", "hello world"])
        assertSameIDs(texts.map { tokenizer.encode($0, addSpecialTokens: false) }, reference.ids, texts: texts,
                      label: "added token options")
        assertSameStrings(reference.ids.map { tokenizer.decode($0, skipSpecialTokens: true) },
                          reference.decodedSkippingSpecial, inputs: texts, label: "added token decode")
        assertSameStrings([tokenizer.decode([0, 2000, 2001, 2004], skipSpecialTokens: false)], reference.decodedIDs,
                          inputs: ["[0, 2000, 2001, 2004]"], label: "added token id decode")
        XCTAssertEqual(tokenizer.vocabularySize, reference.vocabularySize)
        XCTAssertEqual(tokenizer.id(of: "<mask>"), reference.tokenIDs["<mask>"] ?? nil)
    }

    func testVocabularyAndSpecialTokens() throws {
        let url = try Reference.trainedBPE()
        let tokenizer = try TokenizerLoader.load(contentsOf: url)
        let tokens = ["<|endoftext|>", "Ġthe", "the", "not-a-token"]
        let reference = try Reference.encode(tokenizer: url, texts: [], addSpecialTokens: false, tokens: tokens)
        XCTAssertEqual(tokenizer.vocabularySize, reference.vocabularySize)
        XCTAssertEqual(tokenizer.vocabularySize, 2000)
        for token in tokens {
            XCTAssertEqual(tokenizer.id(of: token), reference.tokenIDs[token] ?? nil, "id of \(token)")
        }
        XCTAssertNil(tokenizer.padTokenID)
        XCTAssertEqual(tokenizer.specialTokensPerSequence, 0)
        XCTAssertEqual(tokenizer.addingSpecialTokens([5, 6]), [5, 6])
    }

    // MARK: Helpers

    private func compareEdgeCases(_ url: URL, label: String) throws {
        let tokenizer = try TokenizerLoader.load(contentsOf: url)
        let texts = edgeCaseTexts + [try Reference.corpus().prefix(40).joined(separator: "\n")]
        // Prefixes of multi-byte characters' ids decode to U+FFFD the way from_utf8_lossy does.
        var lists: [[Int]] = [[], [1999, 999_999, 0]]
        for text in ["😀 é", "日本語", "👨‍👩‍👧‍👦", "\u{FFFD}x"] {
            let ids = tokenizer.encode(text, addSpecialTokens: false)
            for count in 0...ids.count { lists.append(Array(ids.prefix(count))) }
            lists.append(Array(ids.dropFirst()))
            lists.append(ids.reversed())
        }
        for addSpecial in [false, true] {
            let reference = try Reference.encode(tokenizer: url, texts: texts, addSpecialTokens: addSpecial, decode: lists)
            let ids = texts.map { tokenizer.encode($0, addSpecialTokens: addSpecial) }
            assertSameIDs(ids, reference.ids, texts: texts, label: "\(label) edge cases, special \(addSpecial)")
            assertSameStrings(reference.ids.map { tokenizer.decode($0, skipSpecialTokens: false) }, reference.decoded,
                              inputs: texts, label: "\(label) edge-case decode")
            assertSameStrings(reference.ids.map { tokenizer.decode($0, skipSpecialTokens: true) },
                              reference.decodedSkippingSpecial, inputs: texts, label: "\(label) edge-case decode skipping special")
            let inputs = lists.map { "\($0)" }
            assertSameStrings(lists.map { tokenizer.decode($0, skipSpecialTokens: false) }, reference.decodedIDs,
                              inputs: inputs, label: "\(label) decode ids")
            assertSameStrings(lists.map { tokenizer.decode($0, skipSpecialTokens: true) }, reference.decodedIDsSkippingSpecial,
                              inputs: inputs, label: "\(label) decode ids skipping special")
        }
    }

    /// A copy of `url` with `edit` applied to its JSON, in a fresh temporary directory.
    private func variant(of url: URL, _ edit: (inout [String: Any]) throws -> Void) throws -> URL {
        guard var json = try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any] else {
            throw TestSupport.Failure("\(url.path) is not a JSON object")
        }
        try edit(&json)
        let folder = try TestSupport.temporaryDirectory("prm-bpe-variant")
        addTeardownBlock { try? FileManager.default.removeItem(at: folder) }
        let out = folder.appendingPathComponent("tokenizer.json")
        try JSONSerialization.data(withJSONObject: json).write(to: out)
        return out
    }
}
