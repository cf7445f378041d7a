import PRMCore

/// A shared residual layer on the pooled state, so that what a user vector reads can combine
/// properties of a reply:
///   h ← h + W₂ · gelu(W₁ · h + b₁),   W₁ (M, C), b₁ (M), W₂ (C, M).
///
/// Why: with the linear head a user's reward is ⟨e_user, h⟩, so a user whose preference is a
/// weighted sum of what h carries is exactly representable, but one whose preference is an
/// interaction (longer is better unless the reply refuses) is not, however well h carries length
/// and refusal apart (issue 16: stylepref's conversational users stayed near chance with both in
/// h). The layer is the same for every user, learned from all users' comparisons; it adds
/// directions that are nonlinear in h for the user vectors to weigh. W₂ starts at zero, so a new
/// model starts exactly as one without the layer. Scoring, the cache, the service's `adapt` and
/// the probes all read the h after it, unchanged.
final class PooledInteractions {
    let width: Int
    let hiddenWidth: Int
    let inWeight: Parameters.Handle
    let inBias: Parameters.Handle
    let outWeight: Parameters.Handle
    private var parameters: Parameters?

    /// A forward pass's activations: kept for `backward` (training) or scratch (inference, which
    /// may run between a training forward and its backward, e.g. an evaluation).
    private final class Pass {
        let input = GrowableBuffer(), z = GrowableBuffer(), a = GrowableBuffer()
        var rows = 0
    }
    private let training = Pass(), inference = Pass()
    private let da = GrowableBuffer(), dz = GrowableBuffer()

    init(hiddenWidth: Int, width: Int, layout: inout Parameters.Layout) {
        self.width = width
        self.hiddenWidth = hiddenWidth
        inWeight = layout.add("pool.interaction_in_weight", [hiddenWidth, width], group: .head, decays: true)
        inBias = layout.add("pool.interaction_in_bias", [hiddenWidth], group: .head, decays: false)
        outWeight = layout.add("pool.interaction_out_weight", [width, hiddenWidth], group: .head, decays: true)
    }

    func bind(_ parameters: Parameters) { self.parameters = parameters }

    private var params: Parameters {
        guard let parameters else { preconditionFailure("PooledInteractions used before bind(_:)") }
        return parameters
    }

    /// W₁ with unit-norm rows in expectation, b₁ and W₂ zero: the layer starts as the identity.
    func initialize(rng: inout RandomSource) {
        let p = params, scale = 1 / Float(width).squareRoot()
        let w = p.value(inWeight)
        for i in 0..<(hiddenWidth * width) { w[i] = rng.nextNormal() * scale }
        p.value(inBias).update(repeating: 0, count: hiddenWidth)
        p.value(outWeight).update(repeating: 0, count: width * hiddenWidth)
    }

    /// h (B, C) ← h + W₂ · gelu(W₁ h + b₁), in place. With `training`, keeps what `backward` needs.
    func apply(to h: UnsafeMutablePointer<Float>, rows B: Int, training: Bool) {
        let pass = training ? self.training : inference
        let (C, M) = (width, hiddenWidth)
        let p = params
        let input = pass.input.ensure(B * C), z = pass.z.ensure(B * M), a = pass.a.ensure(B * M)
        input.update(from: h, count: B * C)
        Linear.forward(out: z, inp: input, weight: p.value(inWeight), bias: p.value(inBias), N: B, C: C, OC: M)
        GELU.forward(out: a, inp: z, count: B * M, form: .erf)
        // h += a · W₂ᵀ, accumulated in place (beta 1).
        BLAS.gemm(transB: true, m: B, n: C, k: M, a: a, lda: M, b: p.value(outWeight), ldb: M, beta: 1, c: h, ldc: C)
        pass.rows = B
    }

    /// Given dh (B, C) for the layer's output, accumulates its parameters' gradients and turns dh
    /// into the gradient for its input, in place (the residual path keeps dh itself).
    func backward(dh: UnsafeMutablePointer<Float>) {
        let pass = training
        let (C, M, B) = (width, hiddenWidth, pass.rows)
        let p = params
        let da = self.da.zeroed(B * M)
        Linear.backward(dinp: da, dweight: p.grad(outWeight), dbias: nil, dout: dh, inp: pass.a.data,
                        weight: p.value(outWeight), N: B, C: M, OC: C)
        let dz = self.dz.zeroed(B * M)
        GELU.backward(dinp: dz, dout: da, inp: pass.z.data, count: B * M, form: .erf)
        Linear.backward(dinp: dh, dweight: p.grad(inWeight), dbias: p.grad(inBias), dout: dz, inp: pass.input.data,
                        weight: p.value(inWeight), N: B, C: C, OC: M)
    }
}
