/// LayerNorm over the last dimension; forward saves mean and 1/σ for the backward pass.
public enum LayerNorm {
    /// out (N, C) = (inp − mean) · rstd · weight + bias; mean (N), rstd (N) cached.
    public static func forward(out: UnsafeMutablePointer<Float>, mean: UnsafeMutablePointer<Float>,
                               rstd: UnsafeMutablePointer<Float>, inp: UnsafePointer<Float>,
                               weight: UnsafePointer<Float>, bias: UnsafePointer<Float>,
                               N: Int, C: Int, eps: Float) {
        Parallel.forRange(N, costPerItem: 4 * C) { rows in
            for n in rows {
                let x = inp + n * C
                let y = out + n * C
                var sum: Float = 0
                for c in 0..<C { sum += x[c] }
                let m = sum / Float(C)
                var variance: Float = 0
                for c in 0..<C { let d = x[c] - m; variance += d * d }
                let s = 1 / (variance / Float(C) + eps).squareRoot()
                for c in 0..<C { y[c] = (x[c] - m) * s * weight[c] + bias[c] }
                mean[n] = m
                rstd[n] = s
            }
        }
    }

    /// Accumulates dinp (N, C), dweight (C), dbias (C).
    public static func backward(dinp: UnsafeMutablePointer<Float>, dweight: UnsafeMutablePointer<Float>?,
                                dbias: UnsafeMutablePointer<Float>?, dout: UnsafePointer<Float>,
                                inp: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                                mean: UnsafePointer<Float>, rstd: UnsafePointer<Float>, N: Int, C: Int) {
        let chunks = Parallel.chunkCount(N, costPerItem: 6 * C)
        // Per-chunk partial sums for the parameter gradients: rows are split across cores.
        let partials = UnsafeMutablePointer<Float>.allocate(capacity: chunks * 2 * C)
        partials.initialize(repeating: 0, count: chunks * 2 * C)
        defer { partials.deallocate() }
        Parallel.forChunks(N, costPerItem: 6 * C) { chunk, rows in
            let dw = partials + chunk * 2 * C
            let db = dw + C
            for n in rows {
                let x = inp + n * C, dy = dout + n * C, dx = dinp + n * C
                let m = mean[n], s = rstd[n]
                // dx = s · (g − mean(g) − x̂ · mean(g · x̂)) with g = dy · weight.
                var meanG: Float = 0, meanGX: Float = 0
                for c in 0..<C {
                    let xhat = (x[c] - m) * s
                    let g = dy[c] * weight[c]
                    meanG += g
                    meanGX += g * xhat
                    db[c] += dy[c]
                    dw[c] += dy[c] * xhat
                }
                meanG /= Float(C)
                meanGX /= Float(C)
                for c in 0..<C {
                    let xhat = (x[c] - m) * s
                    dx[c] += s * (dy[c] * weight[c] - meanG - xhat * meanGX)
                }
            }
        }
        for chunk in 0..<chunks {
            let dw = partials + chunk * 2 * C
            if let dweight { for c in 0..<C { dweight[c] += dw[c] } }
            if let dbias { for c in 0..<C { dbias[c] += dw[C + c] } }
        }
    }
}
