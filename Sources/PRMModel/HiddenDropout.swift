import PRMCore

/// Inverted dropout on a backbone's hidden states at fixed sites (after the attention projection
/// and after the MLP of each layer, as in BERT and GPT-2). Masks come from `seed` afresh at every
/// forward pass, so a trainer that sets the seed per step gets reproducible, resumable runs, and a
/// finite-difference check sees the same mask on every evaluation.
public final class HiddenDropout {
    public var probability: Float = 0
    public var seed: UInt64 = 0
    private(set) var active = false
    private var rng = RandomSource(seed: 0)
    private let masks: [GrowableBuffer]
    private let dDense = GrowableBuffer()

    init(sites: Int) { masks = (0..<sites).map { _ in GrowableBuffer() } }

    /// Starts a forward pass: dropout applies only while training with a positive probability.
    func begin(training: Bool) {
        active = training && probability > 0
        rng = RandomSource(seed: seed)
    }

    /// x (count) ← dropout(x), in place, remembering the mask of `site`.
    func forward(_ x: UnsafeMutablePointer<Float>, site: Int, count: Int) {
        guard active else { return }
        Dropout.forward(out: x, mask: masks[site].ensure(count), inp: x, count: count, p: probability, rng: &rng)
    }

    /// The gradient before the dropout at `site`: d ⊙ mask, or d itself when dropout is off.
    /// The result is valid until the next call.
    func backward(_ d: UnsafeMutablePointer<Float>, site: Int, count: Int) -> UnsafeMutablePointer<Float> {
        guard active else { return d }
        let dense = dDense.zeroed(count)
        Dropout.backward(dinp: dense, dout: d, mask: masks[site].data, count: count)
        return dense
    }
}
