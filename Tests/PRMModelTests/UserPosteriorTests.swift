import Foundation
import XCTest
import PRMCore
@testable import PRMModel

/// The Laplace approximation of a user's posterior (`UserPosterior`) and the pairs `suggest`
/// chooses by it (`PairSuggestion`), on small random user tables: the Hessian against central
/// differences of the gradient of the negative log posterior, the covariance as its inverse,
/// variance shrinking only where comparisons were answered, and the greedy choice's claimed
/// reductions against the posterior actually updated.
final class UserPosteriorTests: XCTestCase {
    static let width = 6

    /// A user model of `kind` with 5 trained users and random parameters.
    func userModel(_ kind: UserModelKind, seed: UInt64) -> UserModel {
        var layout = Parameters.Layout()
        let model = UserModel(config: UserModelConfig(kind: kind, tokens: 1, users: 5, clusters: 3), width: Self.width, layout: &layout)
        let parameters = Parameters(layout)
        var rng = RandomSource(seed: seed)
        for i in 0..<layout.count { parameters.values.data[i] = rng.nextNormal() }
        model.bind(parameters)
        return model
    }

    func randomVectors(_ count: Int, seed: UInt64, scale: Float = 1) -> [[Double]] {
        var rng = RandomSource(seed: seed)
        return (0..<count).map { _ in (0..<Self.width).map { _ in Double(rng.nextNormal() * scale) } }
    }

    func dot(_ a: [Double], _ b: [Double]) -> Double { zip(a, b).reduce(0) { $0 + $1.0 * $1.1 } }

    /// ∇J(x) for J(x) = Σ_k −log σ(⟨e_0 + x, d_k⟩) + ½ xᵀPx, the individual user's negative log posterior.
    func gradient(_ x: [Double], prior: UserPrior, precision P: [[Double]], d: [[Double]]) -> [Double] {
        var g = P.map { dot($0, x) }
        for dk in d {
            let z = dot(zip(prior.generic, x).map { $0 + $1 }, dk)
            let pull = 1 / (1 + exp(z))  // σ(−z)
            for i in g.indices { g[i] -= pull * dk[i] }
        }
        return g
    }

    func testHessianIsTheFiniteDifferenceOfTheNegativeLogPosteriorsGradient() throws {
        for (seed, count) in [(UInt64(1), 1), (2, 4), (3, 9)] {
            let prior = try UserPrior(userModel(.individual, seed: seed), scale: 1.5)
            let d = randomVectors(count, seed: seed + 100, scale: 2)
            let fitted = prior.posterior(d).posterior
            let P = prior.precision()
            let atMode = gradient(fitted.mode, prior: prior, precision: P, d: d)
            XCTAssertLessThan(atMode.map(abs).max() ?? 0, 1e-6, "the mode is the MAP: ∇J vanishes there (seed \(seed))")
            let H = fitted.hessian()
            let step = 1e-5
            for j in 0..<Self.width {
                var up = fitted.mode, down = fitted.mode
                up[j] += step
                down[j] -= step
                let column = zip(gradient(up, prior: prior, precision: P, d: d), gradient(down, prior: prior, precision: P, d: d))
                    .map { ($0 - $1) / (2 * step) }
                for i in 0..<Self.width {
                    XCTAssertEqual(H[i][j], column[i], accuracy: 1e-5 * max(1, abs(column[i])), "seed \(seed): H[\(i)][\(j)]")
                }
            }
        }
    }

    /// covarianceTimes (the prior's τΣ with one Sherman–Morrison downdate per answer) inverts the
    /// dense Hessian.
    func testCovarianceIsTheInverseOfTheHessian() throws {
        for kind in [UserModelKind.individual, .cluster] {
            let prior = try UserPrior(userModel(kind, seed: 7), scale: 0.8)
            let fitted = prior.posterior(randomVectors(5, seed: 8, scale: 2)).posterior
            let H = fitted.hessian()
            for v in randomVectors(3, seed: 9).map({ Array($0.prefix(prior.generic.count)) }) {
                let back = fitted.covarianceTimes(H.map { dot($0, v) })
                for i in v.indices { XCTAssertEqual(back[i], v[i], accuracy: 1e-8 * max(1, abs(v[i])), "\(kind) [\(i)]") }
            }
        }
    }

    /// Answers shrink the variance of rewards along the answered differences and leave it alone
    /// in directions the prior makes independent of them (⟨d_k, τΣ v⟩ = 0 for every k).
    func testVarianceShrinksOnlyAlongAnsweredDirections() throws {
        let prior = try UserPrior(userModel(.individual, seed: 11), scale: 1)
        let d = randomVectors(2, seed: 12, scale: 2)
        let newcomer = UserPosterior(prior: prior)
        let fitted = prior.posterior(d).posterior
        for dk in d { XCTAssertLessThan(fitted.scoreVariance(dk), 0.9 * newcomer.scoreVariance(dk)) }
        var basis: [[Double]] = []  // τΣ d_k, orthonormalised
        for var u in d.map(prior.times) {
            for b in basis { let share = dot(b, u); for i in u.indices { u[i] -= share * b[i] } }
            let norm = dot(u, u).squareRoot()
            basis.append(u.map { $0 / norm })
        }
        var v = randomVectors(1, seed: 13)[0]
        for b in basis { let share = dot(b, v); for i in v.indices { v[i] -= share * b[i] } }
        XCTAssertEqual(fitted.scoreVariance(v), newcomer.scoreVariance(v), accuracy: 1e-9 * newcomer.scoreVariance(v))
        XCTAssertGreaterThan(newcomer.scoreVariance(v), 0)
    }

    /// A cluster user's score gradient (the delta method's J) against central differences of its
    /// mean score in the mixture logits.
    func testClusterScoreGradientIsTheFiniteDifferenceOfTheScore() throws {
        let prior = try UserPrior(userModel(.cluster, seed: 21), scale: 1)
        let fitted = prior.posterior(randomVectors(3, seed: 22, scale: 2)).posterior
        let K = prior.generic.count
        XCTAssertEqual(K, 3)
        for h in randomVectors(3, seed: 23) {
            let g = fitted.scoreGradient(h)
            for j in 0..<K {
                let step = 1e-6
                var up = fitted.mode, down = fitted.mode
                up[j] += step
                down[j] -= step
                let numeric = (UserPosterior(prior: prior, mode: up, differences: []).meanScore(h)
                               - UserPosterior(prior: prior, mode: down, differences: []).meanScore(h)) / (2 * step)
                XCTAssertEqual(g[j], numeric, accuracy: 1e-6 * max(1, abs(numeric)), "∂r/∂x[\(j)]")
            }
        }
    }

    /// Each pair's claimed variance reduction is what the Laplace update of that answer really
    /// removes: the posterior updated with the pair's gradient and weight σ'(m_a − m_b) has the
    /// total variance V minus the claims so far. Identical candidates are never asked about.
    func testSuggestedReductionsAreThePosteriorsUpdates() throws {
        for kind in [UserModelKind.individual, .cluster] {
            let prior = try UserPrior(userModel(kind, seed: 31), scale: 1)
            var posterior = prior.posterior(randomVectors(2, seed: 32, scale: 2)).posterior
            var states = randomVectors(5, seed: 33, scale: 1.5)
            states.append(states[0])  // candidate 5 is candidate 0 again
            let pairs = PairSuggestion.allPairs(states.count)
            XCTAssertEqual(pairs.count, 15)
            let means = states.map(posterior.meanScore)
            let chosen = PairSuggestion.choose(4, from: pairs, means: means, covariance: posterior.scoreCovariance(states))
            XCTAssertEqual(chosen.count, 4)
            XCTAssertEqual(Set(chosen.map { "\($0.first)-\($0.second)" }).count, 4, "a pair is asked once")
            XCTAssertFalse(chosen.contains { $0.first == 0 && $0.second == 5 }, "two identical replies tell nothing")
            var total = PairSuggestion.totalVariance(posterior.scoreCovariance(states), pairs: pairs)
            for pair in chosen {
                let (a, b) = (pair.first, pair.second)
                let g = zip(posterior.scoreGradient(states[a]), posterior.scoreGradient(states[b])).map { $0 - $1 }
                posterior.observe(direction: g, weight: UserPosterior.curvature(means[a] - means[b]))
                let after = PairSuggestion.totalVariance(posterior.scoreCovariance(states), pairs: pairs)
                XCTAssertEqual(total - after, pair.varianceReduction, accuracy: 1e-9 * max(1, total), "\(kind) pair \(a)-\(b)")
                XCTAssertEqual(pair.firstPreferred, 1 / (1 + exp(means[b] - means[a])), accuracy: 1e-12)
                total = after
            }
            XCTAssertTrue(zip(chosen, chosen.dropFirst()).allSatisfy { $0.varianceReduction >= $1.varianceReduction - 1e-12 },
                          "greedy reductions do not grow (V is submodular here)")
        }
    }

    /// The first pair chosen is the best single question: no other pair's answer would remove more.
    func testFirstChoiceIsTheBestSingleQuestion() throws {
        let prior = try UserPrior(userModel(.individual, seed: 41), scale: 1)
        let newcomer = UserPosterior(prior: prior)
        let states = randomVectors(6, seed: 42, scale: 1.5)
        let pairs = PairSuggestion.allPairs(states.count)
        let means = states.map(newcomer.meanScore)
        let before = PairSuggestion.totalVariance(newcomer.scoreCovariance(states), pairs: pairs)
        let reductions = pairs.map { a, b -> Double in
            var asked = newcomer
            asked.observe(direction: zip(states[a], states[b]).map { $0 - $1 }, weight: UserPosterior.curvature(means[a] - means[b]))
            return before - PairSuggestion.totalVariance(asked.scoreCovariance(states), pairs: pairs)
        }
        let first = try XCTUnwrap(PairSuggestion.choose(1, from: pairs, means: means, covariance: newcomer.scoreCovariance(states)).first)
        let best = try XCTUnwrap(reductions.indices.max { reductions[$0] < reductions[$1] })
        XCTAssertEqual(first.first, pairs[best].0)
        XCTAssertEqual(first.second, pairs[best].1)
    }
}
