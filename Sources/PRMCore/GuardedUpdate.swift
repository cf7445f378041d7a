import Foundation

/// Why a run was stopped: several updates in a row had a non-finite loss or gradient norm.
public struct DivergedTraining: Error, CustomStringConvertible, Sendable {
    public let description: String
}

/// The optimizer update of every trainer (reward model, SFT, PPO): clip the gradients, then
/// step — unless the loss or the gradient norm is NaN or infinite. Such a step changes no
/// weight (its gradients are dropped) but still advances the step counter, so the schedule and
/// the data order stay those of a run without the bad batch. One bad batch is noise;
/// `maxConsecutiveSkips` in a row mean the weights or the data are broken and more steps cannot
/// help, so the run stops with an error that says what to change.
public final class GuardedUpdate {
    public static let maxConsecutiveSkips = 3
    public let optimizer: AdamW
    public let maxNorm: Float
    /// What the stop message tells the user to try ("Lower --lr or check the data").
    let advice: String
    /// Updates skipped so far in this process.
    public private(set) var skipped = 0
    private var consecutive = 0

    public init(optimizer: AdamW, maxNorm: Float, advice: String) {
        self.optimizer = optimizer
        self.maxNorm = maxNorm
        self.advice = advice
    }

    /// Clips and applies the accumulated gradients of one step whose loss was `loss`, or skips
    /// them; returns the gradient norm before clipping. `label` names the step in messages
    /// ("step 12", "iteration 3, minibatch 2"). The caller zeroes the gradients afterwards.
    @discardableResult
    public func apply(loss: Float, label: String) throws(DivergedTraining) -> Float {
        let norm = optimizer.clipGradients(maxNorm: maxNorm)
        guard loss.isFinite, norm.isFinite else {
            try skip(loss: loss, norm: norm, label: label)
            return norm
        }
        optimizer.update()
        consecutive = 0
        return norm
    }

    private func skip(loss: Float, norm: Float, label: String) throws(DivergedTraining) {
        optimizer.skipStep()
        skipped += 1
        consecutive += 1
        Log.warning("\(label): loss \(loss), gradient norm \(norm): not finite, update skipped (\(skipped) so far)")
        guard consecutive < Self.maxConsecutiveSkips else {
            throw DivergedTraining(description: "\(consecutive) updates in a row had a non-finite loss or gradient norm "
                                   + "(last at \(label): loss \(loss), gradient norm \(norm)); stopping. \(advice)")
        }
    }
}

extension Parameters {
    /// The first weight that is NaN or infinite, by name and index; nil when all are finite.
    /// Checked before any checkpoint is written: a file of non-finite weights is worse than none.
    public func firstNonFinite() -> (name: String, index: Int, value: Float)? {
        for entry in entries {
            let v = values.data + entry.offset
            if let bad = (0..<entry.count).first(where: { !v[$0].isFinite }) { return (entry.name, bad, v[bad]) }
        }
        return nil
    }
}
