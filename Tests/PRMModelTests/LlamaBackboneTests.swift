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

    /// Scoring's pass reuses one layer's buffers, sized by the largest batch seen: a smaller ragged
    /// batch after a larger one (stale rows beyond its end, longer sequences before it) still
    /// equals the training forward exactly.
    func testInferenceOnRaggedBatchesAfterLargerOnesEqualsTrainingForward() {
        for (i, config) in Self.variants.enumerated() {
            let (backbone, parameters) = Self.backbone(config, seed: 40 + UInt64(i))
            for lengths in [[16, 9, 12, 3], [2, 7, 1], [1], [5, 16]] {
                let embeddings = Self.embeddings(backbone, parameters, lengths: lengths, seed: UInt64(lengths.count))
                let batch = PackedBatch(lengths: lengths)
                let count = batch.tokens * config.hiddenSize
                let inferred = Array(UnsafeBufferPointer(start: backbone.infer(embeddings: embeddings.data, batch: batch), count: count))
                let trained = Array(UnsafeBufferPointer(start: backbone.forward(embeddings: embeddings.data, batch: batch, training: false), count: count))
                XCTAssertEqual(inferred, trained, "\(config.modelType) lengths \(lengths)")
            }
        }
    }

    /// A prompt's rows once into a KV cache (in two pieces), then replies of different lengths
    /// after it as one packed batch: each reply's hidden states equal its rows of the whole
    /// sequence run unshared, and scoring the replies leaves the cache as it was.
    func testPrefixSharedContinuationsEqualWholeSequences() {
        for (i, config) in Self.variants.enumerated() {
            let (backbone, parameters) = Self.backbone(config, seed: 50 + UInt64(i))
            let C = config.hiddenSize
            let prompt: [Int32] = [3, 1, 4, 1, 5, 9]
            let replies: [[Int32]] = [[2, 6, 5], [3], [5, 8, 9, 7, 9, 3, 2]]
            let cache = backbone.makePrefixCache()
            let promptRows = Tensor(shape: [prompt.count, C])
            backbone.embedTokens(out: promptRows.data, ids: prompt, parameters: parameters)
            backbone.extendPrefix(cache, embeddings: promptRows.data, count: 4)
            backbone.extendPrefix(cache, embeddings: promptRows.data + 4 * C, count: prompt.count - 4)
            XCTAssertEqual(cache.count, prompt.count)
            let batch = PackedBatch(lengths: replies.map(\.count))
            let replyRows = Tensor(shape: [batch.tokens, C])
            backbone.embedTokens(out: replyRows.data, ids: replies.flatMap { $0 }, parameters: parameters)
            let shared = Array(UnsafeBufferPointer(start: backbone.continuationStates(after: cache, embeddings: replyRows.data, batch: batch),
                                                   count: batch.tokens * C))
            XCTAssertEqual(cache.count, prompt.count, "scoring continuations must not change the cache")
            let whole = replies.map { prompt + $0 }
            let wholeBatch = PackedBatch(lengths: whole.map(\.count))
            let wholeRows = Tensor(shape: [wholeBatch.tokens, C])
            backbone.embedTokens(out: wholeRows.data, ids: whole.flatMap { $0 }, parameters: parameters)
            let unshared = backbone.infer(embeddings: wholeRows.data, batch: wholeBatch)
            for (b, reply) in replies.enumerated() {
                for k in 0..<reply.count * C {
                    let want = unshared[(wholeBatch.starts[b] + prompt.count) * C + k]
                    XCTAssertEqual(shared[batch.starts[b] * C + k], want, accuracy: 1e-5 * max(1, abs(want)), "\(config.modelType) reply \(b)")
                }
            }
        }
    }

    /// Scoring between a training forward and its backward (the trainer's epoch-end evaluation,
    /// a probe) leaves the backward's activations alone: the gradients are those without it.
    func testInferenceBetweenForwardAndBackwardLeavesGradientsAlone() {
        let config = Self.variants[0]
        let (backbone, parameters) = Self.backbone(config, seed: 60)
        let lengths = [6, 3]
        let batch = PackedBatch(lengths: lengths)
        let embeddings = Self.embeddings(backbone, parameters, lengths: lengths, seed: 1)
        let other = Self.embeddings(backbone, parameters, lengths: [16, 16], seed: 2)
        let dHidden = Tensor(shape: [batch.tokens, config.hiddenSize])
        var rng = RandomSource(seed: 3)
        for k in 0..<dHidden.count { dHidden.data[k] = rng.nextNormal() }
        func gradients(scoringInBetween: Bool) -> [Float] {
            parameters.grads.data.update(repeating: 0, count: parameters.count)
            _ = backbone.forward(embeddings: embeddings.data, batch: batch, training: true)
            if scoringInBetween { _ = backbone.infer(embeddings: other.data, batch: PackedBatch(lengths: [16, 16])) }
            let dInput = backbone.backward(dhidden: dHidden.data)
            return Array(UnsafeBufferPointer(start: parameters.grads.data, count: parameters.count))
                + Array(UnsafeBufferPointer(start: dInput, count: batch.tokens * config.hiddenSize))
        }
        XCTAssertEqual(gradients(scoringInBetween: true), gradients(scoringInBetween: false))
    }

    /// Token embeddings of random ids for sequences of `lengths`, packed.
    static func embeddings(_ backbone: LlamaBackbone, _ parameters: Parameters, lengths: [Int], seed: UInt64) -> Tensor {
        var rng = RandomSource(seed: seed)
        let ids = (0..<lengths.reduce(0, +)).map { _ in Int32(rng.next() % UInt64(backbone.vocabularySize)) }
        let rows = Tensor(shape: [ids.count, backbone.hiddenSize])
        backbone.embedTokens(out: rows.data, ids: ids, parameters: parameters)
        return rows
    }
}
