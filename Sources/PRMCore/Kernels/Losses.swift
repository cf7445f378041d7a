import Foundation

/// Token-level cross-entropy (language modelling, the PPO policy).
public enum CrossEntropy {
    /// losses (N) = −log softmax(logits)[target]; probs (N, V) cached.
    public static func forward(losses: UnsafeMutablePointer<Float>, probs: UnsafeMutablePointer<Float>,
                               logits: UnsafePointer<Float>, targets: UnsafePointer<Int32>, N: Int, V: Int) {
        Softmax.forward(out: probs, inp: logits, N: N, V: V)
        for n in 0..<N { losses[n] = -Foundation.log(max(probs[n * V + Int(targets[n])], Float.leastNormalMagnitude)) }
    }

    /// dlogits += dlosses[n] · (probs − onehot(target)).
    public static func backward(dlogits: UnsafeMutablePointer<Float>, dlosses: UnsafePointer<Float>,
                                probs: UnsafePointer<Float>, targets: UnsafePointer<Int32>, N: Int, V: Int) {
        Parallel.forRange(N, costPerItem: V) { rows in
            for n in rows {
                let p = probs + n * V, d = dlogits + n * V, g = dlosses[n]
                for v in 0..<V { d[v] += g * p[v] }
                d[Int(targets[n])] -= g
            }
        }
    }
}

/// The Bradley–Terry pair loss of a reward model: −log σ(r_chosen − r_rejected).
public enum PairLoss {
    /// losses (B) = softplus(−(chosen − rejected)), computed without overflow.
    public static func forward(losses: UnsafeMutablePointer<Float>, chosen: UnsafePointer<Float>,
                               rejected: UnsafePointer<Float>, B: Int) {
        for b in 0..<B { losses[b] = Logistic.softplus(-(chosen[b] - rejected[b])) }
    }

    /// dchosen −= dloss · σ(−margin); drejected += dloss · σ(−margin).
    public static func backward(dchosen: UnsafeMutablePointer<Float>, drejected: UnsafeMutablePointer<Float>,
                                dlosses: UnsafePointer<Float>, chosen: UnsafePointer<Float>,
                                rejected: UnsafePointer<Float>, B: Int) {
        for b in 0..<B {
            let g = dlosses[b] * Logistic.sigmoid(-(chosen[b] - rejected[b]))
            dchosen[b] -= g
            drejected[b] += g
        }
    }
}
