import Foundation
import PRMCore

/// One reply as PPO trains on it: the sequence (user, prompt + reply, scored on the reply's
/// tokens) and, per reply token, what the rollout measured and what GAE made of it.
public struct PPOSample: Sendable {
    public var sequence: PolicySequence
    public var oldLogp: [Float]
    public var oldValues: [Float]
    public var advantages: [Float]
    public var returns: [Float]

    public init(sequence: PolicySequence, oldLogp: [Float], oldValues: [Float], advantages: [Float], returns: [Float]) {
        self.sequence = sequence
        self.oldLogp = oldLogp
        self.oldValues = oldValues
        self.advantages = advantages
        self.returns = returns
    }
}

/// What one pass of the objective measured (token means).
public struct PPOLossStatistics: Sendable {
    public var policyLoss: Double = 0
    public var valueLoss: Double = 0
    /// Share of tokens whose probability ratio left [1 − ε, 1 + ε].
    public var clipFraction: Double = 0
    public var tokens = 0
}

/// PPO's loss over a minibatch of replies, averaged over their tokens:
///
///     L = mean_t L^clip_t + c_v · mean_t L^V_t
///
/// with L^clip the clipped policy loss on log π(y_t | …) (= −cross-entropy of the token) and L^V
/// the clipped value loss (PRMCore's ClippedPolicyLoss / ClippedValueLoss). The policy's forward
/// pass gives the logits and values of every reply token; backward runs through the
/// cross-entropy kernel (d logp = −d CE) and the value head into the whole policy.
public final class PPOObjective {
    public let policy: Policy
    public var clipRange: Float
    public var valueClipRange: Float
    public var valueCoefficient: Float
    private let probs = GrowableBuffer(), dlogits = GrowableBuffer()

    public init(policy: Policy, clipRange: Float, valueClipRange: Float, valueCoefficient: Float) {
        self.policy = policy
        self.clipRange = clipRange
        self.valueClipRange = valueClipRange
        self.valueCoefficient = valueCoefficient
    }

    /// The loss of `samples`; with `backward`, gradients of L accumulate into the policy's. The
    /// gradients are of the losses summed over the samples' tokens divided by `meanOver` (default:
    /// their own token count; a rank's share of a minibatch divides by the whole minibatch's, so
    /// the ranks' gradients sum to the minibatch's mean). The statistics are these samples' means.
    @discardableResult
    public func evaluate(_ samples: [PPOSample], backward: Bool, meanOver tokens: Int? = nil) -> PPOLossStatistics {
        let outputs = policy.forward(samples.map(\.sequence), training: backward)
        let (R, V) = (outputs.rows, policy.vocabularySize)
        var statistics = PPOLossStatistics()
        guard R > 0 else { return statistics }
        let targets = samples.flatMap { sample in sample.sequence.scored.map { sample.sequence.tokens[$0] } }
        let oldLogp = samples.flatMap(\.oldLogp), oldValues = samples.flatMap(\.oldValues)
        let advantages = samples.flatMap(\.advantages), returns = samples.flatMap(\.returns)
        precondition([oldLogp.count, oldValues.count, advantages.count, returns.count].allSatisfy { $0 == R }, "one entry per reply token")
        let p = probs.ensure(R * V)
        var crossEntropy = [Float](repeating: 0, count: R)
        CrossEntropy.forward(losses: &crossEntropy, probs: p, logits: outputs.logits, targets: targets, N: R, V: V)
        let logp = crossEntropy.map { -$0 }
        var policyLosses = [Float](repeating: 0, count: R), valueLosses = [Float](repeating: 0, count: R)
        ClippedPolicyLoss.forward(losses: &policyLosses, logp: logp, oldLogp: oldLogp, advantages: advantages, epsilon: clipRange, N: R)
        ClippedValueLoss.forward(losses: &valueLosses, values: outputs.values, oldValues: oldValues, returns: returns,
                                 epsilon: valueClipRange, N: R)
        statistics.policyLoss = policyLosses.reduce(0) { $0 + Double($1) } / Double(R)
        statistics.valueLoss = valueLosses.reduce(0) { $0 + Double($1) } / Double(R)
        statistics.clipFraction = Double((0..<R).filter { ClippedPolicyLoss.isClipped(logp: logp[$0], oldLogp: oldLogp[$0], epsilon: clipRange) }.count) / Double(R)
        statistics.tokens = R
        guard backward else { return statistics }
        var dlogp = [Float](repeating: 0, count: R), dvalues = [Float](repeating: 0, count: R)
        let normaliser = Float(tokens ?? R)
        let policyWeight = [Float](repeating: 1 / normaliser, count: R)
        let valueWeight = [Float](repeating: valueCoefficient / normaliser, count: R)
        ClippedPolicyLoss.backward(dlogp: &dlogp, dlosses: policyWeight, logp: logp, oldLogp: oldLogp, advantages: advantages,
                                   epsilon: clipRange, N: R)
        ClippedValueLoss.backward(dvalues: &dvalues, dlosses: valueWeight, values: outputs.values, oldValues: oldValues, returns: returns,
                                  epsilon: valueClipRange, N: R)
        let d = dlogits.zeroed(R * V)
        CrossEntropy.backward(dlogits: d, dlosses: dlogp.map { -$0 }, probs: p, targets: targets, N: R, V: V)
        policy.backward(dlogits: d, dvalues: dvalues)
        return statistics
    }

    /// Per sequence, the log-probability of each scored token and the value before it, under
    /// `model` (the policy or the frozen reference), without dropout; and the mean entropy of the
    /// model's next-token distributions over all scored tokens.
    public static func measure(_ model: Policy, _ sequences: [PolicySequence], batchSize: Int = 16,
                               scratch: GrowableBuffer) -> (logp: [[Float]], values: [[Float]], entropy: Double) {
        var logp: [[Float]] = [], values: [[Float]] = []
        var entropy = 0.0, rows = 0
        let V = model.vocabularySize
        for start in stride(from: 0, to: sequences.count, by: batchSize) {
            let batch = Array(sequences[start..<min(start + batchSize, sequences.count)])
            let outputs = model.forward(batch, training: false)
            let R = outputs.rows
            let targets = batch.flatMap { sequence in sequence.scored.map { sequence.tokens[$0] } }
            let p = scratch.ensure(max(R, 1) * V)
            var crossEntropy = [Float](repeating: 0, count: R)
            CrossEntropy.forward(losses: &crossEntropy, probs: p, logits: outputs.logits, targets: targets, N: R, V: V)
            for r in 0..<R {
                let row = p + r * V
                var h = 0.0
                for v in 0..<V where row[v] > 0 { h -= Double(row[v]) * Foundation.log(Double(row[v])) }
                entropy += h
            }
            rows += R
            var offset = 0
            for sequence in batch {
                let n = sequence.scored.count
                logp.append(crossEntropy[offset..<offset + n].map { -$0 })
                values.append(Array(UnsafeBufferPointer(start: outputs.values + offset, count: n)))
                offset += n
            }
        }
        return (logp, values, entropy / Double(max(rows, 1)))
    }
}
