/// Row lookup in an embedding table.
public enum Embedding {
    /// out (N, C) = table[ids[n]] (or += when `accumulate`, used to add position/type embeddings).
    public static func forward(out: UnsafeMutablePointer<Float>, ids: UnsafePointer<Int32>,
                               table: UnsafePointer<Float>, N: Int, C: Int, accumulate: Bool = false) {
        Parallel.forRange(N, costPerItem: C) { rows in
            for n in rows {
                let src = table + Int(ids[n]) * C
                let dst = out + n * C
                if accumulate {
                    for c in 0..<C { dst[c] += src[c] }
                } else {
                    dst.update(from: src, count: C)
                }
            }
        }
    }

    /// out (N, C) = inp + table[offset + t] for the t-th token of each sequence of a packed batch:
    /// learned positions without a per-token id array (inference; `offset` = cached tokens before).
    public static func addPositions(out: UnsafeMutablePointer<Float>, inp: UnsafePointer<Float>, table: UnsafePointer<Float>,
                                    batch: PackedBatch, offset: Int = 0, C: Int) {
        Parallel.forRange(batch.count, costPerItem: C * max(1, batch.tokens / max(1, batch.count))) { sequences in
            for b in sequences {
                let start = batch.starts[b]
                for t in 0..<batch.lengths[b] {
                    let x = inp + (start + t) * C, y = out + (start + t) * C, p = table + (offset + t) * C
                    for c in 0..<C { y[c] = x[c] + p[c] }
                }
            }
        }
    }

    /// dtable[ids[n]] += dout[n]. Serial: ids repeat, so rows would race.
    public static func backward(dtable: UnsafeMutablePointer<Float>, dout: UnsafePointer<Float>,
                                ids: UnsafePointer<Int32>, N: Int, C: Int) {
        for n in 0..<N {
            let dst = dtable + Int(ids[n]) * C
            let src = dout + n * C
            for c in 0..<C { dst[c] += src[c] }
        }
    }
}
