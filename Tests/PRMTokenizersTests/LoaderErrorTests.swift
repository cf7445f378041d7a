import Foundation
import PRMTestSupport
import XCTest
@testable import PRMTokenizers

/// Malformed tokenizer.json files give a TokenizerError that names the file and the problem.
final class LoaderErrorTests: XCTestCase {
    private var folder: URL!

    override func setUpWithError() throws {
        folder = try TestSupport.temporaryDirectory("prm-tok-errors")
    }

    override func tearDownWithError() throws {
        try FileManager.default.removeItem(at: folder)
    }

    private let wordPiece: [String: Any] = [
        "type": "WordPiece", "unk_token": "[UNK]", "continuing_subword_prefix": "##",
        "max_input_chars_per_word": 100, "vocab": ["[UNK]": 0, "a": 1, "##b": 2],
    ]
    private let bpe: [String: Any] = [
        "type": "BPE", "vocab": ["a": 0, "b": 1, "ab": 2], "merges": [["a", "b"]],
    ]

    private func write(_ text: String, name: String = "tokenizer.json") throws -> URL {
        let url = folder.appendingPathComponent(name)
        try Data(text.utf8).write(to: url)
        return url
    }

    private func write(json: [String: Any]) throws -> URL {
        let data = try JSONSerialization.data(withJSONObject: json)
        return try write(String(decoding: data, as: UTF8.self))
    }

    /// Loads `url`, expecting a TokenizerError of `kind` whose one-line description names the
    /// file and contains every fragment.
    private func assertFails(_ url: URL, _ kind: TokenizerError.Kind, _ fragments: [String],
                             file: StaticString = #filePath, line: UInt = #line) {
        do {
            _ = try TokenizerLoader.load(contentsOf: url)
            XCTFail("loading succeeded; expected \(kind)", file: file, line: line)
        } catch let error as TokenizerError {
            XCTAssertEqual(error.kind, kind, error.description, file: file, line: line)
            XCTAssertTrue(error.description.hasPrefix(url.path + ": "), error.description, file: file, line: line)
            XCTAssertFalse(error.description.contains("\n"), "one line: \(error.description)", file: file, line: line)
            for fragment in fragments {
                XCTAssertTrue(error.description.contains(fragment), "\(error.description) lacks \(fragment)", file: file, line: line)
            }
        } catch {
            XCTFail("expected TokenizerError, got \(type(of: error)): \(error)", file: file, line: line)
        }
    }

    func testMinimalFilesLoad() throws {
        let wp = try TokenizerLoader.load(contentsOf: try write(json: ["model": wordPiece, "pre_tokenizer": ["type": "BertPreTokenizer"]]))
        XCTAssertEqual(wp.encode("ab a", addSpecialTokens: true), [1, 2, 1])
        XCTAssertEqual(wp.encode("abb c", addSpecialTokens: false), [1, 2, 2, 0])
        let merges = try TokenizerLoader.load(contentsOf: try write(json: ["model": bpe]))
        XCTAssertEqual(merges.encode("abba", addSpecialTokens: false), [2, 1, 0])
    }

    func testMissingFile() {
        assertFails(folder.appendingPathComponent("absent.json"), .fileMissing, ["absent.json", "file not found"])
    }

    func testNotJSON() throws {
        assertFails(try write("{ this is not json"), .notJSON, ["not valid JSON: Invalid value around character 2"])
        assertFails(try write(""), .notJSON, ["not valid JSON"])
        assertFails(try write("[1, 2, 3]"), .invalidValue, ["not a JSON object"])
    }

    func testMissingModel() throws {
        assertFails(try write(json: ["normalizer": NSNull()]), .missingKey, ["missing field 'model'"])
        assertFails(try write(json: ["model": NSNull()]), .missingKey, ["missing field 'model'"])
        assertFails(try write(json: ["model": ["type": "WordPiece", "unk_token": "[UNK]"]]), .missingKey,
                    ["missing field 'model.vocab'"])
    }

    func testUnsupportedSections() throws {
        assertFails(try write(json: ["model": ["type": "Unigram", "vocab": [["a", 0.0]]]]), .unsupported,
                    ["unsupported model type 'Unigram'"])
        assertFails(try write(json: ["model": ["vocab": ["a": 0]]]), .missingKey, ["model type has no 'type'"])
        assertFails(try write(json: ["model": wordPiece, "normalizer": ["type": "NFKC"]]), .unsupported,
                    ["unsupported normalizer 'NFKC'"])
        assertFails(try write(json: ["model": wordPiece, "pre_tokenizer": ["type": "Metaspace", "replacement": "▁"]]),
                    .unsupported, ["unsupported pre-tokenizer 'Metaspace'"])
        assertFails(try write(json: ["model": wordPiece, "decoder": ["type": "CTC"]]), .unsupported,
                    ["unsupported decoder 'CTC'"])
        assertFails(try write(json: ["model": wordPiece, "post_processor": ["type": "Magic"]]), .unsupported,
                    ["unsupported post-processor 'Magic'"])
        var dropout = bpe
        dropout["dropout"] = 0.1
        assertFails(try write(json: ["model": dropout]), .unsupported, ["dropout"])
    }

    func testVocabularyWithoutUnknownToken() throws {
        var model = wordPiece
        model["vocab"] = ["a": 0, "##b": 1]
        assertFails(try write(json: ["model": model]), .missingToken, ["unk token '[UNK]'"])
        var bpeModel = bpe
        bpeModel["unk_token"] = "<unk>"
        assertFails(try write(json: ["model": bpeModel]), .missingToken, ["unk token '<unk>'"])
    }

    func testBadMerges() throws {
        func withMerges(_ merges: Any) throws -> URL {
            var model = bpe
            model["merges"] = merges
            return try write(json: ["model": model])
        }
        assertFails(try withMerges(["a b c"]), .badMerges, ["bad merges", "merge 1"])
        assertFails(try withMerges(["ab"]), .badMerges, ["bad merges", "merge 1"])
        assertFails(try withMerges([["a", "b", "c"]]), .badMerges, ["bad merges", "3 parts"])
        assertFails(try withMerges([["a", "b"], ["a", "z"]]), .badMerges, ["merge 2", "'z' is not in the vocabulary"])
        assertFails(try withMerges([["b", "a"]]), .badMerges, ["makes 'ba'"])
        assertFails(try withMerges(17), .badMerges, ["bad merges"])
        var noMerges = bpe
        noMerges.removeValue(forKey: "merges")
        assertFails(try write(json: ["model": noMerges]), .missingKey, ["missing field 'model.merges'"])
    }

    func testLegacyStringMergesLoad() throws {
        var model = bpe
        model["merges"] = ["#version: 0.2", "a b"]
        let tokenizer = try TokenizerLoader.load(contentsOf: try write(json: ["model": model]))
        XCTAssertEqual(tokenizer.encode("ab", addSpecialTokens: false), [2])
    }

    func testWrongValueTypes() throws {
        var model = wordPiece
        model["vocab"] = ["a", "b"]
        assertFails(try write(json: ["model": model]), .invalidValue, ["field 'model.vocab' should be"])
        assertFails(try write(json: ["model": wordPiece, "added_tokens": [["id": 0]]]), .missingKey,
                    ["missing field 'added_tokens[0].content'"])
        assertFails(try write(json: ["model": wordPiece, "post_processor": [
            "type": "TemplateProcessing", "single": [["SpecialToken": ["id": "[CLS]", "type_id": 0]], ["Sequence": ["id": "A", "type_id": 0]]],
            "special_tokens": [:] as [String: Any],
        ]]), .missingToken, ["'[CLS]'", "special_tokens"])
    }
}
