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
