import Foundation

/// What can go wrong configuring or restoring the optimizer; each case names what was expected.
public enum OptimizerError: Error, Equatable, CustomStringConvertible, LocalizedError {
    /// Restored moments were saved for a model with a different number of parameters.
    case stateSizeMismatch(expected: Int, got: Int)
    /// A restored step count below zero.
    case invalidStep(Int)
    /// A restored moment that no optimizer could have produced (NaN, ±inf, or a negative `v`).
    case invalidState(buffer: String, index: Int, value: Float)
    /// A learning-rate schedule field out of range; `key` is its `config.json` key.
    case invalidSchedule(key: String, value: String, expected: String)

    public var description: String {
        switch self {
        case let .stateSizeMismatch(expected, got):
            return "AdamW state holds \(got) values per moment, but the model has \(expected) parameters"
        case let .invalidStep(step):
            return "AdamW step count \(step) is negative"
        case let .invalidState(buffer, index, value):
            return "AdamW moment \(buffer)[\(index)] = \(value) is not a valid optimizer state"
        case let .invalidSchedule(key, value, expected):
            return "learning-rate schedule: \(key) = \(value), expected \(expected)"
        }
    }

    public var errorDescription: String? { description }
}

/// AdamW with decoupled weight decay (Loshchilov & Hutter, "Decoupled Weight Decay
/// Regularization", Algorithm 2), in `torch.optim.AdamW`'s form: for each float, at step t = step + 1,
///
///     p ← p − lr·wd·p                       (only entries with `decays`)
///     m ← β1·m + (1 − β1)·g
///     v ← β2·v + (1 − β2)·g²
///     p ← p − lr · m̂ / (√v̂ + ε),   m̂ = m / (1 − β1ᵗ),  v̂ = v / (1 − β2ᵗ)
///
/// with lr the group's schedule at `step`. The moments `m` and `v` share `parameters.values`'s
/// layout (llm.c's habit), so the update is one flat loop over the trainable floats, split
/// evenly across the cores, and a checkpoint saves them as two buffers.
///
/// Order in a training step (nanoGPT): micro-steps accumulate into `parameters.grads` →
/// `clipGradients(maxNorm:)` → `update()` → `parameters.zeroGrad()`. `update()` does not zero
/// the gradients: the caller does, which is what lets it accumulate over micro-steps.
public final class AdamW {
    public struct GroupSettings: Codable, Sendable, Equatable {
        public var schedule: LearningRateSchedule
        /// A frozen group's parameters, gradients and moments are never touched, and its
        /// gradients do not count towards the clipping norm.
        public var frozen: Bool

        public init(schedule: LearningRateSchedule, frozen: Bool = false) {
            self.schedule = schedule
            self.frozen = frozen
        }

        enum CodingKeys: String, CodingKey { case schedule, frozen }

        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            schedule = try c.decode(LearningRateSchedule.self, forKey: .schedule)
            frozen = try c.decodeIfPresent(Bool.self, forKey: .frozen) ?? false
        }
    }

    // torch.optim.AdamW's defaults (nanoGPT trains with weight decay 0.1). Changing them between
    // updates is allowed; a checkpoint should store them with the training settings.
    public var beta1: Float = 0.9
    public var beta2: Float = 0.999
    public var eps: Float = 1e-8
    public var weightDecay: Float = 0.01

    /// Number of updates applied; the next update uses bias corrections for t = step + 1 and
    /// each group's learning rate at `step`.
    public private(set) var step: Int = 0
    /// First moments, (P) in `parameters.values`'s layout.
    public let m: Tensor
    /// Second moments, (P) in `parameters.values`'s layout.
    public let v: Tensor

    public let parameters: Parameters
    public let groups: [Parameters.Group: GroupSettings]

    /// A maximal stretch of the flat buffer whose entries share a group and a decay flag.
    /// `start` places it in the index space of trainable floats only (frozen runs left out), so
    /// the work splits evenly across cores however the frozen and trainable parts interleave.
    struct Run {
        let offset: Int
        let start: Int
        let count: Int
        let group: Parameters.Group
        let decays: Bool
    }

    /// Trainable runs in buffer order; `start`s are contiguous from 0 to `trainableCount`.
    let runs: [Run]
    /// Number of floats in non-frozen groups.
    public let trainableCount: Int

    /// `groups` must give settings for every group that has parameters (a missing group is a
    /// programming error, not something to guess about: freezing it silently would hide a bug).
    public init(parameters: Parameters, groups: [Parameters.Group: GroupSettings]) {
        self.parameters = parameters
        self.groups = groups
        m = Tensor(shape: [parameters.count])
        v = Tensor(shape: [parameters.count])

        var runs: [Run] = []
        var start = 0
        for e in parameters.entries where e.count > 0 {
            guard let settings = groups[e.group] else {
                preconditionFailure("AdamW: no settings for group \(e.group) (parameter \(e.name))")
            }
            if settings.frozen { continue }
            if let last = runs.last, last.group == e.group, last.decays == e.decays,
               last.offset + last.count == e.offset {
                runs[runs.count - 1] = Run(offset: last.offset, start: last.start, count: last.count + e.count,
                                           group: e.group, decays: e.decays)
            } else {
                runs.append(Run(offset: e.offset, start: start, count: e.count, group: e.group, decays: e.decays))
            }
            start += e.count
        }
        self.runs = runs
        trainableCount = start
    }

    /// The learning rate the next `update()` uses for `group` (0 for a frozen or absent group).
    public func learningRate(_ group: Parameters.Group) -> Float {
        guard let settings = groups[group], !settings.frozen else { return 0 }
        return settings.schedule.rate(at: step)
    }

    /// Calls `body(run, offset, count)` for each piece of a trainable run inside `range`
    /// (an interval of the trainable index space); `offset` is into the flat buffers.
    @inline(__always)
    func forEachSegment(_ range: Range<Int>, _ body: (Run, Int, Int) -> Void) {
        for run in runs {
            if run.start >= range.upperBound { break }
            let lo = max(range.lowerBound, run.start)
            let hi = min(range.upperBound, run.start + run.count)
            if lo < hi { body(run, run.offset + (lo - run.start), hi - lo) }
        }
    }

    // MARK: - Gradient norm and clipping

    /// Global L2 norm of the gradients of the non-frozen groups, accumulated in Double
    /// (per-core partials summed in chunk order, so the result is deterministic).
    public func gradientNorm() -> Float {
        Float(sumOfSquaredGradients().squareRoot())
    }

    func sumOfSquaredGradients() -> Double {
        let chunks = Parallel.chunkCount(trainableCount, costPerItem: 2)
        let partials = UnsafeMutablePointer<Double>.allocate(capacity: chunks)
        partials.initialize(repeating: 0, count: chunks)
        defer { partials.deallocate() }
        let g = UnsafePointer(parameters.grads.data)
        Parallel.forChunks(trainableCount, costPerItem: 2) { chunk, range in
            var s = 0.0
            forEachSegment(range) { _, offset, count in s += AdamW.sumOfSquares(g + offset, count) }
            partials[chunk] = s
        }
        var total = 0.0
        for i in 0..<chunks { total += partials[i] }
        return total
    }

    /// Σ x², 8 lanes of Double at a time.
    static func sumOfSquares(_ x: UnsafePointer<Float>, _ n: Int) -> Double {
        var acc = SIMD8<Double>()
        var i = 0
        while i + 8 <= n {
            let d = SIMD8<Double>(UnsafeRawPointer(x + i).loadUnaligned(as: SIMD8<Float>.self))
            acc += d * d
            i += 8
        }
        var s = acc.sum()
        while i < n {
            let d = Double(x[i])
            s += d * d
            i += 1
        }
        return s
    }

    /// Scales the non-frozen gradients by maxNorm / norm when their global norm exceeds
    /// `maxNorm` (`torch.nn.utils.clip_grad_norm_`, without its +1e-6 in the denominator), and
    /// returns the norm before clipping. Gradients are left as they are when the norm is within
    /// bounds, when `maxNorm` is not positive (nanoGPT's `grad_clip = 0.0`: clipping off), and
    /// when the norm is not finite: scaling would only spread the NaN, so the caller should
    /// check the returned norm and skip the update.
    @discardableResult
    public func clipGradients(maxNorm: Float) -> Float {
        let norm = sumOfSquaredGradients().squareRoot()
        guard norm.isFinite, maxNorm > 0, norm > Double(maxNorm) else { return Float(norm) }
        let scale = Float(Double(maxNorm) / norm)
        let g = parameters.grads.data
        Parallel.forRange(trainableCount) { range in
            forEachSegment(range) { _, offset, count in
                let x = g + offset
                VectorMath.map(count, { i in x.setVec(i, x.vec(i) * scale) }, { i in x[i] *= scale })
            }
        }
        return Float(norm)
    }

    // MARK: - Update

    /// The per-update constants shared by every float of one run.
    struct StepConstants {
        let beta1: Float, oneMinusBeta1: Float
        let beta2: Float, oneMinusBeta2: Float
        /// 1 − lr·wd for decaying entries, 1 otherwise.
        let decay: Float
        /// lr / (1 − β1ᵗ): folds m's bias correction into the step, as PyTorch does.
        let stepSize: Float
        /// 1 / √(1 − β2ᵗ): √v̂ = √v / √(1 − β2ᵗ).
        let inverseRootCorrection2: Float
        let eps: Float
    }

    /// One AdamW update of all trainable floats, then `step += 1`. Frozen groups (values,
    /// gradients, moments) are not touched; gradients are not zeroed (see the type's comment).
    public func update() {
        let t = Double(step + 1)
        let correction1 = 1 - Foundation.pow(Double(beta1), t)
        let correction2 = 1 - Foundation.pow(Double(beta2), t)
        // Per (group, decays) constants, computed once per update.
        var constants: [Parameters.Group: (plain: StepConstants, decaying: StepConstants)] = [:]
        for (group, settings) in groups where !settings.frozen {
            let lr = Double(settings.schedule.rate(at: step))
            func make(_ decays: Bool) -> StepConstants {
                StepConstants(beta1: beta1, oneMinusBeta1: 1 - beta1, beta2: beta2, oneMinusBeta2: 1 - beta2,
                              decay: decays ? Float(1 - lr * Double(weightDecay)) : 1,
                              stepSize: Float(lr / correction1),
                              inverseRootCorrection2: Float(1 / correction2.squareRoot()), eps: eps)
            }
            constants[group] = (make(false), make(true))
        }
        let p = parameters.values.data, g = UnsafePointer(parameters.grads.data), m = m.data, v = v.data
        Parallel.forRange(trainableCount, costPerItem: 8) { range in
            forEachSegment(range) { run, offset, count in
                guard let pair = constants[run.group] else { return }
                AdamW.updateKernel(p: p + offset, g: g + offset, m: m + offset, v: v + offset, count: count,
                                   run.decays ? pair.decaying : pair.plain)
            }
        }
        step += 1
        parameters.markChanged()
    }

    /// Counts a step without updating anything: the trainer skips a step whose loss or gradient
    /// norm is not finite (like PyTorch's GradScaler), and the schedule moves on as if it ran.
    public func skipStep() { step += 1 }

    /// The update of `count` contiguous floats; the tail goes through the same formula in one
    /// lane, so a float's result does not depend on where it falls in its run.
    /// p, g, m, v: (count)
    static func updateKernel(p: UnsafeMutablePointer<Float>, g: UnsafePointer<Float>,
                             m: UnsafeMutablePointer<Float>, v: UnsafeMutablePointer<Float>,
                             count: Int, _ c: StepConstants) {
        @inline(__always)
        func body(_ p: Vec, _ g: Vec, _ m: Vec, _ v: Vec) -> (p: Vec, m: Vec, v: Vec) {
            let m1 = c.beta1 * m + c.oneMinusBeta1 * g
            let v1 = c.beta2 * v + c.oneMinusBeta2 * (g * g)
            let denominator = v1.squareRoot() * c.inverseRootCorrection2 + c.eps
            return (p * c.decay - c.stepSize * m1 / denominator, m1, v1)
        }
        VectorMath.map(count, { i in
            let r = body(p.vec(i), g.vec(i), m.vec(i), v.vec(i))
            p.setVec(i, r.p); m.setVec(i, r.m); v.setVec(i, r.v)
        }, { i in
            let r = body(lane(p[i]), lane(g[i]), lane(m[i]), lane(v[i]))
            p[i] = r.p[0]; m[i] = r.m[0]; v[i] = r.v[0]
        })
    }

    // MARK: - Checkpoints

    /// Restores a saved state (`step`, `m.data`, `v.data`), so that the following updates are
    /// bit-identical to those of the optimizer that saved it. Throws, leaving the optimizer
    /// unchanged, when `count` differs from the parameter count, the step is negative, or a
    /// moment is not finite (or `v` negative).
    public func restore(step: Int, m: UnsafePointer<Float>, v: UnsafePointer<Float>, count: Int) throws {
        guard count == parameters.count else {
            throw OptimizerError.stateSizeMismatch(expected: parameters.count, got: count)
        }
        guard step >= 0 else { throw OptimizerError.invalidStep(step) }
        for i in 0..<count where !m[i].isFinite {
            throw OptimizerError.invalidState(buffer: "m", index: i, value: m[i])
        }
        for i in 0..<count where !(v[i].isFinite && v[i] >= 0) {
            throw OptimizerError.invalidState(buffer: "v", index: i, value: v[i])
        }
        self.m.data.update(from: m, count: count)
        self.v.data.update(from: v, count: count)
        self.step = step
    }
}
