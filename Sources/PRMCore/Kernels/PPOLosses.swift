import Foundation

/// PPO's clipped surrogate objective for the policy (Schulman et al. 2017, "Proximal Policy
/// Optimization Algorithms", eq. 7), per token, as a loss to minimise:
///
///     loss = max(−A·ρ, −A·clip(ρ, 1 − ε, 1 + ε)),   ρ = exp(logp − oldLogp)
///
/// Where the clipped term is the larger one the loss is flat in logp (the update has already
/// moved the ratio past the trust region in the advantage's direction), so its gradient is 0.
public enum ClippedPolicyLoss {
    /// losses (N) from logp, oldLogp and advantages (N).
    public static func forward(losses: UnsafeMutablePointer<Float>, logp: UnsafePointer<Float>, oldLogp: UnsafePointer<Float>,
                               advantages: UnsafePointer<Float>, epsilon: Float, N: Int) {
        for n in 0..<N {
            let ratio = Foundation.exp(logp[n] - oldLogp[n])
            let a = advantages[n]
            losses[n] = max(-a * ratio, -a * min(max(ratio, 1 - epsilon), 1 + epsilon))
        }
    }

    /// dlogp += dlosses · (−A·ρ) where the unclipped term is the loss (dρ/dlogp = ρ), else nothing.
    public static func backward(dlogp: UnsafeMutablePointer<Float>, dlosses: UnsafePointer<Float>, logp: UnsafePointer<Float>,
                                oldLogp: UnsafePointer<Float>, advantages: UnsafePointer<Float>, epsilon: Float, N: Int) {
        for n in 0..<N {
            let ratio = Foundation.exp(logp[n] - oldLogp[n])
            let a = advantages[n]
            let clipped = -a * min(max(ratio, 1 - epsilon), 1 + epsilon)
            if -a * ratio >= clipped { dlogp[n] += dlosses[n] * (-a * ratio) }
        }
    }

    /// Whether a token's ratio left [1 − ε, 1 + ε] (the clip fraction PPO implementations log).
    @inline(__always)
    public static func isClipped(logp: Float, oldLogp: Float, epsilon: Float) -> Bool {
        abs(Foundation.exp(logp - oldLogp) - 1) > epsilon
    }
}

/// PPO's clipped value loss (OpenAI baselines' ppo2, TRL): the value may move at most ε from the
/// value the rollout saw, unless moving further lowers the error.
///
///     loss = ½ · max((v − R)², (clip(v, old − ε, old + ε) − R)²)
public enum ClippedValueLoss {
    /// losses (N) from values, oldValues and returns (N).
    public static func forward(losses: UnsafeMutablePointer<Float>, values: UnsafePointer<Float>, oldValues: UnsafePointer<Float>,
                               returns: UnsafePointer<Float>, epsilon: Float, N: Int) {
        for n in 0..<N {
            let v = values[n], r = returns[n]
            let clipped = min(max(v, oldValues[n] - epsilon), oldValues[n] + epsilon)
            losses[n] = 0.5 * max((v - r) * (v - r), (clipped - r) * (clipped - r))
        }
    }

    /// dvalues += dlosses · (v − R) where the unclipped error is the loss. Inside the clip range
    /// both errors are equal; outside it clip(v) is a constant, so the clipped error has no gradient.
    public static func backward(dvalues: UnsafeMutablePointer<Float>, dlosses: UnsafePointer<Float>, values: UnsafePointer<Float>,
                                oldValues: UnsafePointer<Float>, returns: UnsafePointer<Float>, epsilon: Float, N: Int) {
        for n in 0..<N {
            let v = values[n], r = returns[n]
            let clipped = min(max(v, oldValues[n] - epsilon), oldValues[n] + epsilon)
            if (v - r) * (v - r) >= (clipped - r) * (clipped - r) { dvalues[n] += dlosses[n] * (v - r) }
        }
    }
}
