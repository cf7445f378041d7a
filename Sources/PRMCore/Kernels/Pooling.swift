/// Reductions from token rows to one vector per sequence.
public enum MeanPool {
    /// out (B, C) = mean of each sequence's rows of inp (N, C).
    public static func forward(out: UnsafeMutablePointer<Float>, inp: UnsafePointer<Float>, batch: PackedBatch, C: Int) {
        Parallel.forRange(batch.count, costPerItem: C * 32) { seqs in
            for b in seqs {
                let y = out + b * C
                y.update(repeating: 0, count: C)
                let T = batch.lengths[b]
                guard T > 0 else { continue }
                for t in 0..<T {
                    let x = inp + (batch.starts[b] + t) * C
                    for c in 0..<C { y[c] += x[c] }
                }
                let inverse = 1 / Float(T)
                for c in 0..<C { y[c] *= inverse }
            }
        }
    }

    /// dinp[t] += dout[b] / T_b for each token t of sequence b.
    public static func backward(dinp: UnsafeMutablePointer<Float>, dout: UnsafePointer<Float>, batch: PackedBatch, C: Int) {
        Parallel.forRange(batch.count, costPerItem: C * 32) { seqs in
            for b in seqs {
                let T = batch.lengths[b]
                guard T > 0 else { continue }
                let inverse = 1 / Float(T)
                let dy = dout + b * C
                for t in 0..<T {
                    let dx = dinp + (batch.starts[b] + t) * C
                    for c in 0..<C { dx[c] += dy[c] * inverse }
                }
            }
        }
    }
}

/// Picks given rows (a causal model's last token, BERT's [CLS]).
public enum RowGather {
    /// out (R, C) = inp[rows[r]].
    public static func forward(out: UnsafeMutablePointer<Float>, inp: UnsafePointer<Float>, rows: [Int], C: Int) {
        for (r, row) in rows.enumerated() { (out + r * C).update(from: inp + row * C, count: C) }
    }

    /// dinp[rows[r]] += dout[r].
    public static func backward(dinp: UnsafeMutablePointer<Float>, dout: UnsafePointer<Float>, rows: [Int], C: Int) {
        for (r, row) in rows.enumerated() {
            let dx = dinp + row * C, dy = dout + r * C
            for c in 0..<C { dx[c] += dy[c] }
        }
    }
}

/// Row-wise L2 normalisation (sentence embeddings).
public enum L2Normalize {
    static let eps: Float = 1e-12

    /// out (B, C) = inp / max(‖inp‖, eps); norms (B) cached. out may be inp (in place).
    public static func forward(out: UnsafeMutablePointer<Float>, norms: UnsafeMutablePointer<Float>,
                               inp: UnsafePointer<Float>, B: Int, C: Int) {
        for b in 0..<B {
            let x = inp + b * C, y = out + b * C
            var sum: Float = 0
            for c in 0..<C { sum += x[c] * x[c] }
            let norm = max(sum.squareRoot(), eps)
            norms[b] = norm
            for c in 0..<C { y[c] = x[c] / norm }
        }
    }

    /// dinp += (dout − y ⟨y, dout⟩) / ‖x‖.
    public static func backward(dinp: UnsafeMutablePointer<Float>, dout: UnsafePointer<Float>, out: UnsafePointer<Float>,
                                norms: UnsafePointer<Float>, B: Int, C: Int) {
        for b in 0..<B {
            let y = out + b * C, dy = dout + b * C, dx = dinp + b * C
            var dot: Float = 0
            for c in 0..<C { dot += y[c] * dy[c] }
            for c in 0..<C { dx[c] += (dy[c] - y[c] * dot) / norms[b] }
        }
    }
}
