import Foundation
import XCTest
import PRMCore
import PRMTestSupport
@testable import PRMModel

/// A reward model on the real SmolLM2 GGUF file: its training backbone computes what
/// `LlamaModel` (checked against numpy in LlamaReferenceTests) computes from the same file.
final class RewardModelGGUFTests: XCTestCase {
    func testBackboneFromGGUFEqualsTheInferenceModel() throws {
        let url = try TestSupport.smolLM2File()
        let config = RewardModelConfig(aggregator: .linearHead, userModel: UserModelConfig(kind: .individual, tokens: 1, users: 2), maxLength: 64)
        let model = try RewardModel.pretrained(backbone: url, config: config, seed: 1)
        XCTAssertEqual(model.backbone.modelType, "llama")
        let tokens = model.tokenizer.encode("<|im_start|>user\nWhat is 2 + 2?<|im_end|>\n", addSpecialTokens: false).map(Int32.init)
        let decoder = try LlamaModel.load(gguf: GGUFFile(contentsOf: url))
        let C = decoder.config.hiddenSize
        let embeddings = Tensor(shape: [tokens.count, C])
        model.backbone.embedTokens(out: embeddings.data, ids: tokens, parameters: model.parameters)
        let hidden = model.backbone.infer(embeddings: embeddings.data, batch: PackedBatch(lengths: [tokens.count]))
        let expected = decoder.extend(decoder.makeCache(), tokens: tokens)
        var worst: Float = 0, largest: Float = 0
        for i in 0..<tokens.count * C {
            worst = max(worst, abs(hidden[i] - expected[i]))
            largest = max(largest, abs(expected[i]))
        }
        XCTAssertLessThanOrEqual(worst, 1e-4 * largest, "largest |h| \(largest)")
    }
}
