/// Mean over row spans of a packed batch: a whole sequence (`PackedBatch.sequenceSpans`) or a part
/// of it, such as a reply after its prompt.
public enum MeanPool {
    /// out (B, C) = mean of inp (N, C)'s rows in each span (zero for an empty span).
    public static func forward(out: UnsafeMutablePointer<Float>, inp: UnsafePointer<Float>, spans: [Range<Int>], C: Int) {
        Parallel.forRange(spans.count, costPerItem: C * 32) { items in
            for b in items {
                let y = out + b * C
                y.update(repeating: 0, count: C)
                let span = spans[b]
                guard !span.isEmpty else { continue }
                for row in span {
                    let x = inp + row * C
                    for c in 0..<C { y[c] += x[c] }
                }
                let inverse = 1 / Float(span.count)
                for c in 0..<C { y[c] *= inverse }
            }
        }
    }

    /// dinp[t] += dout[b] / |span_b| for each row t of span b.
    public static func backward(dinp: UnsafeMutablePointer<Float>, dout: UnsafePointer<Float>, spans: [Range<Int>], C: Int) {
        Parallel.forRange(spans.count, costPerItem: C * 32) { items in
            for b in items {
                let span = spans[b]
                guard !span.isEmpty else { continue }
                let inverse = 1 / Float(span.count)
                let dy = dout + b * C
                for row in span {
                    let dx = dinp + row * C
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
