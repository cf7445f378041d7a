import Foundation
import XCTest
import PRMCore
import PRMTestSupport
@testable import PRMModel

/// Each backbone's inference pass against its training forward on ragged packed batches (length-1
/// and maximum-length sequences included), on every backend; and inference holding no training state.
final class InferenceTests: XCTestCase {
    func testMiniLMInferEqualsForward() throws {
        let model = try Backbones.load(folder: TestSupport.miniLMDirectory())
        // 512 is MiniLM's maximum; batches are run twice in different orders so reused buffers
        // (sized by the first, larger batch) must not leak state between batches.
        let batches = [[33, 1, 512, 7, 128, 2], [5, 64, 1]]
        try assertInferEqualsForward(model.backbone, parameters: model.parameters, batches: batches, seed: 3)
    }

    func testGPT2InferEqualsForward() throws {
        let f = try GPT2ReferenceTests.makeModel()
        // The random model has 64 positions.
        try assertInferEqualsForward(f.model, parameters: f.parameters, batches: [[9, 1, 64, 30, 2], [3, 17]], seed: 4)
    }

    /// BERT's inference reads an [in, out] copy of its matrices: changed weights (an optimizer
    /// step, loading, or a direct write announced with markChanged) must reach it.
    func testMiniLMInferSeesChangedWeights() throws {
        let model = try Backbones.load(folder: TestSupport.miniLMDirectory())
        try assertInferEqualsForward(model.backbone, parameters: model.parameters, batches: [[12, 5]], seed: 5)
        for entry in model.parameters.entries where entry.name.hasSuffix("dense.weight") || entry.name.hasSuffix("query.weight") {
            let values = model.parameters.values.data + entry.offset
            for i in 0..<entry.count { values[i] *= 1.1 }
        }
        model.parameters.markChanged()
        try assertInferEqualsForward(model.backbone, parameters: model.parameters, batches: [[12, 5]], seed: 5)
    }

    /// Embedding texts (the inference path end to end) never allocates parameter gradients.
    func testInferenceHoldsNoGradients() throws {
        let model = try Backbones.load(folder: TestSupport.miniLMDirectory())
        let embedder = SentenceEmbedder(model: model)
        let vectors = embedder.embed(["A man is eating food.", "ok"])
        XCTAssertEqual(vectors.count, 2)
        XCTAssertFalse(model.parameters.hasGradients, "inference allocated the gradient buffer")
        _ = model.parameters.grads
        XCTAssertTrue(model.parameters.hasGradients)
    }

    private func assertInferEqualsForward(_ backbone: any Backbone, parameters: Parameters, batches: [[Int]], seed: UInt64,
                                          file: StaticString = #filePath, line: UInt = #line) throws {
        var rng = RandomSource(seed: seed)
        let C = backbone.hiddenSize
        for lengths in batches {
            let batch = PackedBatch(lengths: lengths)
            let ids = (0..<batch.tokens).map { _ in Int32(rng.next() % UInt64(backbone.vocabularySize)) }
            let inputs = Tensor(shape: [batch.tokens, C])
            backbone.embedTokens(out: inputs.data, ids: ids, parameters: parameters)
            TestSupport.eachBackend { backend in
                let expected = Tensor(shape: [batch.tokens, C])
                expected.data.update(from: backbone.forward(embeddings: inputs.data, batch: batch, training: false), count: expected.count)
                let hidden = backbone.infer(embeddings: inputs.data, batch: batch)
                for b in 0..<batch.count {
                    var worst: Float = 0
                    for i in batch.starts[b] * C..<(batch.starts[b] + batch.lengths[b]) * C {
                        worst = max(worst, abs(hidden[i] - expected[i]))
                    }
                    XCTAssertLessThanOrEqual(worst, 1e-5, "\(backbone.modelType) \(backend): sequence \(b) of lengths \(lengths)",
                                             file: file, line: line)
                }
            }
        }
    }
}
