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

/// How well users' own vectors order their training comparisons: −log σ summed, and the count
/// ordered right (`UserAdapter.refitSeenUsers` reports it before and after).
public struct ComparisonFit: Codable, Sendable, Equatable {
    public var n = 0
    public var correct = 0
    public var loss = 0.0

    public var accuracy: Double { Double(ratio: correct, of: n) }
    public var meanLoss: Double { n == 0 ? 0 : loss / Double(n) }

    enum CodingKeys: String, CodingKey { case n, correct, loss, accuracy, meanLoss = "mean_loss" }

    public init() {}

    /// Adds comparisons whose reward differences (chosen − rejected) are `z`.
    mutating func add(_ z: [Double]) {
        n += z.count
        correct += z.filter { $0 > 0 }.count
        loss += z.reduce(0) { $0 + UserAdapter.softplus(-$1) }
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        n = try c.decode(Int.self, forKey: .n)
        correct = try c.decode(Int.self, forKey: .correct)
        loss = try c.decode(Double.self, forKey: .loss)
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(n, forKey: .n)
        try c.encode(correct, forKey: .correct)
        try c.encode(loss, forKey: .loss)
        try c.encode(accuracy, forKey: .accuracy)
        try c.encode(meanLoss, forKey: .meanLoss)
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
/// and every trained user frozen: `prm adapt`, `prm eval --few-shot` and a service's adapt op.
///
/// The prior is estimated from the trained users. Their offsets from the generic user,
/// o_i = e_i − e_0, are samples of how people differ; a new user is e = e_0 + x with
/// x ~ N(0, Σ), Σ = (1/U) Σ_i o_i o_iᵀ + s²·I: the trained users' second moment (centred on
/// e_0, the model for someone we know nothing about, not on zero) plus a small isotropic part,
/// s² = `isotropicShare` · mean_i |o_i|² / (T_u·C), so directions no trained user took are
/// possible but cost more. With few comparisons the fit moves along the directions in which
/// trained users differ (on lengthpref: towards short replies) and stays at e_0 otherwise.
///
/// **Linear head**: r = ⟨e, h⟩ is linear in e, so the MAP user is a Gaussian-prior logistic
/// regression on d_k = h(chosen_k) − h(rejected_k). By the representer theorem its solution is
/// x = Σ·D·β (D = [d_1 … d_K]), and β solves the K-dimensional convex problem
/// min −Σ_k log σ(⟨e_0, d_k⟩ + (Gβ)_k) + ½ βᵀGβ with G = DᵀΣD, by damped Newton steps. h comes
/// from the scoring path (InputPreparer's window, RewardModel.pooledStates), computed once per text.
///
/// **Soft prompt**: the reward is not linear in the user's tokens; AdamW moves only the new
/// row (backbone frozen, no dropout) on the same objective, the prior as ½|x|²/(τs̄²) with s̄² the
/// trained offsets' mean variance per float.
///
/// **Cluster users** (linear head): a user is a mixture of the K trained centres, so a new user's
/// own parameters are K mixture logits; `MixtureFit` finds their MAP value under the same kind of
/// prior, estimated from the trained users' centred logits and centred on user 0's.
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
    /// Share of the average per-float variance of the trained offsets given to every direction.
    public static let isotropicShare = 0.1
    /// The trained users' offsets o_i from e_0, (U, T_u·C) in Double.
    let offsets: [[Double]]
    let generic: [Double]
    /// s²: the isotropic variance of the prior.
    public let isotropicVariance: Double

    public init(model: RewardModel, users: UserTable, settings: AdaptSettings = AdaptSettings()) throws {
        let userModel = model.userModel
        let kind = userModel.config.kind
        guard kind == .individual || kind == .cluster, userModel.rowSize > 0 else {
            throw TrainingError("adapting new users needs individual or cluster users (--user-model individual|cluster); this model has "
                                + "\(kind.rawValue) users" + (userModel.rowSize == 0 ? " and no user vectors" : ""))
        }
        guard kind == .individual || model.config.aggregator == .linearHead else {
            throw TrainingError("adapting a cluster model's users needs the linear-head aggregator; this model has \(model.config.aggregator.rawValue)")
        }
        guard userModel.config.users >= 1 else { throw TrainingError("the model has no trained users to estimate a prior from") }
        self.model = model
        preparer = InputPreparer(model: model, users: users)
        self.settings = settings
        let n = userModel.rowSize
        func own(_ user: Int) -> [Double] {
            guard let row = userModel.row(user) else { return [Double](repeating: 0, count: n) }
            return (0..<n).map { Double(row.value[$0]) }
        }
        generic = own(0)
        let shared = userModel.config.sharedGeneric
        offsets = (1...userModel.config.users).map { user in
            let row = own(user)
            switch kind {
            // Mixture logits mean the same up to a constant: users differ by their centred logits.
            case .cluster: return zip(Self.centred(row), Self.centred(own(0))).map { $0 - $1 }
            default: return shared ? row : zip(row, own(0)).map { $0 - $1 }
            }
        }
        let meanSquare = offsets.reduce(0) { $0 + $1.reduce(0) { $0 + $1 * $1 } } / Double(offsets.count)
        isotropicVariance = max(Self.isotropicShare * meanSquare / Double(n), 1e-12)
    }

    /// Fits a new user on `comparisons` (tokenized; their user index is ignored), appends the
    /// user to the model and returns the new index.
    public func addUser(_ comparisons: [EncodedComparison]) throws -> Int {
        guard !comparisons.isEmpty else { throw TrainingError("a new user needs at least one comparison") }
        let row: [Float]
        switch (model.config.aggregator, model.userModel.config.kind) {
        case (.linearHead, .cluster): row = fitMixture(comparisons)
        case (.linearHead, _): row = fitLinearHead(comparisons)
        case (.softPrompt, _): return try fitSoftPrompt(comparisons)
        }
        guard let index = model.userModel.appendUsers(row)?.lowerBound else { throw TrainingError("cannot append a user row of \(row.count) floats") }
        return index
    }

    /// The own row (offset, or vector without a shared generic part) that the MAP user has.
    private func ownRow(_ x: [Double]) -> [Float] {
        model.userModel.config.sharedGeneric ? x.map(Float.init) : zip(generic, x).map { Float($0 + $1) }
    }

    // MARK: - Linear head

    /// τΣ·v = τ·((1/U) Σ_i o_i ⟨o_i, v⟩ + s²·v).
    func priorTimes(_ v: [Double]) -> [Double] {
        let tau = settings.priorScale
        var out = v.map { $0 * isotropicVariance * tau }
        let scale = tau / Double(offsets.count)
        for o in offsets {
            let dot = zip(o, v).reduce(0) { $0 + $1.0 * $1.1 } * scale
            for i in out.indices { out[i] += dot * o[i] }
        }
        return out
    }

    /// Pooled states of chosen and rejected replies, as the scorer computes them.
    func differences(_ comparisons: [EncodedComparison]) -> [[Double]] {
        let C = model.backbone.hiddenSize
        var sequences: [ModelSequence] = []
        for c in comparisons {
            for reply in [c.chosen, c.rejected] {
                sequences.append(preparer.prepare(user: 0, known: false, explicit: c.explicit, prompt: c.prompt, reply: reply).sequence)
            }
        }
        var h = [Float](repeating: 0, count: sequences.count * C)
        h.withUnsafeMutableBufferPointer { model.pooledStates(sequences, tokensPerBatch: 8192, into: $0.baseAddress!) }
        return comparisons.indices.map { k in (0..<C).map { Double(h[2 * k * C + $0]) - Double(h[(2 * k + 1) * C + $0]) } }
    }

    func fitLinearHead(_ comparisons: [EncodedComparison]) -> [Float] {
        ownRow(mapOffset(differences(comparisons)))
    }

    // MARK: - Cluster users (linear head)

    /// The new user's mixture logits w_0 + x, x the MAP fit of `MixtureFit`.
    func fitMixture(_ comparisons: [EncodedComparison]) -> [Float] {
        let centres = (0..<model.userModel.config.clusters).map { k in
            model.userModel.clusterCentre(k).map { c in (0..<model.backbone.hiddenSize).map { Double(c[$0]) } } ?? []
        }
        let features = differences(comparisons).map { d in centres.map { c in zip(c, d).reduce(0) { $0 + $1.0 * $1.1 } } }
        let x = MixtureFit(features: features, generic: generic, precision: priorPrecision()).solve()
        return zip(generic, x).map { Float($0 + $1) }
    }

    /// (τΣ)⁻¹, column by column: for the K mixture logits, a small dense matrix.
    func priorPrecision() -> [[Double]] {
        let n = generic.count
        let covariance = (0..<n).map { j in priorTimes((0..<n).map { $0 == j ? 1 : 0 }) }  // symmetric: columns are rows
        let columns = (0..<n).map { j in Self.solve(covariance, (0..<n).map { $0 == j ? 1 : 0 }) ?? [] }
        return (0..<n).map { a in (0..<n).map { b in columns[b][a] } }
    }

    static func centred(_ v: [Double]) -> [Double] {
        let mean = v.reduce(0, +) / Double(max(v.count, 1))
        return v.map { $0 - mean }
    }

    /// The MAP offset x from e_0 for comparisons whose pooled-state differences are `d`.
    func mapOffset(_ d: [[Double]]) -> [Double] {
        let sd = d.map(priorTimes)
        let K = d.count
        let z0 = d.map { zip(generic, $0).reduce(0) { $0 + $1.0 * $1.1 } }
        var G = [[Double]](repeating: [Double](repeating: 0, count: K), count: K)
        for a in 0..<K { for b in 0..<K { G[a][b] = zip(d[a], sd[b]).reduce(0) { $0 + $1.0 * $1.1 } } }
        let beta = Self.newton(z0: z0, gram: G)
        var x = [Double](repeating: 0, count: generic.count)
        for k in 0..<K { for i in x.indices { x[i] += beta[k] * sd[k][i] } }
        return x
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
        guard model.userModel.config.kind == .individual else {
            throw TrainingError("refitting seen users needs individual users; this model has \(model.userModel.config.kind.rawValue) users")
        }
        let trained = 1...offsets.count
        let mine = data.filter { trained.contains($0.user) }
        let d = differences(mine)
        var rows: [Int: [Int]] = [:]
        for (k, c) in mine.enumerated() { rows[c.user, default: []].append(k) }
        var result = SeenUserRefit(priorScale: settings.priorScale)
        for user in rows.keys.sorted() {
            guard let own = rows[user].map({ $0.map { d[$0] } }), let row = model.userModel.row(user) else { continue }
            func margins(_ x: [Double]) -> [Double] { own.map { dk in (0..<dk.count).reduce(0) { $0 + (generic[$1] + x[$1]) * dk[$1] } } }
            result.before.add(margins(offsets[user - 1]))
            let x = mapOffset(own)
            result.after.add(margins(x))
            row.value.update(from: ownRow(x), count: x.count)
            result.users += 1
        }
        return result
    }

    /// Damped Newton on J(β) = −Σ log σ(z0 + Gβ) + ½βᵀGβ. With r = 1 − σ(z) and W = diag(σ(1−σ)),
    /// ∇J = G(β − r) and ∇²J = G(WG + I), so the step Δ solves (WG + I)Δ = β − r; halved until J falls.
    static func newton(z0: [Double], gram G: [[Double]], iterations: Int = 50) -> [Double] {
        let K = z0.count
        func logits(_ beta: [Double]) -> [Double] { (0..<K).map { a in z0[a] + (0..<K).reduce(0) { $0 + G[a][$1] * beta[$1] } } }
        func objective(_ beta: [Double]) -> Double {
            let z = logits(beta)
            let quadratic = (0..<K).reduce(0.0) { s, a in s + beta[a] * (0..<K).reduce(0) { $0 + G[a][$1] * beta[$1] } }
            return z.reduce(0) { $0 + softplus(-$1) } + quadratic / 2
        }
        var beta = [Double](repeating: 0, count: K)
        var current = objective(beta)
        for _ in 0..<iterations {
            let z = logits(beta)
            let p = z.map { 1 / (1 + exp(-$0)) }
            var A = [[Double]](repeating: [Double](repeating: 0, count: K), count: K)
            for a in 0..<K { for b in 0..<K { A[a][b] = p[a] * (1 - p[a]) * G[a][b] + (a == b ? 1 : 0) } }
            guard let delta = solve(A, (0..<K).map { beta[$0] - (1 - p[$0]) }) else { break }
            var step = 1.0, improved = false
            while step > 1e-6 {
                let trial = (0..<K).map { beta[$0] - step * delta[$0] }
                let value = objective(trial)
                if value < current {
                    beta = trial
                    improved = current - value > 1e-10 * max(1, abs(current))
                    current = value
                    break
                }
                step /= 2
            }
            if !improved { break }
        }
        return beta
    }

    static func softplus(_ x: Double) -> Double { x > 30 ? x : log1p(exp(x)) }

    /// Gaussian elimination with partial pivoting; nil for a singular system.
    static func solve(_ matrix: [[Double]], _ rhs: [Double]) -> [Double]? {
        var A = matrix, b = rhs
        let n = b.count
        for col in 0..<n {
            guard let pivot = (col..<n).max(by: { abs(A[$0][col]) < abs(A[$1][col]) }), abs(A[pivot][col]) > 1e-300 else { return nil }
            A.swapAt(col, pivot)
            b.swapAt(col, pivot)
            for r in (col + 1)..<n where A[r][col] != 0 {
                let f = A[r][col] / A[col][col]
                for c in col..<n { A[r][c] -= f * A[col][c] }
                b[r] -= f * b[col]
            }
        }
        var x = [Double](repeating: 0, count: n)
        for r in stride(from: n - 1, through: 0, by: -1) {
            x[r] = (b[r] - ((r + 1)..<n).reduce(0) { $0 + A[r][$1] * x[$1] }) / A[r][r]
        }
        return x
    }

    // MARK: - Soft prompt

    /// Appends the user at the prior's centre, then runs AdamW on that row alone.
    func fitSoftPrompt(_ comparisons: [EncodedComparison]) throws -> Int {
        let userModel = model.userModel
        guard let user = userModel.appendUsers(ownRow([Double](repeating: 0, count: generic.count)))?.lowerBound,
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
        let centre = ownRow([Double](repeating: 0, count: generic.count))
        let precision = Float(1 / (settings.priorScale * isotropicVariance / Self.isotropicShare))
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
