/// Central finite differences against analytic gradients, shared by every gradient test.
///
/// The probed scalar is whatever `loss()` returns after a forward pass over the current values
/// (tests use L = Σ w ⊙ f(x) with fixed random w, so dL/df = w is the upstream gradient handed
/// to the backward pass). Differences are taken in Float32, the kernels' precision, with a step
/// large enough to stay above rounding noise, and compared with a relative tolerance plus an
/// absolute floor (some true gradients are exactly zero and the numeric ones are noise).
public enum FiniteDifferences {
    public struct Disagreement: CustomStringConvertible {
        public let index: Int
        public let analytic: Float
        public let numeric: Float
        public var description: String { "[\(index)]: analytic \(analytic) vs numeric \(numeric)" }
    }

    /// What Float32 rounding alone does to a central difference at the current point. Each probe
    /// moves one value by τ = step/100, far too little to change L measurably, and removes the
    /// first-order change τ·g: what is left is rounding. A central difference carries about √2
    /// times that over 2·step; three times the worst probe is returned.
    public static func noise(values: UnsafeMutablePointer<Float>, analytic: UnsafePointer<Float>, indices: [Int],
                             step: Float, loss: () -> Double) -> Float {
        let base = loss()
        var worst = 0.0
        for i in indices {
            let saved = values[i]
            values[i] = saved + step / 100
            let tau = Double(values[i] - saved)  // the step as stored
            let moved = loss()
            values[i] = saved
            worst = max(worst, abs(moved - base - tau * Double(analytic[i])))
        }
        return Float(3 * 2.0.squareRoot() * worst / (2 * Double(step)))
    }

    /// The absolute floor for one tensor: a thousandth of the tensor's own largest analytic
    /// gradient, so a small tensor is judged on its own scale and not hidden under the model's
    /// largest gradient; never below `noiseFloor` (`noise(...)`), so a tensor whose true gradient
    /// is exactly zero (softmax ignores attention's key bias) does not fail on rounding.
    public static func floor(analytic: UnsafePointer<Float>, count: Int, noiseFloor: Float) -> Float {
        var largest: Float = 0
        for i in 0..<count { largest = max(largest, abs(analytic[i])) }
        return max(1e-3 * largest, noiseFloor)
    }

    /// `samples` distinct indices of a tensor of `count` entries (all of them when it is small),
    /// drawn from a fixed-seed generator.
    public static func sample(_ count: Int, _ samples: Int, seed: inout UInt64) -> [Int] {
        guard count > samples else { return Array(0..<count) }
        var picked = Set<Int>()
        while picked.count < samples {
            seed = seed &* 6364136223846793005 &+ 1442695040888963407
            picked.insert(Int((seed >> 33) % UInt64(count)))
        }
        return picked.sorted()
    }

    /// The entries among `indices` where analytic and numeric gradients disagree.
    public static func disagreements(values: UnsafeMutablePointer<Float>, analytic: UnsafePointer<Float>, indices: [Int],
                                     step: Float, relativeTolerance: Float, absoluteFloor: Float,
                                     loss: () -> Double) -> [Disagreement] {
        var result: [Disagreement] = []
        for i in indices {
            let saved = values[i]
            values[i] = saved + step
            let plus = loss()
            values[i] = saved - step
            let minus = loss()
            values[i] = saved
            let numeric = Float((plus - minus) / Double(2 * step))
            let allowed = relativeTolerance * max(abs(numeric), abs(analytic[i])) + absoluteFloor
            if abs(numeric - analytic[i]) > allowed { result.append(Disagreement(index: i, analytic: analytic[i], numeric: numeric)) }
        }
        return result
    }
}
