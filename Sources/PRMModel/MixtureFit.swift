import Foundation

/// The MAP mixture logits of a cluster model's new user (linear head), for `UserPrior`.
///
/// A cluster user's vector is e = Σ_j s_j c_j with s = softmax(w) over the K centres c_j, so a
/// comparison whose pooled states differ by d has the margin z = ⟨e, d⟩ = Σ_j s_j f_j, where
/// f_j = ⟨c_j, d⟩ are the comparison's `features`. With w = w_0 + x (w_0 the generic user's
/// logits, the prior's centre) the fit minimises
///   J(x) = Σ_k log(1 + e^{−z_k}) + ½ xᵀ P x,   P = (τΣ)⁻¹,
/// Σ estimated from the trained users' logits as `UserPrior` estimates it for vectors.
/// J is smooth but not convex in x (the softmax); K is small, so damped Newton steps on a
/// finite-difference Hessian of the exact gradient, from x = 0, find the minimum nearest the
/// generic user, which is the one a few comparisons should pick.
struct MixtureFit {
    /// f (n, K): each comparison's margin under each centre alone.
    let features: [[Double]]
    /// w_0: the generic user's logits.
    let generic: [Double]
    /// P (K, K): the prior's precision.
    let precision: [[Double]]

    var clusters: Int { generic.count }

    /// softmax(w_0 + x).
    func mixture(_ x: [Double]) -> [Double] { Self.softmax(zip(generic, x).map { $0 + $1 }) }

    /// softmax(w), shifted by its largest logit so no exponential overflows.
    static func softmax(_ w: [Double]) -> [Double] {
        let top = w.max() ?? 0
        let e = w.map { exp($0 - top) }
        let sum = e.reduce(0, +)
        return e.map { $0 / sum }
    }

    func margins(_ x: [Double]) -> [Double] {
        let s = mixture(x)
        return features.map { f in zip(f, s).reduce(0) { $0 + $1.0 * $1.1 } }
    }

    private func priorTimes(_ x: [Double]) -> [Double] {
        precision.map { row in zip(row, x).reduce(0) { $0 + $1.0 * $1.1 } }
    }

    func objective(_ x: [Double]) -> Double {
        margins(x).reduce(0) { $0 + UserPrior.softplus(-$1) } + zip(x, priorTimes(x)).reduce(0) { $0 + $1.0 * $1.1 } / 2
    }

    /// ∇J: with a_j = Σ_k −σ(−z_k) f_kj, the softmax's Jacobian gives s_j (a_j − ⟨s, a⟩); plus P x.
    func gradient(_ x: [Double]) -> [Double] {
        let s = mixture(x), z = margins(x)
        var a = [Double](repeating: 0, count: clusters)
        for (f, zk) in zip(features, z) {
            let g = -1 / (1 + exp(zk))
            for j in 0..<clusters { a[j] += g * f[j] }
        }
        let mean = zip(s, a).reduce(0) { $0 + $1.0 * $1.1 }
        return zip(zip(s, a).map { $0 * ($1 - mean) }, priorTimes(x)).map { $0 + $1 }
    }

    /// The Hessian by central differences of the exact gradient, symmetrised.
    private func hessian(_ x: [Double]) -> [[Double]] {
        let step = 1e-5
        var columns: [[Double]] = []
        for j in 0..<clusters {
            var up = x, down = x
            up[j] += step
            down[j] -= step
            columns.append(zip(gradient(up), gradient(down)).map { ($0 - $1) / (2 * step) })
        }
        return (0..<clusters).map { a in (0..<clusters).map { b in (columns[a][b] + columns[b][a]) / 2 } }
    }

    /// The MAP offset x of the logits from w_0. Each step solves (H + μI)Δ = −∇J; μ grows until
    /// the step lowers J (so a Hessian that is not positive definite far from the minimum still
    /// gives a descent step) and shrinks again after a success.
    func solve(iterations: Int = 100) -> [Double] {
        var x = [Double](repeating: 0, count: clusters)
        var current = objective(x)
        var damping = 0.0
        for _ in 0..<iterations {
            let g = gradient(x)
            if g.map(abs).max() ?? 0 < 1e-10 { break }
            let H = hessian(x)
            let scale = max((0..<clusters).map { abs(H[$0][$0]) }.max() ?? 1, 1e-12)
            var improved = false
            while damping <= 1e6 * scale {
                let damped = H.enumerated().map { a, row in row.enumerated().map { b, v in v + (a == b ? damping : 0) } }
                if let delta = UserPrior.solve(damped, g.map { -$0 }) {
                    let trial = zip(x, delta).map { $0 + $1 }
                    let value = objective(trial)
                    if value < current {
                        improved = current - value > 1e-12 * max(1, abs(current))
                        (x, current) = (trial, value)
                        damping /= 4
                        break
                    }
                }
                damping = max(damping * 4, 1e-6 * scale)
            }
            if !improved { break }
        }
        return x
    }
}
