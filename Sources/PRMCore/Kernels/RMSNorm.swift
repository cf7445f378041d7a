/// RMSNorm as Hugging Face's `LlamaRMSNorm`: out = weight · x · r with r = 1 / sqrt(mean(x²) + eps),
/// per row of C. The training pass saves r for the backward pass; in place (out == inp) is allowed.
public enum RMSNorm {
    /// out (N, C) from inp (N, C); rstd (N) receives r when given.
    public static func forward(out: UnsafeMutablePointer<Float>, rstd: UnsafeMutablePointer<Float>? = nil, inp: UnsafePointer<Float>,
                               weight: UnsafePointer<Float>, N: Int, C: Int, eps: Float) {
        for n in 0..<N {
            let (row, result) = (inp + n * C, out + n * C)
            var sum: Float = 0
            for i in 0..<C { sum += row[i] * row[i] }
            let scale = 1 / (sum / Float(C) + eps).squareRoot()
            for i in 0..<C { result[i] = weight[i] * (row[i] * scale) }
            rstd?[n] = scale
        }
    }

    /// Accumulates dinp (N, C) and dweight (C). With g = dout · weight:
    /// dx = r · (g − x · r² · mean(g · x)), dweight += dout · x · r.
    public static func backward(dinp: UnsafeMutablePointer<Float>, dweight: UnsafeMutablePointer<Float>?, dout: UnsafePointer<Float>,
                                inp: UnsafePointer<Float>, weight: UnsafePointer<Float>, rstd: UnsafePointer<Float>, N: Int, C: Int) {
        for n in 0..<N {
            let (x, dy, dx, r) = (inp + n * C, dout + n * C, dinp + n * C, rstd[n])
            var meanGX: Float = 0
            for i in 0..<C { meanGX += dy[i] * weight[i] * x[i] }
            meanGX /= Float(C)
            for i in 0..<C { dx[i] += r * (dy[i] * weight[i] - x[i] * r * r * meanGX) }
            if let dweight { for i in 0..<C { dweight[i] += dy[i] * x[i] * r } }
        }
    }
}
