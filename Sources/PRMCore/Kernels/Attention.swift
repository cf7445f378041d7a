/// Multi-head scaled-dot-product attention over a packed ragged batch.
///
/// Sequences are stored back to back (no padding rows): sequence b occupies rows
/// `batch.starts[b] ..< batch.starts[b] + batch.lengths[b]`, so a key-padding mask is implicit in
/// the lengths and no work is spent on padding. `causal` adds the autoregressive mask.
/// Each (sequence, head) pair is two small sgemms on strided views of the packed QKV rows,
/// spread over the cores with sgemm single-threaded inside.
public enum Attention {
    /// out (N, C) from qkv (N, 3C) = [Q | K | V]; probs (Σ_b NH·T_b²) saved for the backward pass.
    public static func forward(out: UnsafeMutablePointer<Float>, probs: UnsafeMutablePointer<Float>,
                               qkv: UnsafePointer<Float>, batch: PackedBatch, NH: Int, C: Int, causal: Bool) {
        let hs = C / NH
        Parallel.forEach(batch.count * NH) { item in
            let (b, h) = (item / NH, item % NH)
            let T = batch.lengths[b]
            let q = qkv + batch.starts[b] * 3 * C + h * hs
            attendHead(out: out + batch.starts[b] * C + h * hs, ldo: C,
                       probs: probs + batch.probsOffset(b, head: h, heads: NH),
                       q: q, ldq: 3 * C, k: q + C, ldk: 3 * C, v: q + 2 * C, ldv: 3 * C,
                       Tq: T, Tk: T, hs: hs, causalOffset: causal ? 0 : nil)
        }
    }

    /// Inference: out (N, C) from qkv (N, 3C), keeping no probabilities. Each worker scores one
    /// (sequence, head) at a time in its own slice of `scratch` (`inferenceScratch(batch:)` floats).
    public static func infer(out: UnsafeMutablePointer<Float>, scratch: UnsafeMutablePointer<Float>,
                             qkv: UnsafePointer<Float>, batch: PackedBatch, NH: Int, C: Int, causal: Bool) {
        let hs = C / NH
        let block = batch.maxLength * batch.maxLength
        Parallel.forEachItem(batch.count * NH) { worker, item in
            let (b, h) = (item / NH, item % NH)
            let T = batch.lengths[b]
            let q = qkv + batch.starts[b] * 3 * C + h * hs
            attendHead(out: out + batch.starts[b] * C + h * hs, ldo: C, probs: scratch + worker * block,
                       q: q, ldq: 3 * C, k: q + C, ldk: 3 * C, v: q + 2 * C, ldv: 3 * C,
                       Tq: T, Tk: T, hs: hs, causalOffset: causal ? 0 : nil)
        }
    }

    /// Floats of scratch `infer` needs: one (T, T) block per worker for the longest sequence.
    public static func inferenceScratch(batch: PackedBatch) -> Int {
        Parallel.workers * batch.maxLength * batch.maxLength
    }

    /// Accumulates dqkv (N, 3C) from dout (N, C).
    public static func backward(dqkv: UnsafeMutablePointer<Float>, dout: UnsafePointer<Float>,
                                qkv: UnsafePointer<Float>, probs: UnsafePointer<Float>,
                                batch: PackedBatch, NH: Int, C: Int) {
        let hs = C / NH
        let scale = 1 / Float(hs).squareRoot()
        Parallel.forEach(batch.count * NH) { item in
            let (b, h) = (item / NH, item % NH)
            let T = batch.lengths[b]
            guard T > 0 else { return }
            let row = batch.starts[b]
            let q = qkv + row * 3 * C + h * hs, k = q + C, v = q + 2 * C
            let dq = dqkv + row * 3 * C + h * hs, dk = dq + C, dv = dq + 2 * C
            let dO = dout + row * C + h * hs
            let P = probs + batch.probsOffset(b, head: h, heads: NH)
            let dP = UnsafeMutablePointer<Float>.allocate(capacity: T * T)
            defer { dP.deallocate() }
            // dP = dO · Vᵀ ; dV += Pᵀ · dO
            BLAS.gemm(transB: true, m: T, n: T, k: hs, a: dO, lda: C, b: v, ldb: 3 * C, beta: 0, c: dP, ldc: T)
            BLAS.gemm(transA: true, m: T, n: hs, k: T, a: P, lda: T, b: dO, ldb: C, beta: 1, c: dv, ldc: 3 * C)
            // dS = P ⊙ (dP − ⟨dP, P⟩_row) · scale (softmax backward, with the score scale folded in)
            for i in 0..<T {
                let p = P + i * T, d = dP + i * T
                var dot: Float = 0
                for j in 0..<T { dot += p[j] * d[j] }
                for j in 0..<T { d[j] = p[j] * (d[j] - dot) * scale }
            }
            // dQ += dS · K ; dK += dSᵀ · Q
            BLAS.gemm(m: T, n: hs, k: T, a: dP, lda: T, b: k, ldb: 3 * C, beta: 1, c: dq, ldc: 3 * C)
            BLAS.gemm(transA: true, m: T, n: hs, k: T, a: dP, lda: T, b: q, ldb: 3 * C, beta: 1, c: dk, ldc: 3 * C)
        }
    }

    /// One head: out (Tq, hs) = softmax(q kᵀ / √hs, masked) · v, writing probs (Tq, Tk).
    /// With `causalOffset` o, query i sees keys 0 … o + i (o = number of cached keys before the queries).
    @inline(__always)
    public static func attendHead(out: UnsafeMutablePointer<Float>, ldo: Int, probs: UnsafeMutablePointer<Float>,
                                  q: UnsafePointer<Float>, ldq: Int, k: UnsafePointer<Float>, ldk: Int,
                                  v: UnsafePointer<Float>, ldv: Int, Tq: Int, Tk: Int, hs: Int, causalOffset: Int?) {
        guard Tq > 0, Tk > 0 else { return }
        let scale = 1 / Float(hs).squareRoot()
        BLAS.gemm(transB: true, m: Tq, n: Tk, k: hs, alpha: scale, a: q, lda: ldq, b: k, ldb: ldk, beta: 0, c: probs, ldc: Tk)
        for i in 0..<Tq {
            let valid = causalOffset.map { min(Tk, $0 + i + 1) } ?? Tk
            Softmax.normalizeRow(probs + i * Tk, valid: valid, width: Tk)
        }
        BLAS.gemm(m: Tq, n: hs, k: Tk, a: probs, lda: Tk, b: v, ldb: ldv, beta: 0, c: out, ldc: ldo)
    }

    /// Causal attention of T new tokens over P cached prefix keys plus their own keys, without
    /// copying the prefix: scores and outputs are computed in two parts (prefix, own). Lets many
    /// continuations share one cached prefix (KV cache). probs (T, P + T) is scratch.
    public static func attendHeadAfterPrefix(out: UnsafeMutablePointer<Float>, ldo: Int, probs: UnsafeMutablePointer<Float>,
                                             q: UnsafePointer<Float>, k: UnsafePointer<Float>, v: UnsafePointer<Float>, ld: Int,
                                             prefixK: UnsafePointer<Float>, prefixV: UnsafePointer<Float>, ldPrefix: Int,
                                             P: Int, T: Int, hs: Int) {
        guard T > 0 else { return }
        let scale = 1 / Float(hs).squareRoot()
        let width = P + T
        BLAS.gemm(transB: true, m: T, n: P, k: hs, alpha: scale, a: q, lda: ld, b: prefixK, ldb: ldPrefix, beta: 0, c: probs, ldc: width)
        BLAS.gemm(transB: true, m: T, n: T, k: hs, alpha: scale, a: q, lda: ld, b: k, ldb: ld, beta: 0, c: probs + P, ldc: width)
        for i in 0..<T { Softmax.normalizeRow(probs + i * width, valid: P + i + 1, width: width) }
        BLAS.gemm(m: T, n: hs, k: P, a: probs, lda: width, b: prefixV, ldb: ldPrefix, beta: 0, c: out, ldc: ldo)
        BLAS.gemm(m: T, n: hs, k: T, a: probs + P, lda: width, b: v, ldb: ld, beta: 1, c: out, ldc: ldo)
    }
}
