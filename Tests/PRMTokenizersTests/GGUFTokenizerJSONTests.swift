import Foundation
import PRMCore
import PRMTestSupport
import XCTest
@testable import PRMTokenizers

/// SmolLM2's GGUF tokenizer written out as tokenizer.json (what a reward model trained on the
/// GGUF file saves) encodes and decodes every reference text as the GGUF tokenizer does.
final class GGUFTokenizerJSONTests: XCTestCase {
    func testWrittenTokenizerJSONEncodesAsTheGGUFTokenizer() throws {
        let file = try GGUFFile(contentsOf: try TestSupport.smolLM2File())
        let gguf = try GGUFTokenizer(file).tokenizer
        let written = try TokenizerLoader.load(data: try GGUFTokenizer.tokenizerJSON(file), origin: "written")
        let expected = try JSONDecoder().decode(GGUFTokenizerTests.Expected.self,
                                                from: Data(contentsOf: TestSupport.ggufFixtures.appendingPathComponent("smollm2-tokenizer.json")))
        for text in expected.texts + ["<|im_start|>user\n12345 apples<|im_end|>\n"] {
            let ids = gguf.encode(text, addSpecialTokens: false)
            XCTAssertEqual(written.encode(text, addSpecialTokens: false), ids, "text \(text.debugDescription)")
            XCTAssertEqual(written.decode(ids, skipSpecialTokens: false), gguf.decode(ids, skipSpecialTokens: false))
        }
        XCTAssertEqual(written.vocabularySize, gguf.vocabularySize)
        XCTAssertEqual(written.id(of: "<|im_end|>"), 2)
    }
}
