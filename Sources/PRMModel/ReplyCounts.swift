import PRMCore

/// The part of the pooled state h that says how much of something a reply has: K learned
/// log-counts over the reply's rows (`LogCountPool`), mapped into h's width by a learned
/// projection and added to the mean (or last-token) state:
///   h = pool(hidden) + V · c,   c_k = log(1 + Σ_{t ∈ reply} softplus(w_k · hidden_t + a_k)).
///
/// Why: a mean over rows is the same for a reply and that reply said twice, so a user who
/// prefers longer replies (or more questions, more list items) has nothing linear in h to read
/// (issue 16's probe: log word count is only partly recoverable from the mean). Which tokens
/// count is learned from the preferences, never chosen by hand. At initialisation every detector
/// fires a little on every token, so c starts as log-length and training refines what it counts.
/// With V in h's own width the user model, the head, the cache and the service are unchanged.
final class ReplyCounts {
    let counts: Int
    let width: Int
    /// Detectors w (K, C) and a (K); projection V stored (K, C): h += c · V.
    let weight: Parameters.Handle
    let bias: Parameters.Handle
    let projection: Parameters.Handle
    private var parameters: Parameters?

    /// A forward pass's activations: kept for `backward` (training) or scratch (inference, which
    /// may run between a training forward and its backward, e.g. an evaluation).
    private final class Pass {
        let z = GrowableBuffer(), sums = GrowableBuffer(), c = GrowableBuffer()
    }
    private let training = Pass(), inference = Pass()
    /// What the last training pass counted over, for `backward`.
    private var trainedSpans: [Range<Int>] = []
    private var trainedHidden: UnsafePointer<Float>?
    private var trainedRows = 0
    private let dz = GrowableBuffer(), dc = GrowableBuffer()

    init(counts: Int, width: Int, layout: inout Parameters.Layout) {
        self.counts = counts
        self.width = width
        weight = layout.add("pool.count_weight", [counts, width], group: .head, decays: false)
        bias = layout.add("pool.count_bias", [counts], group: .head, decays: false)
        projection = layout.add("pool.count_projection", [counts, width], group: .head, decays: false)
    }

    func bind(_ parameters: Parameters) { self.parameters = parameters }

    private var params: Parameters {
        guard let parameters else { preconditionFailure("ReplyCounts used before bind(_:)") }
        return parameters
    }

    /// Detectors and projection with unit-norm rows in expectation. Biases zero: each detector
    /// starts near softplus(0) on every token, so c starts close to log(reply length). The last
    /// `silent` detectors start at bias `silentBias` instead, near zero on every token: counting a
    /// rare token (a question mark) needs a detector that is quiet elsewhere, and an AdamW step of
    /// ~lr a step cannot take a bias from 0 to there within a run of a few hundred steps.
    func initialize(rng: inout RandomSource, silent: Int = 0) {
        let p = params, scale = 1 / Float(width).squareRoot()
        for handle in [weight, projection] {
            let w = p.value(handle)
            for i in 0..<(counts * width) { w[i] = rng.nextNormal() * scale }
        }
        let b = p.value(bias)
        for k in 0..<counts { b[k] = k < counts - silent ? 0 : Self.silentBias }
    }

    /// V = 0: the counts add nothing to h until training moves V, so a model that starts as
    /// another reward model (`ClassificationHead`) scores as that one did; w and a learn once V has.
    func mute() {
        params.value(projection).update(repeating: 0, count: counts * width)
    }

    /// softplus(−4) ≈ 0.018 a token: a silent detector adds about log(1.5) over a 30-token reply.
    static let silentBias: Float = -4

    /// h (B, C) += V · c for hidden (N, C), counting each sequence's `spans` row range.
    /// With `training`, keeps what `backward` needs (hidden must stay valid until then).
    func add(to h: UnsafeMutablePointer<Float>, hidden: UnsafePointer<Float>, rows: Int, spans: [Range<Int>], training: Bool) {
        let pass = training ? self.training : inference
        let (K, C, B) = (counts, width, spans.count)
        let p = params
        let c = pass.c.ensure(B * K)
        LogCountPool.forward(out: c, z: pass.z.ensure(rows * K), sums: pass.sums.ensure(B * K), inp: hidden,
                             weight: p.value(weight), bias: p.value(bias), spans: spans, N: rows, C: C, K: K)
        // h += c · V, accumulated in place (beta 1).
        BLAS.gemm(m: B, n: C, k: K, a: c, lda: K, b: p.value(projection), ldb: C, beta: 1, c: h, ldc: C)
        if training { (trainedSpans, trainedHidden, trainedRows) = (spans, hidden, rows) }
    }

    /// Accumulates the detectors' and projection's gradients from dh (B, C) of the last training
    /// `add`, and d hidden into `dhidden` (N, C) when given.
    func backward(dh: UnsafePointer<Float>, dhidden: UnsafeMutablePointer<Float>?) {
        let pass = training
        guard let hidden = trainedHidden else { preconditionFailure("ReplyCounts.backward without a training pass") }
        let (K, C, B, N) = (counts, width, trainedSpans.count, trainedRows)
        let p = params
        let dc = self.dc.zeroed(B * K)
        Linear.backward(dinp: dc, dweight: p.grad(projection), dbias: nil, dout: dh, inp: pass.c.data,
                        weight: p.value(projection), N: B, C: K, OC: C, layout: .inOut)
        LogCountPool.backward(dinp: dhidden, dweight: p.grad(weight), dbias: p.grad(bias), dz: dz.ensure(N * K), dout: dc,
                              z: pass.z.data, sums: pass.sums.data, inp: hidden, weight: p.value(weight),
                              spans: trainedSpans, N: N, C: C, K: K)
    }
}
