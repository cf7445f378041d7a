import Foundation
import XCTest
import PRMCore
import PRMTestSupport
@testable import PRMModel

/// MiniLM's inference at bf16 and int8 against fp32 on ragged packed batches (length 1 and 512
/// included), with the real weights. Six layers compound the per-product bounds of
/// `LowPrecisionLinearTests` through LayerNorm and softmax, so the bounds here are the measured
/// worst errors on these batches with a margin (observed: relative L2 error of a token's hidden
/// state bf16 0.033, int8 0.22 — on random ids, harder than text; mean-pooled cosine bf16 0.99997,
/// int8 0.9972). A wrong scale, zero point, layout or row offset gives errors of order 1.
final class LowPrecisionInferenceTests: XCTestCase {
    static let batches = [[33, 1, 512, 7, 128, 2], [5, 64, 1]]

    func testBFloat16InferStaysCloseToFP32() throws {
        try assertClose(.bf16, tokenRelativeError: 0.06, pooledCosine: 0.9999)
    }

    func testInt8InferStaysCloseToFP32() throws {
        try assertClose(.int8, tokenRelativeError: 0.35, pooledCosine: 0.995)
    }

    /// A mixed int8 plan (`--int8-products`): the products left out run at bf16. Its error lies
    /// between bf16's and int8's bounds, and it is neither of them (each product takes its format).
    func testMixedInt8PlanStaysCloseToFP32() throws {
        Int8Plan.products = [.qkv, .attentionOutput, .ffnUp]
        defer { Int8Plan.products = Int8Plan.defaultProducts }
        try assertClose(.int8, tokenRelativeError: 0.35, pooledCosine: 0.995)
        let mixed = try Backbones.load(folder: TestSupport.miniLMDirectory(), precision: .int8)
        Int8Plan.products = Int8Plan.defaultProducts
        let int8 = try Backbones.load(folder: TestSupport.miniLMDirectory(), precision: .int8)
        let bf16 = try Backbones.load(folder: TestSupport.miniLMDirectory(), precision: .bf16)
        let batch = PackedBatch(lengths: [9, 4])
        let inputs = Tensor(shape: [batch.tokens, mixed.backbone.hiddenSize])
        mixed.backbone.embedTokens(out: inputs.data, ids: (0..<batch.tokens).map { Int32(2000 + 37 * $0) }, parameters: mixed.parameters)
        let count = inputs.count
        let outputs = [mixed, int8, bf16].map { Array(UnsafeBufferPointer(start: $0.backbone.infer(embeddings: inputs.data, batch: batch), count: count)) }
        XCTAssertNotEqual(outputs[0], outputs[1], "the mixed plan ran every product at int8")
        XCTAssertNotEqual(outputs[0], outputs[2], "the mixed plan ran every product at bf16")
    }

    /// The precision is selected per model: one loaded at int8 beside another at fp32. Preparing
    /// int8 released the fp32 matrices (they read zeros now) but not the embeddings and norms, the
    /// values' hash is the loaded weights' (a model's fingerprint), and switching back is refused.
    func testPrecisionIsSelectedPerModelAndReleasesTheFP32Matrices() throws {
        let model = try Backbones.load(folder: TestSupport.miniLMDirectory(), precision: .int8)
        let other = try Backbones.load(folder: TestSupport.miniLMDirectory())
        XCTAssertEqual(model.backbone.inferencePrecision, .int8)
        XCTAssertEqual(other.backbone.inferencePrecision, .fp32)
        XCTAssertTrue(model.parameters.hasReleasedValues)
        XCTAssertFalse(other.parameters.hasReleasedValues)
        XCTAssertEqual(model.parameters.valuesHash().hash, other.parameters.valuesHash().hash)
        for name in ["encoder.layer.0.intermediate.dense.weight", "encoder.layer.5.output.dense.weight"] {
            let handle = try XCTUnwrap(model.parameters.handle(named: name))
            let middle = model.parameters.entry(handle).count / 2
            XCTAssertEqual(model.parameters.value(handle)[middle], 0, "\(name) still held")
            XCTAssertNotEqual(other.parameters.value(handle)[middle], 0)
        }
        let embeddings = try XCTUnwrap(model.parameters.handle(named: "embeddings.word_embeddings.weight"))
        XCTAssertEqual(model.parameters.value(embeddings)[1000], other.parameters.value(embeddings)[1000])
        XCTAssertThrowsError(try model.backbone.useInferencePrecision(.fp32)) { error in
            XCTAssertTrue("\(error)".contains("load it again"), "\(error)")
        }
        XCTAssertEqual(model.backbone.inferencePrecision, .int8)
    }

    private func assertClose(_ precision: Precision, tokenRelativeError: Double, pooledCosine: Double,
                             file: StaticString = #filePath, line: UInt = #line) throws {
        let reference = try Backbones.load(folder: TestSupport.miniLMDirectory())
        let low = try Backbones.load(folder: TestSupport.miniLMDirectory(), precision: precision)
        XCTAssertEqual(low.backbone.inferencePrecision, precision)
        var rng = RandomSource(seed: 11)
        let C = reference.backbone.hiddenSize
        for lengths in Self.batches {
            let batch = PackedBatch(lengths: lengths)
            // Real token ids (random ones from the vocabulary, CLS first as the tokenizer writes).
            let ids = (0..<batch.tokens).map { _ in Int32(1000 + rng.next() % 20000) }
            let inputs = Tensor(shape: [batch.tokens, C])
            reference.backbone.embedTokens(out: inputs.data, ids: ids, parameters: reference.parameters)
            let expected = Tensor(shape: [batch.tokens, C])
            expected.data.update(from: reference.backbone.infer(embeddings: inputs.data, batch: batch), count: expected.count)
            let hidden = low.backbone.infer(embeddings: inputs.data, batch: batch)
            var worstToken = 0.0, worstCosine = 1.0
            for b in 0..<batch.count {
                var pooledDot = 0.0, pooledA = 0.0, pooledB = 0.0
                var sumA = [Double](repeating: 0, count: C), sumB = [Double](repeating: 0, count: C)
                for t in batch.starts[b]..<(batch.starts[b] + batch.lengths[b]) {
                    var difference = 0.0, norm = 0.0
                    for c in 0..<C {
                        let (a, e) = (Double(hidden[t * C + c]), Double(expected[t * C + c]))
                        difference += (a - e) * (a - e)
                        norm += e * e
                        sumA[c] += a
                        sumB[c] += e
                    }
                    worstToken = max(worstToken, (difference / norm).squareRoot())
                }
                for c in 0..<C { pooledDot += sumA[c] * sumB[c]; pooledA += sumA[c] * sumA[c]; pooledB += sumB[c] * sumB[c] }
                worstCosine = min(worstCosine, pooledDot / (pooledA * pooledB).squareRoot())
            }
            XCTAssertLessThanOrEqual(worstToken, tokenRelativeError, "\(precision) lengths \(lengths): worst token relative error",
                                     file: file, line: line)
            XCTAssertGreaterThanOrEqual(worstCosine, pooledCosine, "\(precision) lengths \(lengths): worst mean-pooled cosine",
                                        file: file, line: line)
        }
    }
}
