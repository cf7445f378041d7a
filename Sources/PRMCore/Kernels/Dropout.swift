import Foundation

/// Inverted dropout: kept activations are scaled by 1/(1−p) at training time so inference is a no-op.
public enum Dropout {
    /// out = inp ⊙ mask, mask ∈ {0, 1/(1−p)} drawn from `rng`; mask (count) cached.
    public static func forward(out: UnsafeMutablePointer<Float>, mask: UnsafeMutablePointer<Float>,
                               inp: UnsafePointer<Float>, count: Int, p: Float, rng: inout RandomSource) {
        let keep = 1 / (1 - p)
        for i in 0..<count {
            mask[i] = rng.nextUniform() < p ? 0 : keep
            out[i] = inp[i] * mask[i]
        }
    }

    /// dinp += dout ⊙ mask.
    public static func backward(dinp: UnsafeMutablePointer<Float>, dout: UnsafePointer<Float>,
                                mask: UnsafePointer<Float>, count: Int) {
        Parallel.forRange(count) { range in
            for i in range { dinp[i] += dout[i] * mask[i] }
        }
    }
}
