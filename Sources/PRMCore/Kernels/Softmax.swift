/// Row-wise softmax.
public enum Softmax {
    /// out (N, V) = softmax(inp) per row.
    public static func forward(out: UnsafeMutablePointer<Float>, inp: UnsafePointer<Float>, N: Int, V: Int) {
        Parallel.forRange(N, costPerItem: 4 * V) { rows in
            for n in rows {
                (out + n * V).update(from: inp + n * V, count: V)
                normalizeRow(out + n * V, valid: V, width: V)
            }
        }
    }

    /// dinp += out ⊙ (dout − ⟨dout, out⟩) per row.
    public static func backward(dinp: UnsafeMutablePointer<Float>, dout: UnsafePointer<Float>,
                                out: UnsafePointer<Float>, N: Int, V: Int) {
        Parallel.forRange(N, costPerItem: 4 * V) { rows in
            for n in rows {
                let y = out + n * V, dy = dout + n * V, dx = dinp + n * V
                var dot: Float = 0
                for v in 0..<V { dot += dy[v] * y[v] }
                for v in 0..<V { dx[v] += y[v] * (dy[v] - dot) }
            }
        }
    }

    /// In place: softmax over the first `valid` entries of a row, zeros for the rest (masked keys).
    @inline(__always)
    static func normalizeRow(_ row: UnsafeMutablePointer<Float>, valid: Int, width: Int) {
        var maxValue = -Float.infinity
        for j in 0..<valid { maxValue = max(maxValue, row[j]) }
        var sums = Vec(repeating: 0)
        var tail: Float = 0
        VectorMath.map(valid, { j in
            let e = VectorMath.exp(row.vec(j) - maxValue)
            row.setVec(j, e)
            sums += e
        }, { j in
            let e = VectorMath.exp(lane(row[j] - maxValue))[0]
            row[j] = e
            tail += e
        })
        let inverse = 1 / (sums.sum() + tail)
        for j in 0..<valid { row[j] *= inverse }
        for j in valid..<width { row[j] = 0 }
    }
}
