import XCTest
import PRMTestSupport
@testable import PRMCore

/// Each low-precision matmul against an fp64 reference of the same fp32 inputs, within the error
/// bound its number format implies (derived per test), on ragged row counts, sizes with and
/// without a 16-wide tail, MiniLM's shapes, with and without bias. This CPU must run both
/// precisions natively (AVX512_BF16 and AVX-512 VNNI); a CPU without them fails here.
final class LowPrecisionLinearTests: XCTestCase {
    static let shapes = [(rows: 1, inputs: 37, outputs: 19), (rows: 7, inputs: 384, outputs: 1152),
                         (rows: 33, inputs: 1536, outputs: 384), (rows: 130, inputs: 384, outputs: 1536)]

    func testBothPrecisionsRunNativelyHere() throws {
        try Precision.int8.requireNative()
        try Precision.bf16.requireNative()
    }

    /// int8. Per output channel o the weights are rounded on a grid of step s_w[o] = max|W[o,:]|/127
    /// (|δ_k| ≤ s_w/2, no clipping: the grid spans the channel), per row r the activations on a grid
    /// of step s_a[r] = (max(x,0) − min(x,0))/255 (|ε_k| ≤ s_a/2, no clipping either). The s32
    /// accumulation is exact, so
    ///   |ŷ − y| = |Σ_k (x_k δ_k + w_k ε_k + ε_k δ_k)| ≤ (s_w/2)·Σ|x_k| + (s_a/2)·Σ|w_k| + K·s_a·s_w/4,
    /// plus fp32 rounding of the scales and the dequantization (a few ulps of Σ|x_k w_k|).
    func testInt8WithinItsQuantizationBound() throws {
        try Precision.int8.requireNative()
        var g = GradientCheck()
        for (rows, K, O) in Self.shapes {
            let x = g.tensor([rows, K]), w = g.tensor([O, K], scale: 0.05), b = g.tensor([O])
            x[0] = 12  // an outlier stretches row 0's grid: its bound grows with it
            let layer = LowPrecisionLinear(weight: w.data, outputs: O, inputs: K, precision: .int8)
            for bias in [nil, b] {
                let out = Tensor(shape: [rows, O])
                layer.forward(out: out.data, inp: x.data, rows: rows, bias: bias?.data, scratch: GrowableBuffer())
                var worstRatio = 0.0
                for r in 0..<rows {
                    let row = (0..<K).map { Double(x[r * K + $0]) }
                    let sa = (max(row.max()!, 0) - min(row.min()!, 0)) / 255
                    for o in 0..<O {
                        let weights = (0..<K).map { Double(w[o * K + $0]) }
                        let sw = weights.map(abs).max()! / 127
                        let exact = zip(row, weights).reduce(0) { $0 + $1.0 * $1.1 } + Double(bias?[o] ?? 0)
                        let magnitude = zip(row, weights).reduce(0) { $0 + abs($1.0 * $1.1) }
                        let bound = sw / 2 * row.reduce(0) { $0 + abs($1) } + sa / 2 * weights.reduce(0) { $0 + abs($1) }
                            + Double(K) * sa * sw / 4 + 1e-5 * (magnitude + 1)
                        let error = abs(Double(out[r * O + o]) - exact)
                        worstRatio = max(worstRatio, error / bound)
                        if error > bound { XCTFail("int8 \(rows)×\(K)→\(O) [\(r), \(o)]: error \(error) > bound \(bound)"); return }
                    }
                }
                // The bound is not vacuous: it is the worst case, and the typical error uses a good part of it.
                XCTAssertGreaterThan(worstRatio, 0.01, "int8 \(rows)×\(K)→\(O): error far below the bound, is it quantizing at all?")
            }
        }
    }

    /// bf16 keeps 8 significant bits: rounding to nearest even gives |x̂ − x| ≤ u|x| with u = 2⁻⁹,
    /// for weights and activations alike; the products are exact in fp32 and summed in fp32
    /// (≤ K·2⁻²⁴ relative each), so |ŷ − y| ≤ (2u + u² + K·2⁻²⁴)·Σ_k |x_k w_k|.
    func testBFloat16WithinItsRoundingBound() throws {
        try Precision.bf16.requireNative()
        var g = GradientCheck()
        let u = pow(2.0, -9.0)
        for (rows, K, O) in Self.shapes {
            let x = g.tensor([rows, K]), w = g.tensor([O, K], scale: 0.05), b = g.tensor([O])
            let layer = LowPrecisionLinear(weight: w.data, outputs: O, inputs: K, precision: .bf16)
            for bias in [nil, b] {
                let out = Tensor(shape: [rows, O])
                layer.forward(out: out.data, inp: x.data, rows: rows, bias: bias?.data, scratch: GrowableBuffer())
                for r in 0..<rows {
                    for o in 0..<O {
                        var (exact, magnitude) = (Double(bias?[o] ?? 0), 0.0)
                        for k in 0..<K {
                            let p = Double(x[r * K + k]) * Double(w[o * K + k])
                            exact += p
                            magnitude += abs(p)
                        }
                        let bound = (2 * u + u * u + Double(K) * pow(2.0, -24)) * magnitude + 1e-6 * abs(exact) + 1e-7
                        let error = abs(Double(out[r * O + o]) - exact)
                        if error > bound { XCTFail("bf16 \(rows)×\(K)→\(O) [\(r), \(o)]: error \(error) > bound \(bound)"); return }
                    }
                }
            }
        }
    }

    /// GELU fused into the product (oneDNN's eltwise post-op at bf16, the dequantization loop at
    /// int8) against the same layer's unfused output followed by prm's own bias + GELU pass, for
    /// both forms. int8 dequantizes identically either way, so only GELU's evaluation could differ:
    /// it is the same function, so the results are equal. At bf16 oneDNN adds the bias inside its
    /// kernel and evaluates its own erf/tanh: the difference is float rounding of the pre-activation
    /// (a few ulps of |y| + |b|) through GELU's slope (≤ 1.13), plus oneDNN's GELU approximation
    /// error (≤ 2⁻²⁰ relative in its documentation's accuracy table), so 1e-5·(|y| + |b|) + 1e-6.
    func testFusedGELUMatchesTheUnfusedPass() throws {
        var g = GradientCheck()
        for precision in [Precision.bf16, .int8] {
            try precision.requireNative()
            for form in [GELU.Form.erf, .tanh] {
                for (rows, K, O) in Self.shapes {
                    let x = g.tensor([rows, K]), w = g.tensor([O, K], scale: 0.05), b = g.tensor([O])
                    let fused = LowPrecisionLinear(weight: w.data, outputs: O, inputs: K, precision: precision, gelu: form)
                    let plain = LowPrecisionLinear(weight: w.data, outputs: O, inputs: K, precision: precision)
                    let (got, expected) = (Tensor(shape: [rows, O]), Tensor(shape: [rows, O]))
                    fused.forward(out: got.data, inp: x.data, rows: rows, bias: b.data, scratch: GrowableBuffer())
                    plain.forward(out: expected.data, inp: x.data, rows: rows, bias: nil, scratch: GrowableBuffer())
                    let preActivation = (0..<rows * O).map { expected[$0] + b[$0 % O] }
                    GELU.forwardAddingBias(expected.data, bias: b.data, N: rows, I: O, form: form)
                    var worst: Float = 0
                    for i in 0..<rows * O {
                        let error = abs(got[i] - expected[i])
                        if precision == .int8 {
                            worst = max(worst, error)
                        } else {
                            let bound = 1e-5 * (abs(preActivation[i]) + abs(b[i % O])) + 1e-6
                            worst = max(worst, error / bound)
                        }
                    }
                    if precision == .int8 {
                        XCTAssertEqual(worst, 0, "int8 \(form) \(rows)×\(K)→\(O): fused differs from unfused")
                    } else {
                        XCTAssertLessThanOrEqual(worst, 1, "bf16 \(form) \(rows)×\(K)→\(O): worst error over its bound")
                    }
                }
            }
        }
    }

    /// Rounding to bf16 is to nearest, ties to even, as oneDNN's own conversion does.
    func testBFloat16RoundsToNearestEven() {
        let values: [Float] = [1, 1 + 1.0 / 256, 1 + 3.0 / 512, 1 + 1.0 / 512, -2.75, 3.3e-3, 1e30]
        let bits = UnsafeMutablePointer<UInt16>.allocate(capacity: values.count)
        defer { bits.deallocate() }
        LowPrecisionLinear.roundToBFloat16(values, count: values.count, into: bits)
        let expected: [Float] = [1, 1, 1 + 1.0 / 128, 1, -2.75]  // 1 + 2⁻⁸ is a tie: to even, 1
        for (i, e) in expected.enumerated() { XCTAssertEqual(LowPrecisionLinear.float(bfloat16: bits[i]), e, "value \(values[i])") }
        for i in expected.count..<values.count {
            let back = LowPrecisionLinear.float(bfloat16: bits[i])
            XCTAssertLessThanOrEqual(abs(back - values[i]), abs(values[i]) / 256, "value \(values[i])")
        }
    }
}
