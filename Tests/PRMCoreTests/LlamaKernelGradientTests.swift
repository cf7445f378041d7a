import Foundation
import XCTest
import PRMTestSupport
@testable import PRMCore

/// The Llama-family kernels' backward passes against central finite differences, and their
/// forward passes against naive formulas (RMSNorm, RoPE) or the multi-head kernel (grouped-query
/// attention with every query head's group expanded).
final class LlamaKernelGradientTests: XCTestCase {
    func testRMSNorm() {
        var g = GradientCheck()
        let (N, C) = (5, 11)
        let x = g.tensor([N, C]), w = g.tensor([C]), up = g.tensor([N, C])
        let out = Tensor(shape: [N, C]), rstd = Tensor(shape: [N])
        func loss() -> Double {
            RMSNorm.forward(out: out.data, rstd: rstd.data, inp: x.data, weight: w.data, N: N, C: C, eps: 1e-5)
            return weightedSum(out, up)
        }
        _ = loss()
        for n in 0..<N {
            let meanSquare = (0..<C).reduce(0.0) { $0 + Double(x[n * C + $1] * x[n * C + $1]) } / Double(C)
            for c in 0..<C {
                XCTAssertEqual(Double(out[n * C + c]), Double(w[c]) * Double(x[n * C + c]) / (meanSquare + 1e-5).squareRoot(), accuracy: 1e-5)
            }
        }
        // In place gives the same values.
        let inPlace = Tensor(shape: [N, C])
        inPlace.data.update(from: x.data, count: N * C)
        RMSNorm.forward(out: inPlace.data, inp: inPlace.data, weight: w.data, N: N, C: C, eps: 1e-5)
        for i in 0..<N * C { XCTAssertEqual(inPlace[i], out[i]) }
        let dx = Tensor(shape: x.shape), dw = Tensor(shape: w.shape)
        RMSNorm.backward(dinp: dx.data, dweight: dw.data, dout: up.data, inp: x.data, weight: w.data, rstd: rstd.data, N: N, C: C)
        g.check("rmsnorm dinp", input: x, analytic: dx, step: 3e-3, loss: loss)
        g.check("rmsnorm dweight", input: w, analytic: dw, step: 3e-3, loss: loss)
    }

    func testRotaryTable() {
        var g = GradientCheck()
        let (N, D, heads, stride) = (4, 6, 3, 23)  // 3 rotated heads of 6 in rows of 23 (the rest untouched)
        let positions: [Int32] = [0, 1, 7, 2]
        let table = RotaryTable(positions: positions, headSize: D, base: 10_000)
        let x = g.tensor([N, stride]), up = g.tensor([N, stride]), out = Tensor(shape: [N, stride])
        func loss() -> Double {
            out.data.update(from: x.data, count: N * stride)
            table.apply(out.data, rows: N, rowStride: stride, heads: heads)
            return weightedSum(out, up)
        }
        _ = loss()
        for n in 0..<N {
            for h in 0..<heads { for i in 0..<D / 2 {
                let angle = Double(positions[n]) * pow(10_000, -Double(2 * i) / Double(D))
                let (a, b) = (Double(x[n * stride + h * D + i]), Double(x[n * stride + h * D + i + D / 2]))
                XCTAssertEqual(Double(out[n * stride + h * D + i]), a * cos(angle) - b * sin(angle), accuracy: 1e-5)
                XCTAssertEqual(Double(out[n * stride + h * D + i + D / 2]), b * cos(angle) + a * sin(angle), accuracy: 1e-5)
            } }
            for c in heads * D..<stride { XCTAssertEqual(out[n * stride + c], x[n * stride + c]) }
        }
        let dx = Tensor(shape: x.shape)
        dx.data.update(from: up.data, count: N * stride)
        table.backward(dx.data, rows: N, rowStride: stride, heads: heads)
        g.check("rope", input: x, analytic: dx, step: 3e-3, loss: loss)
    }

    func testSwiGLU() {
        var g = GradientCheck()
        let (N, I) = (4, 9)
        let gateUp = g.tensor([N, 2 * I], scale: 2), up = g.tensor([N, I]), out = Tensor(shape: [N, I])
        func loss() -> Double {
            SwiGLU.forward(out: out.data, gateUp: gateUp.data, N: N, I: I)
            return weightedSum(out, up)
        }
        _ = loss()
        let (gate, value) = (gateUp[2 * I + 3], gateUp[2 * I + I + 3])
        XCTAssertEqual(out[I + 3], gate / (1 + exp(-gate)) * value, accuracy: 1e-5)
        let d = Tensor(shape: gateUp.shape)
        SwiGLU.backward(dgateUp: d.data, dout: up.data, gateUp: gateUp.data, N: N, I: I)
        g.check("swiglu", input: gateUp, analytic: d, step: 3e-3, loss: loss)
    }

    func testGroupedAttentionMatchesExpandedHeadsAndFiniteDifferences() {
        TestSupport.eachBackend { backend in
            var g = GradientCheck()
            let shape = GroupedAttention.Shape(heads: 4, keyValueHeads: 2, headSize: 3)
            let (Q, K, W) = (12, 6, 24)
            let batch = PackedBatch(lengths: [5, 1, 7])
            let qkv = g.tensor([batch.tokens, W]), up = g.tensor([batch.tokens, Q])
            let out = Tensor(shape: [batch.tokens, Q]), probs = Tensor(shape: [batch.probsCount(heads: 4)])
            func loss() -> Double {
                GroupedAttention.forward(out: out.data, probs: probs.data, qkv: qkv.data, batch: batch, shape: shape)
                return weightedSum(out, up)
            }
            _ = loss()
            // Multi-head attention on rows whose keys and values repeat each group for its query heads.
            let expanded = Tensor(shape: [batch.tokens, 3 * Q]), reference = Tensor(shape: [batch.tokens, Q])
            for n in 0..<batch.tokens {
                for c in 0..<Q { expanded[n * 3 * Q + c] = qkv[n * W + c] }
                for h in 0..<4 { for d in 0..<3 {
                    expanded[n * 3 * Q + Q + h * 3 + d] = qkv[n * W + Q + (h / 2) * 3 + d]
                    expanded[n * 3 * Q + 2 * Q + h * 3 + d] = qkv[n * W + Q + K + (h / 2) * 3 + d]
                } }
            }
            let referenceProbs = Tensor(shape: [batch.probsCount(heads: 4)])
            Attention.forward(out: reference.data, probs: referenceProbs.data, qkv: expanded.data, batch: batch, NH: 4, C: Q, causal: true)
            for i in 0..<out.count { XCTAssertEqual(out[i], reference[i], accuracy: 1e-5, "\(backend)") }
            let dqkv = Tensor(shape: qkv.shape)
            GroupedAttention.backward(dqkv: dqkv.data, dout: up.data, qkv: qkv.data, probs: probs.data, batch: batch, shape: shape)
            g.check("\(backend) grouped attention", input: qkv, analytic: dqkv, step: 3e-3, samples: 96, loss: loss)
        }
    }
}
