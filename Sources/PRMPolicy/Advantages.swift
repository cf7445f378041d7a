import Foundation
import PRMCore

/// Generalised advantage estimation (Schulman et al. 2016, "High-Dimensional Continuous Control
/// Using Generalized Advantage Estimation", eq. 16) over one reply, a trajectory that ends with
/// its last token (the value after it is 0):
///
///     δ_t = r_t + γ·V_{t+1} − V_t,   A_t = δ_t + γλ·A_{t+1},   R_t = A_t + V_t (the value target)
public enum GAE {
    public static func compute(rewards: [Float], values: [Float], gamma: Float, lambda: Float) -> (advantages: [Float], returns: [Float]) {
        precondition(rewards.count == values.count, "one value per reward")
        var advantages = [Float](repeating: 0, count: rewards.count)
        var next: Float = 0, nextValue: Float = 0
        for t in stride(from: rewards.count - 1, through: 0, by: -1) {
            let delta = rewards[t] + gamma * nextValue - values[t]
            next = delta + gamma * lambda * next
            advantages[t] = next
            nextValue = values[t]
        }
        return (advantages, zip(advantages, values).map { $0 + $1 })
    }
}

/// Mean 0 and standard deviation 1 across a batch (advantages, scores): PPO's usual scaling, so
/// the step size does not depend on the reward's units.
public enum Whitening {
    /// (x − mean) / (std + 1e-8) over all values, in place; with `shiftMean` false the mean is
    /// added back (only the scale changes).
    public static func whiten(_ x: inout [Float], shiftMean: Bool = true) {
        guard x.count > 1 else { return }
        let n = Double(x.count)
        let mean = x.reduce(0.0) { $0 + Double($1) } / n
        let variance = x.reduce(0.0) { $0 + (Double($1) - mean) * (Double($1) - mean) } / n
        standardise(&x, mean: mean, variance: variance, shiftMean: shiftMean)
    }

    /// The same over the union of every rank's `x` (each rank holds its share and whitens it):
    /// the count and sum, then the squared deviations from their mean, are summed over the ranks.
    public static func whiten(_ x: inout [Float], over ranks: Ranks, shiftMean: Bool = true) throws {
        var sums = [Double(x.count), x.reduce(0.0) { $0 + Double($1) }]
        try ranks.sum(&sums)
        guard sums[0] > 1 else { return }
        let mean = sums[1] / sums[0]
        var squares = [x.reduce(0.0) { $0 + (Double($1) - mean) * (Double($1) - mean) }]
        try ranks.sum(&squares)
        standardise(&x, mean: mean, variance: squares[0] / sums[0], shiftMean: shiftMean)
    }

    private static func standardise(_ x: inout [Float], mean: Double, variance: Double, shiftMean: Bool) {
        let scale = 1 / (variance.squareRoot() + 1e-8)
        for i in x.indices { x[i] = Float((Double(x[i]) - mean) * scale + (shiftMean ? 0 : mean)) }
    }
}

/// The KL penalty's coefficient β: fixed, or adapted towards a target KL per reply as in Ziegler
/// et al. 2019 ("Fine-Tuning Language Models from Human Preferences", Sec. 2.2):
///
///     e = clip(KL / KL_target − 1, −0.2, 0.2),   β ← β · (1 + e · n / horizon)
///
/// with n the replies of the batch just measured.
public struct KLController: Codable, Sendable, Equatable {
    public private(set) var coefficient: Float
    public let target: Float?
    public let horizon: Float

    public init(coefficient: Float, target: Float?, horizon: Float) {
        self.coefficient = coefficient
        self.target = target
        self.horizon = horizon
    }

    public mutating func update(kl: Float, replies: Int) {
        guard let target, target > 0 else { return }
        let error = min(max(kl / target - 1, -0.2), 0.2)
        coefficient *= 1 + error * Float(replies) / horizon
    }
}
