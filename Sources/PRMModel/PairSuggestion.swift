import Foundation

/// Which comparisons to ask a user about: the `suggest` op's choice and `prm eval --few-shot
/// --active`'s. Among candidate pairs (a, b) of replies whose rewards have mean m and covariance C
/// under the user's posterior (`UserPosterior.scoreCovariance`), pairs are taken greedily, each the
/// one whose answer most reduces the total posterior variance of the pairs' reward differences,
///   V = Σ_p var(z_p) = Σ_p e_pᵀ C e_p,   e_p = 1 at a, −1 at b.
///
/// Answering pair q adds w_q e_q e_qᵀ to the precision of the rewards (the Laplace update of
/// `UserPosterior.observe`, seen from the rewards), with w_q = σ'(m_a − m_b), the weight the
/// answer would have at the current mean (the answer itself is unknown, so the mean does not
/// move). Sherman–Morrison gives C' = C − w v vᵀ / (1 + w s) with v = C e_q, s = e_qᵀ C e_q, so the
/// reduction of V is w Σ_p (e_pᵀ v)² / (1 + w s); after each choice C is updated so the next one
/// counts only what is still unknown. A pair is asked at most once.
///
/// Pairs whose replies the user is nearly certain to order (|m_a − m_b| large, w small) or
/// whose difference the posterior already pins down (s small) reduce V little: the choice asks
/// where the user's vector decides the order and is still uncertain.
public struct PairSuggestion: Sendable, Equatable {
    /// The replies' indices, in the order asked (which is first carries no meaning).
    public let first: Int
    public let second: Int
    /// P(first preferred) at the current mean: σ(m_first − m_second).
    public let firstPreferred: Double
    /// The reduction of the total variance V that answering this pair brings, after the pairs
    /// chosen before it.
    public let varianceReduction: Double

    public init(first: Int, second: Int, firstPreferred: Double, varianceReduction: Double) {
        self.first = first
        self.second = second
        self.firstPreferred = firstPreferred
        self.varianceReduction = varianceReduction
    }

    /// Every unordered pair of `count` replies, (0,1), (0,2), …, (1,2), ….
    public static func allPairs(_ count: Int) -> [(Int, Int)] {
        (0..<count).flatMap { a in ((a + 1)..<max(count, a + 1)).map { (a, $0) } }
    }

    /// V = Σ_p var(z_p) over `pairs`, for covariance `C`.
    public static func totalVariance(_ C: [[Double]], pairs: [(Int, Int)]) -> Double {
        pairs.reduce(0) { $0 + C[$1.0][$1.0] + C[$1.1][$1.1] - 2 * C[$1.0][$1.1] }
    }

    /// Up to `k` of `pairs` (indices into `means` and `covariance`), greedily as described above.
    /// Fewer when fewer pairs remain, or when no remaining pair reduces V at all.
    public static func choose(_ k: Int, from pairs: [(Int, Int)], means m: [Double], covariance: [[Double]]) -> [PairSuggestion] {
        var C = covariance
        var remaining = Array(pairs.indices)
        var chosen: [PairSuggestion] = []
        while chosen.count < k, !remaining.isEmpty {
            var best: (slot: Int, reduction: Double, v: [Double], w: Double, s: Double)?
            for (slot, q) in remaining.enumerated() {
                let (a, b) = pairs[q]
                let v = C.indices.map { C[$0][a] - C[$0][b] }
                let s = v[a] - v[b]
                let w = UserPosterior.curvature(m[a] - m[b])
                let reach = pairs.reduce(0.0) { sum, p in
                    let covariance = v[p.0] - v[p.1]
                    return sum + covariance * covariance
                }
                let reduction = w * reach / (1 + w * s)
                if reduction > best?.reduction ?? 0 { best = (slot, reduction, v, w, s) }
            }
            guard let best else { break }
            let (a, b) = pairs[remaining[best.slot]]
            chosen.append(PairSuggestion(first: a, second: b, firstPreferred: 1 / (1 + exp(m[b] - m[a])), varianceReduction: best.reduction))
            remaining.remove(at: best.slot)
            let c = best.w / (1 + best.w * best.s)
            for i in C.indices { for j in C.indices { C[i][j] -= c * best.v[i] * best.v[j] } }
        }
        return chosen
    }
}
