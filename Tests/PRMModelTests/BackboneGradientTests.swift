import Foundation
import XCTest
import PRMCore
import PRMTestSupport
@testable import PRMModel

/// Whole-backbone backward passes against finite differences on tiny random models, on every backend.
final class BackboneGradientTests: XCTestCase {
    static func tinyBertConfig(activation: String = "gelu") throws -> BertConfig {
        let json = """
        {"model_type": "bert", "vocab_size": 23, "hidden_size": 12, "num_hidden_layers": 2, "num_attention_heads": 3,
         "intermediate_size": 20, "max_position_embeddings": 16, "type_vocab_size": 2, "layer_norm_eps": 1e-5,
         "hidden_act": "\(activation)"}
        """
        return try JSONDecoder().decode(BertConfig.self, from: Data(json.utf8))
    }

    /// Random values with LayerNorm gains near 1, so every path carries signal.
    static func randomize(_ parameters: Parameters, seed: UInt64) {
        var rng = RandomSource(seed: seed)
        for entry in parameters.entries {
            let gain = entry.name.hasSuffix("LayerNorm.weight") || entry.name.contains("ln_") && entry.name.hasSuffix(".weight")
            for i in 0..<entry.count {
                parameters.values[entry.offset + i] = gain ? 1 + 0.1 * rng.nextNormal() : 0.3 * rng.nextNormal()
            }
        }
    }

    func testBertBackwardMatchesFiniteDifferences() throws {
        var layout = Parameters.Layout()
        let model = BertModel(config: try Self.tinyBertConfig(), layout: &layout)
        let parameters = Parameters(layout)
        model.bind(parameters)
        Self.randomize(parameters, seed: 3)
        TestSupport.eachBackend { _ in checkBackbone(model, parameters: parameters, lengths: [5, 1, 7]) }
    }

    func testBertBackwardWithDropoutMatchesFiniteDifferences() throws {
        var layout = Parameters.Layout()
        let model = BertModel(config: try Self.tinyBertConfig(), layout: &layout)
        let parameters = Parameters(layout)
        model.bind(parameters)
        Self.randomize(parameters, seed: 4)
        TestSupport.eachBackend { _ in checkBackbone(model, parameters: parameters, lengths: [6, 3], dropout: 0.3) }
    }
}

/// L = Σ w ⊙ hidden; checks d/d(embeddings) and a sample of every parameter tensor.
/// With `dropout`, every forward pass is a training pass drawing the same masks (fixed seed).
func checkBackbone(_ model: any Backbone, parameters: Parameters, lengths: [Int], dropout: Float = 0,
                   file: StaticString = #filePath, line: UInt = #line) {
    model.hiddenDropout.probability = dropout
    model.hiddenDropout.seed = 77
    var g = GradientCheckModel()
    let batch = PackedBatch(lengths: lengths)
    let C = model.hiddenSize
    let embeddings = g.tensor([batch.tokens, C]), w = g.tensor([batch.tokens, C])
    func loss() -> Double {
        let hidden = model.forward(embeddings: embeddings.data, batch: batch, training: dropout > 0)
        var s = 0.0
        for i in 0..<batch.tokens * C { s += Double(hidden[i]) * Double(w[i]) }
        return s
    }
    _ = loss()
    parameters.zeroGrad()
    let dEmbeddings = Tensor(shape: embeddings.shape)
    dEmbeddings.data.update(from: model.backward(dhidden: w.data), count: dEmbeddings.count)
    // Each tensor is judged against its own largest gradient, down to the rounding noise of a
    // difference measured at this point (a tensor whose true gradient is exactly zero, like
    // attention's key bias that softmax ignores, shows only that noise).
    var probeSeed: UInt64 = 5
    let noise = FiniteDifferences.noise(values: embeddings.data, analytic: dEmbeddings.data,
                                        indices: FiniteDifferences.sample(embeddings.count, 8, seed: &probeSeed), step: 3e-3, loss: loss)
    g.check("\(Compute.backend) d embeddings", values: embeddings.data, count: embeddings.count, analytic: dEmbeddings.data, samples: 48,
            absoluteFloor: FiniteDifferences.floor(analytic: dEmbeddings.data, count: dEmbeddings.count, noiseFloor: noise),
            file: file, line: line, loss: loss)
    for (index, entry) in parameters.entries.enumerated() {
        let handle = Parameters.Handle(index: index)
        // Rows of position/word tables that the batch never touches have zero gradient; sample anyway.
        let analytic = parameters.grad(handle)
        g.check("\(Compute.backend) \(entry.name)", values: parameters.value(handle), count: entry.count, analytic: analytic, samples: 24,
                absoluteFloor: FiniteDifferences.floor(analytic: analytic, count: entry.count, noiseFloor: noise),
                file: file, line: line, loss: loss)
    }
}

/// Finite differences over raw parameter memory (the GradientCheck of the core tests, for pointers).
struct GradientCheckModel {
    var rng = RandomSource(seed: 99)

    mutating func tensor(_ shape: [Int]) -> Tensor {
        let t = Tensor(shape: shape)
        for i in 0..<t.count { t[i] = rng.nextNormal() }
        return t
    }

    mutating func check(_ label: String, values: UnsafeMutablePointer<Float>, count: Int, analytic: UnsafePointer<Float>,
                        samples: Int = 24, step: Float = 3e-3, absoluteFloor: Float,
                        file: StaticString = #filePath, line: UInt = #line, loss: () -> Double) {
        var seed = rng.next()
        let indices = FiniteDifferences.sample(count, samples, seed: &seed)
        let wrong = FiniteDifferences.disagreements(values: values, analytic: analytic, indices: indices, step: step,
                                                    relativeTolerance: 3e-2, absoluteFloor: absoluteFloor, loss: loss)
        for d in wrong.prefix(3) { XCTFail("\(label)\(d)", file: file, line: line) }
        let failures = wrong.count
        XCTAssertEqual(failures, 0, "\(label): \(failures) disagreements", file: file, line: line)
    }
}
