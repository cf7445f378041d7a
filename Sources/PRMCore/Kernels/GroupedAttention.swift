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

    /// Keys and values cached before a batch (a prompt's, or the tokens decoded so far): `count`
    /// rows of NKV·D each, which every sequence of the batch follows.
    public struct Prefix {
        public let keys: UnsafePointer<Float>, values: UnsafePointer<Float>, count: Int
        public init(keys: UnsafePointer<Float>, values: UnsafePointer<Float>, count: Int) {
            (self.keys, self.values, self.count) = (keys, values, count)
        }
    }

    /// Inference: out (N, NH·D) from qkv (N, W), keeping no probabilities; each sequence follows
    /// `prefix`'s rows when there is one. Each worker scores one (sequence, head) at a time in its
    /// own slice of `scratch` (`inferenceScratch` floats). Without a prefix a head is computed as
    /// `forward` computes it, so inference equals the training pass exactly.
    public static func infer(out: UnsafeMutablePointer<Float>, scratch: UnsafeMutablePointer<Float>, qkv: UnsafePointer<Float>,
                             batch: PackedBatch, shape s: Shape, prefix: Prefix?) {
        let (W, Q, K, D) = (s.rowWidth, s.queryWidth, s.keyWidth, s.headSize)
        let P = prefix?.count ?? 0
        let block = batch.maxLength * (P + batch.maxLength)
        Parallel.forEachItem(batch.count * s.heads) { worker, item in
            let (b, h) = (item / s.heads, item % s.heads)
            let (row, T) = (qkv + batch.starts[b] * W, batch.lengths[b])
            let g = h / s.group
            let (o, probs) = (out + batch.starts[b] * Q + h * D, scratch + worker * block)
            if let prefix, P > 0 {
                Attention.attendHeadAfterPrefix(out: o, ldo: Q, probs: probs, q: row + h * D, k: row + Q + g * D, v: row + Q + K + g * D,
                                                ld: W, prefixK: prefix.keys + g * D, prefixV: prefix.values + g * D, ldPrefix: K,
                                                P: P, T: T, hs: D)
            } else {
                Attention.attendHead(out: o, ldo: Q, probs: probs, q: row + h * D, ldq: W, k: row + Q + g * D, ldk: W,
                                     v: row + Q + K + g * D, ldv: W, Tq: T, Tk: T, hs: D, causalOffset: 0)
            }
        }
    }

    /// Floats of scratch `infer` needs: one (T, P + T) block per worker for the longest sequence.
    public static func inferenceScratch(batch: PackedBatch, prefixCount P: Int) -> Int {
        Parallel.workers * batch.maxLength * (P + batch.maxLength)
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
