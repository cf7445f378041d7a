/// Inference only: a residual sum and the LayerNorm after it in one pass over each row, instead of
/// a bias pass, a residual pass and a LayerNorm pass over the whole (N, C) matrix. The row stays in
/// L1 between its sum, its statistics and its normalisation, and nothing is kept for a backward pass.
///
/// Post-LN BERT uses it as x ← LN(x + dense + bias); pre-LN GPT-2 as x ← x + dense + bias, then
/// h = LN(x), with the next LayerNorm folded into the previous residual.
public enum ResidualLayerNorm {
    /// s = inp + delta + bias (absent terms are zero); out (N, C) = (s − mean) · rstd · weight + lnBias.
    /// With `sum`, s is also stored there (N, C). `out` and `sum` may each be `inp` itself (in place).
    public static func forward(out: UnsafeMutablePointer<Float>, sum: UnsafeMutablePointer<Float>?,
                               inp: UnsafePointer<Float>, delta: UnsafePointer<Float>?, bias: UnsafePointer<Float>?,
                               weight: UnsafePointer<Float>, lnBias: UnsafePointer<Float>,
                               N: Int, C: Int, eps: Float) {
        Parallel.forRange(N, costPerItem: 4 * C) { rows in
            for n in rows {
                let x = inp + n * C, y = out + n * C
                // The sum goes where it is kept, else into the output row, normalised there in place.
                let s = sum.map { $0 + n * C } ?? y
                let d = delta.map { $0 + n * C }
                addRow(s, x, d, bias, C)
                let mean = sumRow(UnsafePointer(s), C) / Float(C)
                let rstd = 1 / (squaredDeviation(UnsafePointer(s), mean, C) / Float(C) + eps).squareRoot()
                normalizeRow(y, UnsafePointer(s), mean, rstd, weight, lnBias, C)
            }
        }
    }

    /// s = x + d + b, for whichever of d and b are present (branches decided once per row).
    @inline(__always)
    static func addRow(_ s: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, _ d: UnsafePointer<Float>?,
                       _ b: UnsafePointer<Float>?, _ C: Int) {
        switch (d, b) {
        case let (d?, b?): VectorMath.map(C, { s.setVec($0, x.vec($0) + d.vec($0) + b.vec($0)) }, { s[$0] = x[$0] + d[$0] + b[$0] })
        case let (d?, nil): VectorMath.map(C, { s.setVec($0, x.vec($0) + d.vec($0)) }, { s[$0] = x[$0] + d[$0] })
        case let (nil, b?): VectorMath.map(C, { s.setVec($0, x.vec($0) + b.vec($0)) }, { s[$0] = x[$0] + b[$0] })
        case (nil, nil): if UnsafePointer(s) != x { s.update(from: x, count: C) }
        }
    }

    @inline(__always)
    static func sumRow(_ s: UnsafePointer<Float>, _ C: Int) -> Float {
        var lanes = Vec(repeating: 0), tail: Float = 0
        VectorMath.map(C, { lanes += s.vec($0) }, { tail += s[$0] })
        return lanes.laneSum + tail
    }

    @inline(__always)
    static func squaredDeviation(_ s: UnsafePointer<Float>, _ mean: Float, _ C: Int) -> Float {
        var lanes = Vec(repeating: 0), tail: Float = 0
        let m = Vec(repeating: mean)
        VectorMath.map(C, { let v = s.vec($0) - m; lanes += v * v }, { let v = s[$0] - mean; tail += v * v })
        return lanes.laneSum + tail
    }

    @inline(__always)
    static func normalizeRow(_ y: UnsafeMutablePointer<Float>, _ s: UnsafePointer<Float>, _ mean: Float, _ rstd: Float,
                             _ w: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ C: Int) {
        let m = Vec(repeating: mean), r = Vec(repeating: rstd)
        VectorMath.map(C, { y.setVec($0, (s.vec($0) - m) * r * w.vec($0) + b.vec($0)) },
                       { y[$0] = (s[$0] - mean) * rstd * w[$0] + b[$0] })
    }
}
