import Foundation
import PRMCore
import PRMTestSupport
import XCTest
@testable import PRMTokenizers

/// The tokenizer read from SmolLM2's GGUF metadata against a Hugging Face `tokenizers`
/// tokenizer built from the same metadata (Tests/Reference/gguf_tokenizer_reference.py).
final class GGUFTokenizerTests: XCTestCase {
    struct Expected: Decodable {
        let texts: [String]
        let ids: [[Int]]
    }

    func testIDsEqualTheReferenceOnVariedText() throws {
        let file = try GGUFFile(contentsOf: try TestSupport.smolLM2File())
        let loaded = try GGUFTokenizer(file)
        let expected = try JSONDecoder().decode(Expected.self, from: Data(contentsOf: TestSupport.ggufFixtures.appendingPathComponent("smollm2-tokenizer.json")))
        XCTAssertGreaterThanOrEqual(expected.texts.count, 30)
        for (text, ids) in zip(expected.texts, expected.ids) {
            let encoded = loaded.tokenizer.encode(text, addSpecialTokens: false)
            XCTAssertEqual(encoded, ids, "text \(text.debugDescription)")
            XCTAssertEqual(loaded.tokenizer.decode(encoded, skipSpecialTokens: false), text, "round trip of \(text.debugDescription)")
        }
        XCTAssertEqual(loaded.bosID, 1)
        XCTAssertEqual(loaded.eosID, 2)
        XCTAssertEqual(loaded.padID, 2)
        XCTAssertFalse(loaded.addsBOS)
        XCTAssertEqual(loaded.tokenizer.id(of: "<|im_start|>"), 1)
        XCTAssertEqual(loaded.tokenizer.id(of: "<|im_end|>"), 2)
        XCTAssertEqual(loaded.tokenizer.vocabularySize, 49152)
        XCTAssertEqual(loaded.tokenizer.decode([1, 520, 9531, 198, 2], skipSpecialTokens: true), "assistant\n")
    }

    func testMissingTokenizerKeysNameTheFileAndKey() throws {
        let url = TestSupport.ggufFixtures.appendingPathComponent("types.gguf")
        XCTAssertThrowsError(try GGUFTokenizer(GGUFFile(contentsOf: url))) { error in
            XCTAssertEqual((error as? TokenizerError)?.kind, .missingKey)
            XCTAssertEqual("\(error)", "\(url.path): key 'tokenizer.ggml.model': missing")
        }
    }

    func testDigitsAndSequencePreTokenizersFromTokenizerJSON() throws {
        // The same pipeline as a tokenizer.json section decodes to, as SmolLM2's own tokenizer.json has it.
        let json = #"{"type": "Sequence", "pretokenizers": [{"type": "Digits", "individual_digits": true}, {"type": "ByteLevel", "add_prefix_space": false}]}"#
        let stage = try JSONDecoder().decode(PreTokenizerBox.self, from: Data(json.utf8)).stage
        var pieces = Pieces()
        let text = Array("ab 123x".unicodeScalars.map(\.value))
        text.withUnsafeBufferPointer { stage.preTokenize($0, into: &pieces) }
        let strings = pieces.ranges.map { String(String.UnicodeScalarView(pieces.scalars[$0].compactMap(Unicode.Scalar.init))) }
        XCTAssertEqual(strings, ["ab", "Ġ", "1", "2", "3", "x"])
    }

    private struct PreTokenizerBox: Decodable {
        let stage: any PreTokenizer
        init(from decoder: any Decoder) throws { stage = try Sections.preTokenizer.make(from: decoder) }
    }
}
