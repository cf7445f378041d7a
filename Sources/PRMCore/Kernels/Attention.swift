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
        Parallel.forEach(batch.count * NH) { item in
            let (b, h) = (item / NH, item % NH)
            let row = batch.starts[b]
            let q = qkv + row * 3 * C + h * hs
            headBackward(dq: dqkv + row * 3 * C + h * hs, dout: dout + row * C + h * hs, ldo: C, q: q, k: q + C, v: q + 2 * C, ld: 3 * C,
                         probs: probs + batch.probsOffset(b, head: h, heads: NH), T: batch.lengths[b], hs: hs)
        }
    }

    /// One head's self-attention backward over T rows (masked keys have probability 0): accumulates dq, and dk, dv at the
    /// same offsets from dq as k and v are from q (rows of stride `ld` in both), from dout (T, hs)
    /// and the forward pass's probs (T, T).
    public static func headBackward(dq: UnsafeMutablePointer<Float>, dout dO: UnsafePointer<Float>, ldo: Int,
                                    q: UnsafePointer<Float>, k: UnsafePointer<Float>, v: UnsafePointer<Float>, ld: Int,
                                    probs P: UnsafePointer<Float>, T: Int, hs: Int) {
        guard T > 0 else { return }
        let scale = 1 / Float(hs).squareRoot()
        let dk = dq + (k - q), dv = dq + (v - q)
        let dP = UnsafeMutablePointer<Float>.allocate(capacity: T * T)
        defer { dP.deallocate() }
        // dP = dO · Vᵀ ; dV += Pᵀ · dO
        BLAS.gemm(transB: true, m: T, n: T, k: hs, a: dO, lda: ldo, b: v, ldb: ld, beta: 0, c: dP, ldc: T)
        BLAS.gemm(transA: true, m: T, n: hs, k: T, a: P, lda: T, b: dO, ldb: ldo, beta: 1, c: dv, ldc: ld)
        // dS = P ⊙ (dP − ⟨dP, P⟩_row) · scale (softmax backward, with the score scale folded in)
        for i in 0..<T {
            let p = P + i * T, d = dP + i * T
            var dot: Float = 0
            for j in 0..<T { dot += p[j] * d[j] }
            for j in 0..<T { d[j] = p[j] * (d[j] - dot) * scale }
        }
        // dQ += dS · K ; dK += dSᵀ · Q
        BLAS.gemm(m: T, n: hs, k: T, a: dP, lda: T, b: k, ldb: ld, beta: 1, c: dq, ldc: ld)
        BLAS.gemm(transA: true, m: T, n: hs, k: T, a: dP, lda: T, b: q, ldb: ld, beta: 1, c: dk, ldc: ld)
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

    /// One decoding step of one head: a single query over P keys of a shared prefix (a prompt's
    /// cache, read by all its samples) and R keys of its own (the reply so far, the query's own
    /// token last). The query is the newest token, so it sees every key: no mask. probs (P + R) is scratch.
    ///
    /// Plain SIMD loops, not sgemm: each product is one row against a few hundred keys of one head,
    /// and a decoding step runs B × heads × layers of them (270 at batch 1 for SmolLM2), so the loops
    /// spare 1,080 library calls a token; end to end the two measured equal (bench/results/decode_profile.md).
    public static func attendHeadStep(out: UnsafeMutablePointer<Float>, probs: UnsafeMutablePointer<Float>, q: UnsafePointer<Float>,
                                      prefixK: UnsafePointer<Float>, prefixV: UnsafePointer<Float>, ldPrefix: Int, P: Int,
                                      ownK: UnsafePointer<Float>, ownV: UnsafePointer<Float>, ldOwn: Int, R: Int, hs: Int) {
        guard R > 0 else { return }
        let scale = 1 / Float(hs).squareRoot()
        for j in 0..<P { probs[j] = scale * dot(q, prefixK + j * ldPrefix, hs) }
        for j in 0..<R { probs[P + j] = scale * dot(q, ownK + j * ldOwn, hs) }
        Softmax.normalizeRow(probs, valid: P + R, width: P + R)
        out.update(repeating: 0, count: hs)
        accumulateWeightedRows(out, probs, prefixV, ld: ldPrefix, rows: P, width: hs)
        accumulateWeightedRows(out, probs + P, ownV, ld: ldOwn, rows: R, width: hs)
    }

    /// out (width) += Σ_j weights[j] · rows[j] (row j at rows + j·ld), four 16-lane blocks of out
    /// at a time (a 64-wide head at once), held in registers across all the rows. Adding each row
    /// into out in memory instead chained every row's adds through a store and its reload: at 8
    /// samples that made decoding attention a sixth of the step; one block at a time left each
    /// block's multiply-adds waiting on the one before.
    @inline(__always)
    static func accumulateWeightedRows(_ out: UnsafeMutablePointer<Float>, _ weights: UnsafePointer<Float>, _ rows: UnsafePointer<Float>,
                                       ld: Int, rows count: Int, width: Int) {
        var block = 0
        while block + 64 <= width {
            var (s0, s1, s2, s3) = (out.vec(block), out.vec(block + 16), out.vec(block + 32), out.vec(block + 48))
            for j in 0..<count {
                let (weight, row) = (Vec(repeating: weights[j]), rows + j * ld + block)
                s0 = s0.addingProduct(weight, row.vec(0))
                s1 = s1.addingProduct(weight, row.vec(16))
                s2 = s2.addingProduct(weight, row.vec(32))
                s3 = s3.addingProduct(weight, row.vec(48))
            }
            (out + block).setVec(0, s0)
            (out + block).setVec(16, s1)
            (out + block).setVec(32, s2)
            (out + block).setVec(48, s3)
            block += 64
        }
        while block + 16 <= width {
            var sum = out.vec(block)
            for j in 0..<count { sum = sum.addingProduct(Vec(repeating: weights[j]), rows.vec(j * ld + block)) }
            out.setVec(block, sum)
            block += 16
        }
        while block < width {
            var sum = out[block]
            for j in 0..<count { sum += weights[j] * rows[j * ld + block] }
            out[block] = sum
            block += 1
        }
    }
}
