/// Causal grouped-query attention over a packed ragged batch (Llama, Qwen, Mistral): NH query
/// heads share NKV key/value heads, query head h reading group h / (NH / NKV). Each row holds
/// [Q | K | V] = NH·D + 2·NKV·D values; the output (N, NH·D).
public enum GroupedAttention {
    public struct Shape: Sendable {
        public let heads: Int, keyValueHeads: Int, headSize: Int
        public init(heads: Int, keyValueHeads: Int, headSize: Int) {
            (self.heads, self.keyValueHeads, self.headSize) = (heads, keyValueHeads, headSize)
        }
        var queryWidth: Int { heads * headSize }
        var keyWidth: Int { keyValueHeads * headSize }
        var rowWidth: Int { queryWidth + 2 * keyWidth }
        var group: Int { heads / keyValueHeads }
    }

    /// out (N, NH·D) from qkv (N, W); probs (Σ_b NH·T_b²) saved for the backward pass.
    public static func forward(out: UnsafeMutablePointer<Float>, probs: UnsafeMutablePointer<Float>, qkv: UnsafePointer<Float>,
                               batch: PackedBatch, shape s: Shape) {
        let (W, Q, K, D) = (s.rowWidth, s.queryWidth, s.keyWidth, s.headSize)
        Parallel.forEach(batch.count * s.heads) { item in
            let (b, h) = (item / s.heads, item % s.heads)
            let row = qkv + batch.starts[b] * W
            let g = h / s.group
            Attention.attendHead(out: out + batch.starts[b] * Q + h * D, ldo: Q, probs: probs + batch.probsOffset(b, head: h, heads: s.heads),
                                 q: row + h * D, ldq: W, k: row + Q + g * D, ldk: W, v: row + Q + K + g * D, ldv: W,
                                 Tq: batch.lengths[b], Tk: batch.lengths[b], hs: D, causalOffset: 0)
        }
    }

    /// Accumulates dqkv (N, W) from dout (N, NH·D). The heads of one group run on one worker, one
    /// after another, because they all add into that group's dk and dv.
    public static func backward(dqkv: UnsafeMutablePointer<Float>, dout: UnsafePointer<Float>, qkv: UnsafePointer<Float>,
                                probs: UnsafePointer<Float>, batch: PackedBatch, shape s: Shape) {
        let (W, Q, K, D) = (s.rowWidth, s.queryWidth, s.keyWidth, s.headSize)
        Parallel.forEach(batch.count * s.keyValueHeads) { item in
            let (b, g) = (item / s.keyValueHeads, item % s.keyValueHeads)
            let start = batch.starts[b]
            let row = qkv + start * W
            for h in g * s.group..<(g + 1) * s.group {
                Attention.headBackward(dq: dqkv + start * W + h * D, dout: dout + start * Q + h * D, ldo: Q,
                                       q: row + h * D, k: row + Q + g * D, v: row + Q + K + g * D, ld: W,
                                       probs: probs + batch.probsOffset(b, head: h, heads: s.heads), T: batch.lengths[b], hs: D)
            }
        }
    }
}
