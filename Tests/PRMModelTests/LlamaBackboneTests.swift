import Foundation
import XCTest
import PRMCore
import PRMTestSupport
@testable import PRMModel

/// The Llama-family training backbone: its backward pass against finite differences for each
/// variant the config selects (grouped-query llama, Qwen2's biases, Qwen3's q/k norm with a head
/// size of its own), and its forward pass against `LlamaModel`'s KV-cached inference on the same
/// weights.
final class LlamaBackboneTests: XCTestCase {
    static func tinyConfig(_ type: String, headDim: Int? = nil) -> LlamaConfig {
        LlamaConfig(modelType: type, vocabSize: 19, hiddenSize: 12, intermediateSize: 10, numHiddenLayers: 2, numAttentionHeads: 4,
                    numKeyValueHeads: 2, headDim: headDim, rmsNormEps: 1e-5, ropeTheta: 10_000, maxPositionEmbeddings: 16,
                    tieWordEmbeddings: true, attentionBias: type == "qwen2", queryKeyNorm: type == "qwen3")
    }

    static let variants = [tinyConfig("llama"), tinyConfig("qwen2"), tinyConfig("qwen3", headDim: 4)]

    static func backbone(_ config: LlamaConfig, seed: UInt64) -> (LlamaBackbone, Parameters) {
        var layout = Parameters.Layout()
        let model = LlamaBackbone(config: config, layout: &layout)
        let parameters = Parameters(layout)
        model.bind(parameters)
        BackboneGradientTests.randomize(parameters, seed: seed)
        // RMSNorm gains near 1, as trained models have them: gains near 0 make a head's queries or
        // keys nearly vanish, where Qwen3's q/k norm (scale-invariant) curves too sharply for a
        // finite difference.
        var rng = RandomSource(seed: seed)
        for entry in parameters.entries where entry.name.hasSuffix("norm.weight") {
            for i in 0..<entry.count { parameters.values[entry.offset + i] = 1 + 0.1 * rng.nextNormal() }
        }
        return (model, parameters)
    }

    func testBackwardMatchesFiniteDifferences() {
        for (i, config) in Self.variants.enumerated() {
            let (model, parameters) = Self.backbone(config, seed: 10 + UInt64(i))
            TestSupport.eachBackend { _ in checkBackbone(model, parameters: parameters, lengths: [5, 1, 4]) }
        }
    }

    func testBackwardWithDropoutMatchesFiniteDifferences() {
        for (i, config) in Self.variants.enumerated() {
            let (model, parameters) = Self.backbone(config, seed: 20 + UInt64(i))
            checkBackbone(model, parameters: parameters, lengths: [6, 3], dropout: 0.3)
        }
    }

    /// Training forward, inference and `LlamaModel.extend` (a fresh cache per sequence) agree.
    func testTrainingForwardEqualsInference() {
        for (i, config) in Self.variants.enumerated() {
            let (backbone, parameters) = Self.backbone(config, seed: 30 + UInt64(i))
            let decoder = LlamaModel(config: config)
            for entry in decoder.parameters.entries {
                let source = parameters.entries.firstIndex { "model." + $0.name == entry.name }!
                decoder.parameters.values.data.advanced(by: entry.offset)
                    .update(from: parameters.values.data + parameters.entries[source].offset, count: entry.count)
            }
            decoder.parameters.markChanged()
            let sequences: [[Int32]] = [[3, 1, 4, 1, 5, 9, 2], [6], [18, 0, 7, 7]]
            let batch = PackedBatch(lengths: sequences.map(\.count))
            let C = config.hiddenSize
            let embeddings = Tensor(shape: [batch.tokens, C])
            backbone.embedTokens(out: embeddings.data, ids: sequences.flatMap { $0 }, parameters: parameters)
            let trained = Array(UnsafeBufferPointer(start: backbone.forward(embeddings: embeddings.data, batch: batch, training: true), count: batch.tokens * C))
            let inferred = Array(UnsafeBufferPointer(start: backbone.infer(embeddings: embeddings.data, batch: batch), count: batch.tokens * C))
            XCTAssertEqual(trained, inferred, "\(config.modelType)")
            for (b, tokens) in sequences.enumerated() {
                let cached = decoder.extend(decoder.makeCache(), tokens: tokens)
                for i in 0..<tokens.count * C {
                    XCTAssertEqual(trained[batch.starts[b] * C + i], cached[i], accuracy: 1e-5 * max(1, abs(cached[i])), "\(config.modelType) sequence \(b)")
                }
            }
        }
    }
}
