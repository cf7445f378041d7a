import Foundation
import XCTest
import PRMCore
import PRMTestSupport
@testable import PRMModel

/// The real SmolLM2 GGUF's logits from prm's `LlamaModel` against Hugging Face `transformers`
/// loading the same file with its own GGUF loader (Tests/Reference/smollm2_transformers.py,
/// committed fixture), on the numpy reference's three chat prompts.
final class SmolLM2TransformersTests: XCTestCase {
    func testLogitsEqualTransformersOnTheSameGGUF() throws {
        let model = try LlamaReferenceTests.load().model
        let ids = try SafetensorsFile(contentsOf: TestSupport.ggufFixtures.appendingPathComponent("smollm2-logits.safetensors"))
        let reference = try SafetensorsFile(contentsOf: TestSupport.ggufFixtures.appendingPathComponent("smollm2-transformers-logits.safetensors"))
        func ints(_ file: SafetensorsFile, _ name: String) throws -> [Int] { try file.tensor(name).array.map { Int($0) } }
        let V = model.vocabularySize
        for i in 0..<3 {
            let tokens = try ints(ids, "ids.\(i)")
            let T = tokens.count
            let hidden = model.extend(model.makeCache(), tokens: tokens.map(Int32.init))
            var logits = [Float](repeating: 0, count: T * V)
            logits.withUnsafeMutableBufferPointer { model.logits(out: $0.baseAddress!, hidden: hidden, N: T) }
            let argmax = (0..<T).map { t in (0..<V).max { logits[t * V + $0] < logits[t * V + $1] }! }
            XCTAssertEqual(argmax, try ints(reference, "argmax.\(i)"), "prompt \(i): argmax at every position")
            let checked = try ints(reference, "top_ids.\(i)") + ints(reference, "sample_ids.\(i)")
            let expected = try reference.tensor("top_logits.\(i)").array + reference.tensor("sample_logits.\(i)").array
            let scale = expected.map(abs).max()!
            let worst = zip(checked, expected).map { abs(logits[(T - 1) * V + $0] - $1) }.max()!
            XCTAssertLessThanOrEqual(worst / scale, 1e-4, "prompt \(i): largest logit difference \(worst), scale \(scale)")
        }
    }
}
