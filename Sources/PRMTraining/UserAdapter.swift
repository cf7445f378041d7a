import Foundation
import PRMCore
import PRMModel
import PRMScoring

/// How `UserAdapter` fits a user: the prior's width for both aggregators, and the soft prompt's
/// optimizer (the linear head's problem is solved exactly).
public struct AdaptSettings: Codable, Sendable, Equatable {
    /// AdamW steps on the new user's T_u vectors, each over all of the user's comparisons.
    public var steps = 30
    /// Their learning rate (constant): the user tables' training rate.
    public var learningRate: Float = 1e-2
    /// τ: the prior's covariance is τ·Σ. 1 for new users (a handful of comparisons, measured by
    /// `prm eval --few-shot`); refitting seen users takes its own value (`TrainingSettings.refitPriorScale`).
    public var priorScale = 1.0

    enum CodingKeys: String, CodingKey { case steps, learningRate = "learning_rate", priorScale = "prior_scale" }

    public init() {}

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = AdaptSettings()
        steps = try c.decodeIfPresent(Int.self, forKey: .steps) ?? d.steps
        learningRate = try c.decodeIfPresent(Float.self, forKey: .learningRate) ?? d.learningRate
        priorScale = try c.decodeIfPresent(Double.self, forKey: .priorScale) ?? d.priorScale
    }

    /// Checks ranges; `option` names the command-line option that set the prior scale.
    public func validate(priorScaleOption option: String = "--prior-scale") throws {
        guard steps >= 0 else { throw TrainingError("--adapt-steps must be non-negative, got \(steps)") }
        guard learningRate >= 0 && learningRate.isFinite else { throw TrainingError("--adapt-lr must be non-negative, got \(learningRate)") }
        guard priorScale > 0 && priorScale.isFinite else { throw TrainingError("\(option) must be a positive number, got \(priorScale)") }
    }
}

/// What `UserAdapter.refitSeenUsers` did: users refitted, the prior scale, and the users' fit to
/// their own training comparisons before and after. Recorded in the checkpoint ("refit_seen").
public struct SeenUserRefit: Codable, Sendable, Equatable {
    public var users = 0
    public var priorScale: Double
    public var before = ComparisonFit()
    public var after = ComparisonFit()
    /// Personalized accuracy on held-out comparisons before and after, when the caller measured it.
    public var heldOutBefore: Float?
    public var heldOutAfter: Float?

    enum CodingKeys: String, CodingKey {
        case users, priorScale = "prior_scale", before, after, heldOutBefore = "held_out_before", heldOutAfter = "held_out_after"
    }

    public init(priorScale: Double) { self.priorScale = priorScale }
}

/// Adds users to a trained model from a few of their comparisons, with the backbone, the head
/// and every trained user frozen: `prm adapt` and `prm eval --few-shot` (the service's adapt op
/// runs the same `UserPrior` fit on h from its scorer).
///
/// **Linear head**: the MAP user under the prior estimated from the trained users (`UserPrior`,
/// which holds the math). h comes from the scoring path (InputPreparer's window,
/// RewardModel.pooledStates), computed once per text. With few comparisons the fit moves along
/// the directions in which trained users differ (on lengthpref: towards short replies) and stays
/// at e_0 otherwise. A cluster model's newcomer is a mixture of the trained centres: only its K
/// mixture logits are fitted (`MixtureFit`).
///
/// **Soft prompt**: the reward is not linear in the user's tokens; AdamW moves only the new
/// row (backbone frozen, no dropout) on the same objective, the prior as ½|x|²/(τs̄²) with s̄² the
/// trained offsets' mean variance per float.
///
/// **Seen users** (`refitSeenUsers`, linear head, individual users): joint training moves every user vector by SGD
/// while the backbone under it keeps moving, so at the end a trained user's vector is not the
/// best one for the final h. The same MAP problem, solved once per trained user on all of their
/// training comparisons against the final h, replaces it; the prior stays the one estimated from
/// the vectors as trained.
public final class UserAdapter {
    public let model: RewardModel
    public let preparer: InputPreparer
    public var settings: AdaptSettings
    /// Estimated from the trained users at `init`; its scale is `settings.priorScale`.
    var prior: UserPrior

    public init(model: RewardModel, users: UserTable, settings: AdaptSettings = AdaptSettings()) throws {
        do { prior = try UserPrior(model.userModel, scale: settings.priorScale) } catch { throw TrainingError(error.message) }
        guard !prior.isCluster || model.config.aggregator == .linearHead else {
            throw TrainingError("adapting a cluster model's users needs the linear-head aggregator; this model has \(model.config.aggregator.rawValue)")
        }
        // A soft-prompt user is fitted by the backbone's training pass (forward, then backward to the
        // user's input rows), which reads the fp32 matrices that bf16 and int8 release.
        let precision = model.backbone.inferencePrecision
        guard model.config.aggregator == .linearHead || precision == .fp32 else {
            throw TrainingError("adapting a soft-prompt model's users runs the backbone's training pass, which needs its fp32 matrices; "
                                + "this model was loaded at --precision \(precision) (load it at fp32)")
        }
        self.model = model
        preparer = InputPreparer(model: model, users: users)
        self.settings = settings
    }

    /// Fits a new user on `comparisons` (tokenized; their user index is ignored), appends the
    /// user to the model and returns the new index.
    public func addUser(_ comparisons: [EncodedComparison]) throws -> Int {
        guard !comparisons.isEmpty else { throw TrainingError("a new user needs at least one comparison") }
        let row: [Float]
        switch model.config.aggregator {
        case .linearHead: row = fitLinearHead(comparisons)
        case .softPrompt: return try fitSoftPrompt(comparisons)
        }
        guard let index = model.userModel.appendUsers(row)?.lowerBound else { throw TrainingError("cannot append a user row of \(row.count) floats") }
        return index
    }

    // MARK: - Linear head

    /// h(chosen_k) − h(rejected_k) of each comparison.
    func differences(_ comparisons: [EncodedComparison]) -> [[Double]] {
        Self.differences(pooledStates(comparisons))
    }

    /// h(chosen) − h(rejected) per comparison, for states laid out as `pooledStates` returns them.
    static func differences(_ h: [[Double]]) -> [[Double]] {
        stride(from: 0, to: h.count - 1, by: 2).map { k in zip(h[k], h[k + 1]).map { $0 - $1 } }
    }

    /// Pooled states of chosen and rejected replies (chosen_k at 2k, rejected_k at 2k+1), as the
    /// scorer computes them.
    func pooledStates(_ comparisons: [EncodedComparison]) -> [[Double]] {
        Self.pooledStates(comparisons, model: model, preparer: preparer)
    }

    /// `pooledStates` of the generic user's view of `comparisons` on any model.
    static func pooledStates(_ comparisons: [EncodedComparison], model: RewardModel, preparer: InputPreparer) -> [[Double]] {
        let C = model.backbone.hiddenSize
        var sequences: [ModelSequence] = []
        for c in comparisons {
            for reply in [c.chosen, c.rejected] {
                sequences.append(preparer.prepare(user: 0, known: false, explicit: c.explicit, prompt: c.prompt, reply: reply).sequence)
            }
        }
        var h = [Float](repeating: 0, count: sequences.count * C)
        h.withUnsafeMutableBufferPointer { model.pooledStates(sequences, tokensPerBatch: 8192, into: $0.baseAddress!) }
        return sequences.indices.map { i in (0..<C).map { Double(h[i * C + $0]) } }
    }

    func fitLinearHead(_ comparisons: [EncodedComparison]) -> [Float] {
        prior.scale = settings.priorScale
        return prior.fit(differences(comparisons)).row
    }

    /// Replaces the vector of every trained user (1...U) that has comparisons in `data` with its
    /// MAP fit on all of them against the current h (see the type's comment); comparisons of the
    /// generic user 0 and of users added after training are left out, and so are those users.
    /// Backbone, head and user 0 do not change. Users are fitted independently (the prior was
    /// fixed at `init`), so the result does not depend on their order.
    public func refitSeenUsers(_ data: [EncodedComparison]) throws -> SeenUserRefit {
        guard model.config.aggregator == .linearHead else {
            throw TrainingError("refitting seen users needs the linear-head aggregator (its user vectors are a convex fit); "
                                + "this model has \(model.config.aggregator.rawValue)")
        }
        guard !prior.isCluster else {
            throw TrainingError("refitting seen users needs individual users; this model has cluster users")
        }
        prior.scale = settings.priorScale
        let trained = 1...prior.offsets.count
        let mine = data.filter { trained.contains($0.user) }
        let d = differences(mine)
        var rows: [Int: [Int]] = [:]
        for (k, c) in mine.enumerated() { rows[c.user, default: []].append(k) }
        var result = SeenUserRefit(priorScale: settings.priorScale)
        for user in rows.keys.sorted() {
            guard let own = rows[user].map({ $0.map { d[$0] } }), let row = model.userModel.row(user) else { continue }
            result.before.add(prior.margins(prior.offsets[user - 1], own))
            let x = prior.mapOffset(own)
            result.after.add(prior.margins(x, own))
            row.value.update(from: prior.ownRow(x), count: x.count)
            result.users += 1
        }
        return result
    }

    // MARK: - Soft prompt

    /// Appends the user at the prior's centre, then runs AdamW on that row alone.
    func fitSoftPrompt(_ comparisons: [EncodedComparison]) throws -> Int {
        let userModel = model.userModel
        guard let user = userModel.appendUsers(prior.ownRow([Double](repeating: 0, count: prior.generic.count)))?.lowerBound,
              let added = userModel.added, let row = userModel.row(user) else {
            throw TrainingError("cannot append a user row")
        }
        let backbone = model.backbone
        let (savedGradients, savedDropout) = (backbone.computesParameterGradients, backbone.hiddenDropout.probability)
        backbone.computesParameterGradients = false
        backbone.hiddenDropout.probability = 0
        defer {
            backbone.computesParameterGradients = savedGradients
            backbone.hiddenDropout.probability = savedDropout
        }
        let n = userModel.rowSize
        let centre = prior.ownRow([Double](repeating: 0, count: prior.generic.count))
        let precision = Float(1 / (settings.priorScale * prior.isotropicVariance / UserPrior.isotropicShare))
        let optimizer = AdamW(parameters: added, groups: [.user: .init(schedule: .constant(settings.learningRate))])
        optimizer.weightDecay = 0
        var inputs: [RewardInput] = []
        for c in comparisons {
            inputs.append(RewardInput(user: user, explicit: c.explicit, prompt: c.prompt, reply: c.chosen))
            inputs.append(RewardInput(user: user, explicit: c.explicit, prompt: c.prompt, reply: c.rejected))
        }
        for _ in 0..<settings.steps {
            added.zeroGrad()
            let r = model.forward(inputs, training: true)
            var dRewards = [Float](repeating: 0, count: r.count)
            for k in comparisons.indices {
                let g = -1 / (1 + Foundation.exp(r[2 * k] - r[2 * k + 1]))  // d(−log σ(Δ))/dΔ
                dRewards[2 * k] = g
                dRewards[2 * k + 1] = -g
            }
            model.backward(dRewards: dRewards)
            for i in 0..<n { row.grad[i] += precision * (row.value[i] - centre[i]) }
            optimizer.update()
        }
        model.parameters.zeroGrad()  // the frozen head collected gradients too
        return user
    }
}
