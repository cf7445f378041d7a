import Foundation

/// The prior a linear-head user's vector is drawn from, estimated from the trained users, and the
/// MAP fit of one user under it: the linear algebra of `prm adapt`, `prm eval --few-shot` and the
/// service's `adapt` op, on pooled states h (whoever computes them: `UserAdapter` from training
/// data, the server through its scorer), so the service fits users without the training library.
///
/// The trained users' offsets from the generic user, o_i = e_i − e_0, are samples of how people
/// differ; a new user is e = e_0 + x with x ~ N(0, τΣ), Σ = (1/U) Σ_i o_i o_iᵀ + s²·I: the trained
/// users' second moment (centred on e_0, the model for someone we know nothing about, not on zero)
/// plus a small isotropic part, s² = `isotropicShare` · mean_i |o_i|² / (T_u·C), so directions no
/// trained user took are possible but cost more. A model with no trained users (U = 0: a
/// `…ForSequenceClassification` reward model served as it is) has the isotropic part alone
/// (`untrainedVariance`).
///
/// r = ⟨e, h⟩ is linear in e, so the MAP user is a Gaussian-prior logistic regression on
/// d_k = h(chosen_k) − h(rejected_k). By the representer theorem its solution is x = τΣ·D·β
/// (D = [d_1 … d_K]), and β solves the K-dimensional convex problem
/// min −Σ_k log σ(⟨e_0, d_k⟩ + (Gβ)_k) + ½ βᵀGβ with G = Dᵀ(τΣ)D, by damped Newton steps.
///
/// A cluster model's user is a mixture of K trained centres, so its own parameters are K mixture
/// logits: the same prior, estimated from the trained users' centred logits (a softmax does not
/// see a constant) and centred on user 0's, and `MixtureFit` finds the MAP logits.
public struct UserPrior: Sendable {
    /// Share of the average per-float variance of the trained offsets given to every direction.
    public static let isotropicShare = 0.1
    /// e_0's own row, (T_u·C) in Double.
    public let generic: [Double]
    /// The trained users' offsets o_i from e_0, (U, T_u·C) in Double.
    public let offsets: [[Double]]
    /// s²: the isotropic variance of the prior.
    public let isotropicVariance: Double
    /// τ: the prior's covariance is τ·Σ.
    public var scale: Double
    /// Whether a user's own row is its offset (the generic part shared) or its whole vector.
    let sharedGeneric: Bool
    /// The cluster model's centres, (K, C) in Double; empty for individual users.
    let centres: [[Double]]

    /// The prior of `userModel`'s trained users 1...U (users added after training do not count).
    public init(_ userModel: UserModel, scale: Double) throws(ModelError) {
        let kind = userModel.config.kind
        guard kind == .individual || kind == .cluster, userModel.rowSize > 0 else {
            throw ModelError("adapting new users needs individual or cluster users (--user-model individual|cluster); this model has "
                             + "\(userModel.config.kind.rawValue) users" + (userModel.rowSize == 0 ? " and no user vectors" : ""))
        }
        guard userModel.config.users >= 1 || kind == .individual else {
            throw ModelError("the model has no trained users to estimate a prior from")
        }
        let n = userModel.rowSize
        func own(_ user: Int) -> [Double] {
            guard let row = userModel.row(user) else { return [Double](repeating: 0, count: n) }
            return (0..<n).map { Double(row.value[$0]) }
        }
        generic = own(0)
        // A cluster user's row is its whole logit vector: no generic part is shared.
        sharedGeneric = kind == .individual && userModel.config.sharedGeneric
        offsets = (1..<userModel.config.users + 1).map { [generic, sharedGeneric] user in
            let row = own(user)
            switch kind {
            case .cluster: return zip(Self.centred(row), Self.centred(generic)).map { $0 - $1 }
            default: return sharedGeneric ? row : zip(row, generic).map { $0 - $1 }
            }
        }
        centres = kind != .cluster ? [] : (0..<userModel.config.clusters).map { k in
            userModel.clusterCentre(k).map { c in (0..<userModel.size).map { Double(c[$0]) } } ?? []
        }
        isotropicVariance = max(offsets.isEmpty ? Self.untrainedVariance(generic) : Self.isotropicVariance(offsets), 1e-12)
        self.scale = scale
    }

    /// s² from the trained offsets: `isotropicShare` of their mean square per float.
    static func isotropicVariance(_ offsets: [[Double]]) -> Double {
        let meanSquare = offsets.reduce(0) { $0 + $1.reduce(0) { $0 + $1 * $1 } } / Double(offsets.count)
        return isotropicShare * meanSquare / Double(offsets[0].count)
    }

    /// s² of a model no user was trained with (a `…ForSequenceClassification` reward model served
    /// as it is): nothing says how people differ, so every direction gets the generic head's own
    /// mean square per float. At τ = 1 a new user's offset is then as long as e_0 itself is
    /// (E|x|² = |e_0|²), so a few comparisons can move a user as far as the head's own scale.
    static func untrainedVariance(_ generic: [Double]) -> Double {
        generic.reduce(0) { $0 + $1 * $1 } / Double(generic.count)
    }

    /// Whether users are mixtures of centres (their rows are K logits).
    public var isCluster: Bool { !centres.isEmpty }

    /// The MAP user for comparisons whose pooled-state differences are `d`: the own row to store
    /// (`UserModel.appendUsers`), the user's reward differences on those comparisons, and the
    /// parameters at the MAP (the offset x, or the mixture logits' offset) that `UserPosterior`
    /// centres the Laplace approximation on.
    public func fit(_ d: [[Double]]) -> (row: [Float], margins: [Double], mode: [Double]) {
        guard isCluster else {
            let x = mapOffset(d)
            return (ownRow(x), margins(x, d), x)
        }
        let features = d.map { dk in centres.map { c in zip(c, dk).reduce(0) { $0 + $1.0 * $1.1 } } }
        let mixture = MixtureFit(features: features, generic: generic, precision: precision())
        let x = mixture.solve()
        return (zip(generic, x).map { Float($0 + $1) }, mixture.margins(x), x)
    }

    /// The MAP fit on `d` and its Laplace approximation.
    public func posterior(_ d: [[Double]]) -> (row: [Float], margins: [Double], posterior: UserPosterior) {
        let fitted = fit(d)
        return (fitted.row, fitted.margins, UserPosterior(prior: self, mode: fitted.mode, differences: d))
    }

    /// (τΣ)⁻¹, column by column: for the K mixture logits, a small dense matrix.
    func precision() -> [[Double]] {
        let n = generic.count
        let unit = { (j: Int) in (0..<n).map { $0 == j ? 1.0 : 0 } }
        let covariance = (0..<n).map { times(unit($0)) }  // symmetric: its columns are its rows
        let columns = (0..<n).map { Self.solve(covariance, unit($0)) ?? [] }
        return (0..<n).map { a in (0..<n).map { b in columns[b][a] } }
    }

    static func centred(_ v: [Double]) -> [Double] {
        let mean = v.reduce(0, +) / Double(max(v.count, 1))
        return v.map { $0 - mean }
    }

    /// The own row (offset, or vector without a shared generic part) that the user e_0 + x has.
    public func ownRow(_ x: [Double]) -> [Float] {
        sharedGeneric ? x.map(Float.init) : zip(generic, x).map { Float($0 + $1) }
    }

    /// The reward differences ⟨e_0 + x, d_k⟩ of comparisons whose pooled-state differences are `d`.
    public func margins(_ x: [Double], _ d: [[Double]]) -> [Double] {
        d.map { dk in (0..<dk.count).reduce(0) { $0 + (generic[$1] + x[$1]) * dk[$1] } }
    }

    /// τΣ·v = τ·((1/U) Σ_i o_i ⟨o_i, v⟩ + s²·v).
    public func times(_ v: [Double]) -> [Double] {
        var out = v.map { $0 * isotropicVariance * scale }
        let share = scale / Double(max(offsets.count, 1))
        for o in offsets {
            let dot = zip(o, v).reduce(0) { $0 + $1.0 * $1.1 } * share
            for i in out.indices { out[i] += dot * o[i] }
        }
        return out
    }

    /// The MAP offset x from e_0 for comparisons whose pooled-state differences are `d`.
    public func mapOffset(_ d: [[Double]]) -> [Double] {
        let sd = d.map(times)
        let K = d.count
        let z0 = d.map { zip(generic, $0).reduce(0) { $0 + $1.0 * $1.1 } }
        var G = [[Double]](repeating: [Double](repeating: 0, count: K), count: K)
        for a in 0..<K { for b in 0..<K { G[a][b] = zip(d[a], sd[b]).reduce(0) { $0 + $1.0 * $1.1 } } }
        let beta = Self.newton(z0: z0, gram: G)
        var x = [Double](repeating: 0, count: generic.count)
        for k in 0..<K { for i in x.indices { x[i] += beta[k] * sd[k][i] } }
        return x
    }

    /// Damped Newton on J(β) = −Σ log σ(z0 + Gβ) + ½βᵀGβ. With r = 1 − σ(z) and W = diag(σ(1−σ)),
    /// ∇J = G(β − r) and ∇²J = G(WG + I), so the step Δ solves (WG + I)Δ = β − r; halved until J falls.
    public static func newton(z0: [Double], gram G: [[Double]], iterations: Int = 50) -> [Double] {
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

    public static func softplus(_ x: Double) -> Double { x > 30 ? x : log1p(exp(x)) }

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
}
