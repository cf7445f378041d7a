import Foundation

/// The Laplace approximation of one linear-head user's posterior under `UserPrior`: a Gaussian
/// centred on the MAP fit whose precision is the Hessian of the negative log posterior there,
///   Λ = P + Σ_k w_k g_k g_kᵀ,   P = (τΣ)⁻¹,   w_k = σ(z_k)·σ(−z_k),
/// where z_k is comparison k's margin at the MAP and g_k its gradient in the user's parameters.
/// What the service's `rank` reports as a score's standard deviation and what `suggest` chooses
/// questions by.
///
/// An individual user's parameters are its offset x from e_0, the margin is ⟨e_0 + x, d_k⟩ and
/// g_k = d_k, the pooled-state difference: Λ is the exact Hessian. A cluster user's parameters are
/// its K mixture logits (`MixtureFit`); g_k = ∂z_k/∂x = s ⊙ (f_k − ⟨s, f_k⟩) with s the mixture and
/// f_k the comparison's margin under each centre. There Λ is the Gauss–Newton (Fisher) form: the
/// exact Hessian adds Σ_k −σ(−z_k)·∇²z_k, which the softmax makes non-zero and not positive
/// semi-definite, so it is left out.
///
/// The covariance Λ⁻¹ is never formed: starting from the prior's τΣ (`UserPrior.times`), each
/// answered comparison is a rank-one downdate (Sherman–Morrison),
///   Σ' = Σ − c·u uᵀ,   u = Σ g,   c = w / (1 + w gᵀu),
/// so applying it costs the prior's product and one dot product per comparison, in any width.
public struct UserPosterior: Sendable {
    public let prior: UserPrior
    /// The parameters at the MAP: x (offset from e_0) or the mixture logits' offset from w_0.
    public let mode: [Double]
    /// The answered comparisons' gradients g_k and weights w_k, in the order they were added.
    public private(set) var answered: [(direction: [Double], weight: Double)] = []
    /// The downdates (u, c), one per answered comparison.
    private var downdates: [(u: [Double], c: Double)] = []

    /// The prior itself: a user nothing is known about (the generic user, x = 0).
    public init(prior: UserPrior) {
        self.prior = prior
        mode = [Double](repeating: 0, count: prior.generic.count)
    }

    /// The Laplace approximation at `mode`, the MAP fit on comparisons whose pooled-state
    /// differences are `d`, with each comparison's weight σ'(z_k) at that mode.
    public init(prior: UserPrior, mode: [Double], differences d: [[Double]]) {
        self.prior = prior
        self.mode = mode
        for dk in d {
            let z = meanScore(dk)
            observe(direction: scoreGradient(dk), weight: Self.curvature(z))
        }
    }

    /// σ(z)·σ(−z): the second derivative of −log σ(z), the weight of a comparison with margin z.
    public static func curvature(_ z: Double) -> Double {
        let p = 1 / (1 + exp(-z))
        return p * (1 - p)
    }

    /// Adds a comparison whose margin has gradient `g` and weight `w` (Λ += w g gᵀ).
    public mutating func observe(direction g: [Double], weight w: Double) {
        let u = covarianceTimes(g)
        let c = w / (1 + w * Self.dot(g, u))
        answered.append((g, w))
        downdates.append((u, c))
    }

    /// Λ⁻¹v: the posterior covariance applied to `v`.
    public func covarianceTimes(_ v: [Double]) -> [Double] {
        var out = prior.times(v)
        for (u, c) in downdates {
            let a = c * Self.dot(u, v)
            for i in out.indices { out[i] -= a * u[i] }
        }
        return out
    }

    /// The reward ⟨e, h⟩ at the mode, for a pooled state (or pooled-state difference) `h`.
    public func meanScore(_ h: [Double]) -> Double {
        guard prior.isCluster else { return (0..<h.count).reduce(0) { $0 + (prior.generic[$1] + mode[$1]) * h[$1] } }
        let f = centreScores(h)
        return Self.dot(mixture, f)
    }

    /// ∂⟨e, h⟩/∂x at the mode: h itself for an individual user, s ⊙ (f − ⟨s, f⟩) for a cluster user.
    public func scoreGradient(_ h: [Double]) -> [Double] {
        guard prior.isCluster else { return h }
        let s = mixture, f = centreScores(h)
        let mean = Self.dot(s, f)
        return zip(s, f).map { $0 * ($1 - mean) }
    }

    /// The variance of the reward of pooled state `h`: gᵀ Λ⁻¹ g with g its score gradient.
    public func scoreVariance(_ h: [Double]) -> Double {
        let g = scoreGradient(h)
        return Self.dot(g, covarianceTimes(g))
    }

    /// The covariance (M, M) of the rewards of M pooled states: Jᵀ Λ⁻¹ J with J's columns their
    /// score gradients (the delta method for a cluster user).
    public func scoreCovariance(_ states: [[Double]]) -> [[Double]] {
        let gradients = states.map(scoreGradient)
        let spread = gradients.map(covarianceTimes)
        return gradients.map { a in spread.map { Self.dot(a, $0) } }
    }

    /// Λ as a dense (n, n) matrix. It inverts the prior's covariance column by column, so it is
    /// for checks on small widths, not for serving.
    public func hessian() -> [[Double]] {
        var H = prior.precision()
        for (g, w) in answered {
            for a in g.indices { for b in g.indices { H[a][b] += w * g[a] * g[b] } }
        }
        return H
    }

    /// softmax(w_0 + x) at the mode (cluster users).
    private var mixture: [Double] { MixtureFit.softmax(zip(prior.generic, mode).map { $0 + $1 }) }

    /// f_j = ⟨c_j, h⟩ for each centre.
    private func centreScores(_ h: [Double]) -> [Double] { prior.centres.map { Self.dot($0, h) } }

    static func dot(_ a: [Double], _ b: [Double]) -> Double { zip(a, b).reduce(0) { $0 + $1.0 * $1.1 } }
}
