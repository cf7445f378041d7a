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

    /// The precision is selected per model: one loaded at int8 beside another at fp32, and
    /// switched back (the decoders' own tests: DecoderLowPrecisionTests).
    func testPrecisionIsSelectedPerModel() throws {
        let model = try Backbones.load(folder: TestSupport.miniLMDirectory(), precision: .int8)
        let other = try Backbones.load(folder: TestSupport.miniLMDirectory())
        XCTAssertEqual(model.backbone.inferencePrecision, .int8)
        XCTAssertEqual(other.backbone.inferencePrecision, .fp32)
        try model.backbone.useInferencePrecision(.fp32)
        XCTAssertEqual(model.backbone.inferencePrecision, .fp32)
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
