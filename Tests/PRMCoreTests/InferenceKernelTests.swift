import XCTest
import Foundation
import PRMTestSupport
@testable import PRMCore

/// The fused inference kernels against the training kernels they replace, composed the way the
/// training forward composes them (the training kernels are checked by finite differences).
final class InferenceKernelTests: XCTestCase {
    /// x + delta + bias, then LayerNorm: every combination of present terms, kept sum or not, in
    /// place or not; C with a SIMD body and a tail, and MiniLM's C; enough rows to run in parallel.
    func testResidualLayerNormEqualsResidualThenLayerNorm() {
        var g = GradientCheck()
        for (N, C) in [(3, 37), (300, 384)] {
            let x = g.tensor([N, C], scale: 2), d = g.tensor([N, C]), b = g.tensor([C]), w = g.tensor([C]), lb = g.tensor([C])
            for (useDelta, useBias) in [(true, true), (true, false), (false, true), (false, false)] {
                // Reference: explicit sums with the training Residual kernel, then LayerNorm.forward.
                let sum = Tensor(shape: [N, C])
                sum.copy(from: x)
                if useDelta { Residual.forward(out: sum.data, a: sum.data, b: d.data, count: N * C) }
                if useBias { for n in 0..<N { for c in 0..<C { sum[n * C + c] += b[c] } } }
                let expected = Tensor(shape: [N, C]), mean = Tensor(shape: [N]), rstd = Tensor(shape: [N])
                LayerNorm.forward(out: expected.data, mean: mean.data, rstd: rstd.data, inp: sum.data, weight: w.data, bias: lb.data,
                                  N: N, C: C, eps: 1e-5)
                let label = "N \(N) C \(C) delta \(useDelta) bias \(useBias)"

                // Out of place, keeping the sum.
                let out = Tensor(shape: [N, C]), kept = Tensor(shape: [N, C])
                ResidualLayerNorm.forward(out: out.data, sum: kept.data, inp: x.data, delta: useDelta ? d.data : nil,
                                          bias: useBias ? b.data : nil, weight: w.data, lnBias: lb.data, N: N, C: C, eps: 1e-5)
                assertClose(out, expected, 1e-5, label)
                assertClose(kept, sum, 1e-6, label + " sum")

                // In place as BERT uses it: x ← LN(x + ·).
                let inPlace = Tensor(shape: [N, C])
                inPlace.copy(from: x)
                ResidualLayerNorm.forward(out: inPlace.data, sum: nil, inp: inPlace.data, delta: useDelta ? d.data : nil,
                                          bias: useBias ? b.data : nil, weight: w.data, lnBias: lb.data, N: N, C: C, eps: 1e-5)
                assertClose(inPlace, expected, 1e-5, label + " in place")

                // As GPT-2 uses it: x ← x + ·, h = LN(x).
                let stream = Tensor(shape: [N, C]), normed = Tensor(shape: [N, C])
                stream.copy(from: x)
                ResidualLayerNorm.forward(out: normed.data, sum: stream.data, inp: stream.data, delta: useDelta ? d.data : nil,
                                          bias: useBias ? b.data : nil, weight: w.data, lnBias: lb.data, N: N, C: C, eps: 1e-5)
                assertClose(normed, expected, 1e-5, label + " residual stream")
                assertClose(stream, sum, 1e-6, label + " residual stream sum")
            }
        }
    }

    func testGELUAddingBiasEqualsBiasThenGELU() {
        var g = GradientCheck()
        for form in [GELU.Form.erf, .tanh] {
            for (N, I) in [(3, 37), (64, 1536)] {
                let x = g.tensor([N, I], scale: 2.5), b = g.tensor([I])
                let biased = Tensor(shape: [N, I]), expected = Tensor(shape: [N, I])
                for n in 0..<N { for i in 0..<I { biased[n * I + i] = x[n * I + i] + b[i] } }
                GELU.forward(out: expected.data, inp: biased.data, count: N * I, form: form)
                let fused = Tensor(shape: [N, I])
                fused.copy(from: x)
                GELU.forwardAddingBias(fused.data, bias: b.data, N: N, I: I, form: form)
                assertClose(fused, expected, 0, "gelu \(form) N \(N) I \(I)")
            }
        }
    }

    func testAddPositionsEqualsEmbeddingWithPositionIds() {
        var g = GradientCheck()
        let (C, P) = (19, 3)
        let batch = PackedBatch(lengths: [4, 1, 0, 7])
        let table = g.tensor([P + 7, C]), x = g.tensor([batch.tokens, C])
        let ids = batch.lengths.flatMap { (0..<$0).map { Int32(P + $0) } }
        let expected = Tensor(shape: [batch.tokens, C])
        expected.copy(from: x)
        ids.withUnsafeBufferPointer { Embedding.forward(out: expected.data, ids: $0.baseAddress!, table: table.data, N: batch.tokens, C: C, accumulate: true) }
        let out = Tensor(shape: [batch.tokens, C])
        Embedding.addPositions(out: out.data, inp: x.data, table: table.data, batch: batch, offset: P, C: C)
        assertClose(out, expected, 0, "positions")
    }

    func testTransposeOnOddAndTiledShapes() {
        var g = GradientCheck()
        for (R, C) in [(1, 1), (3, 70), (33, 31), (1152, 384)] {
            let x = g.tensor([R, C]), out = Tensor(shape: [C, R])
            Transpose.forward(out: out.data, inp: x.data, rows: R, columns: C)
            var wrong = 0
            for r in 0..<R { for c in 0..<C where out[c * R + r] != x[r * C + c] { wrong += 1 } }
            XCTAssertEqual(wrong, 0, "\(R)×\(C)")
        }
    }

    /// Inference attention (one score block per worker, reused) against the training forward
    /// (all probabilities kept), ragged with a length-1 sequence, both masks, every backend.
    func testAttentionInferEqualsForward() {
        var g = GradientCheck()
        let (NH, C) = (4, 32)
        let batch = PackedBatch(lengths: [9, 1, 40, 3, 17])
        let qkv = g.tensor([batch.tokens, 3 * C], scale: 1.5)
        TestSupport.eachBackend { backend in
            for causal in [false, true] {
                let expected = Tensor(shape: [batch.tokens, C]), probs = Tensor(shape: [batch.probsCount(heads: NH)])
                Attention.forward(out: expected.data, probs: probs.data, qkv: qkv.data, batch: batch, NH: NH, C: C, causal: causal)
                let out = Tensor(shape: [batch.tokens, C]), scratch = Tensor(shape: [Attention.inferenceScratch(batch: batch)])
                Attention.infer(out: out.data, scratch: scratch.data, qkv: qkv.data, batch: batch, NH: NH, C: C, causal: causal)
                assertClose(out, expected, 1e-6, "\(backend) causal \(causal)")
            }
        }
    }

    /// One decoding step's attention (a query over a shared prefix's keys and its own) against a
    /// plain double-precision softmax over the two key blocks; head sizes with and without a SIMD
    /// tail, strided key rows, an empty prefix.
    func testAttendHeadStepEqualsPlainSoftmaxAttention() {
        var g = GradientCheck()
        for (hs, P, R, ld) in [(64, 37, 5, 192), (20, 0, 3, 20), (64, 120, 1, 64), (80, 9, 4, 80)] {
            let q = g.tensor([hs], scale: 2), prefixK = g.tensor([max(P, 1), ld]), prefixV = g.tensor([max(P, 1), ld])
            let ownK = g.tensor([R, ld]), ownV = g.tensor([R, ld])
            let keys = (0..<P).map { prefixK.data + $0 * ld } + (0..<R).map { ownK.data + $0 * ld }
            let values = (0..<P).map { prefixV.data + $0 * ld } + (0..<R).map { ownV.data + $0 * ld }
            let scores = keys.map { k in (0..<hs).reduce(0.0) { $0 + Double(q[$1]) * Double(k[$1]) } / Double(hs).squareRoot() }
            let weights = scores.map { Foundation.exp($0 - scores.max()!) }
            let expected = (0..<hs).map { d in zip(weights, values).reduce(0.0) { $0 + $1.0 * Double($1.1[d]) } / weights.reduce(0, +) }
            let out = Tensor(shape: [hs]), probs = Tensor(shape: [P + R])
            Attention.attendHeadStep(out: out.data, probs: probs.data, q: q.data, prefixK: prefixK.data, prefixV: prefixV.data, ldPrefix: ld,
                                     P: P, ownK: ownK.data, ownV: ownV.data, ldOwn: ld, R: R, hs: hs)
            let worst = (0..<hs).map { abs(Double(out[$0]) - expected[$0]) }.max()!
            XCTAssertLessThanOrEqual(worst, 1e-5, "hs \(hs) P \(P) R \(R): largest difference")
        }
    }

    /// A decoding step's few-row product (`Linear.forward` takes StreamedLinear up to 8 rows)
    /// against a double-precision reference: every row count it takes (none included) and the first it does not;
    /// serial and parallel shapes, odd row halves (a W row paired with itself), C with a SIMD body
    /// and a tail; with and without bias. Each difference is bounded relative to Σ|w·x|.
    func testFewRowProductEqualsDoublePrecisionProduct() {
        var g = GradientCheck()
        for (OC, C) in [(7, 37), (301, 576), (131, 1000)] {
            let w = g.tensor([OC, C]), bias = g.tensor([OC])
            for N in 0...StreamedLinear.maxRows + 1 {
                let x = g.tensor([N, C], scale: 2)
                for useBias in [false, true] {
                    let out = Tensor(shape: [N, OC])
                    out.data.update(repeating: .nan, count: N * OC)  // every element must be written
                    Linear.forward(out: out.data, inp: x.data, weight: w.data, bias: useBias ? bias.data : nil, N: N, C: C, OC: OC)
                    var worst = 0.0
                    for n in 0..<N {
                        for r in 0..<OC {
                            var sum = useBias ? Double(bias[r]) : 0, magnitude = 0.0
                            for c in 0..<C {
                                let term = Double(w[r * C + c]) * Double(x[n * C + c])
                                sum += term
                                magnitude += abs(term)
                            }
                            let difference = abs(Double(out[n * OC + r]) - sum) / max(magnitude, 1)
                            worst = max(worst, difference.isNaN ? .infinity : difference)  // an unwritten NaN fails
                        }
                    }
                    XCTAssertLessThanOrEqual(worst, 1e-6, "OC \(OC) C \(C) N \(N) bias \(useBias): largest relative difference")
                }
            }
        }
    }

    private func assertClose(_ actual: Tensor, _ expected: Tensor, _ tolerance: Float, _ label: String,
                             file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(actual.count, expected.count, label, file: file, line: line)
        var worst: Float = 0
        for i in 0..<min(actual.count, expected.count) { worst = max(worst, abs(actual[i] - expected[i])) }
        XCTAssertLessThanOrEqual(worst, tolerance, "\(label): largest difference", file: file, line: line)
    }
}
