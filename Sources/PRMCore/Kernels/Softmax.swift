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
        let maxValue = maximum(row, valid)
        for j in 0..<valid { row[j] = VectorMath.exp(row[j] - maxValue) }
        let inverse = 1 / sum(row, valid)
        for j in 0..<valid { row[j] *= inverse }
        if valid < width { (row + valid).update(repeating: 0, count: width - valid) }
    }
}
