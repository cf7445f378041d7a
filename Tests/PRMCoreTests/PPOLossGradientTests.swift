import XCTest
import PRMTestSupport
@testable import PRMCore

/// PPO's clipped policy and value losses: forward against the formulas written out, backward
/// against central finite differences on both sides of every clip (points within a step of a
/// kink are redrawn: there the loss has no derivative to compare with).
final class PPOLossGradientTests: XCTestCase {
    func testClippedPolicyLoss() {
        var g = GradientCheck()
        let (N, epsilon) = (64, Float(0.2))
        let logp = g.tensor([N]), old = Tensor(shape: [N]), advantages = g.tensor([N]), w = g.tensor([N])
        for n in 0..<N {
            // Ratios spread over [0.4, 2.5], none within 0.02 of 1 ± ε.
            repeat { old[n] = logp[n] - 0.45 * g.rng.nextNormal() } while [1 - epsilon, 1 + epsilon].contains { abs(Foundation.exp(logp[n] - old[n]) - $0) < 0.02 }
        }
        let losses = Tensor(shape: [N])
        func loss() -> Double {
            ClippedPolicyLoss.forward(losses: losses.data, logp: logp.data, oldLogp: old.data, advantages: advantages.data, epsilon: epsilon, N: N)
            return weightedSum(losses, w)
        }
        _ = loss()
        var regions = Set<String>()
        for n in 0..<N {
            let ratio = Foundation.exp(logp[n] - old[n]), a = advantages[n]
            let expected = max(-a * ratio, -a * min(max(ratio, 1 - epsilon), 1 + epsilon))
            XCTAssertEqual(losses[n], expected, accuracy: 1e-5)
            let clipped = (a > 0 && ratio > 1 + epsilon) || (a < 0 && ratio < 1 - epsilon)
            regions.insert("\(a > 0 ? "+" : "-")\(clipped ? "clipped" : "free")")
            XCTAssertEqual(ClippedPolicyLoss.isClipped(logp: logp[n], oldLogp: old[n], epsilon: epsilon), abs(ratio - 1) > epsilon)
        }
        XCTAssertEqual(regions, ["+clipped", "+free", "-clipped", "-free"], "the inputs must reach every branch")
        let dlogp = Tensor(shape: [N])
        ClippedPolicyLoss.backward(dlogp: dlogp.data, dlosses: w.data, logp: logp.data, oldLogp: old.data, advantages: advantages.data,
                                   epsilon: epsilon, N: N)
        g.check("ppo policy dlogp", input: logp, analytic: dlogp, step: 1e-3, samples: N, loss: loss)
        // Where the clipped term is active the gradient is exactly zero (the update stops pushing).
        for n in 0..<N where (advantages[n] > 0 && Foundation.exp(logp[n] - old[n]) > 1 + epsilon) { XCTAssertEqual(dlogp[n], 0) }
    }

    func testClippedValueLoss() {
        var g = GradientCheck()
        let (N, epsilon) = (64, Float(0.2))
        let values = g.tensor([N]), old = Tensor(shape: [N]), returns = g.tensor([N]), w = g.tensor([N])
        for n in 0..<N {
            // Some values inside the clip range, some outside; away from the range's edges and
            // from the point where the clipped and unclipped errors are equal.
            repeat {
                old[n] = values[n] + 0.4 * g.rng.nextNormal()
            } while abs(abs(values[n] - old[n]) - epsilon) < 0.02
                || abs(abs(values[n] - returns[n]) - abs(min(max(values[n], old[n] - epsilon), old[n] + epsilon) - returns[n])) < 0.02
                    && abs(values[n] - old[n]) > epsilon
        }
        let losses = Tensor(shape: [N])
        func loss() -> Double {
            ClippedValueLoss.forward(losses: losses.data, values: values.data, oldValues: old.data, returns: returns.data, epsilon: epsilon, N: N)
            return weightedSum(losses, w)
        }
        _ = loss()
        var regions = Set<String>()
        for n in 0..<N {
            let v = values[n], r = returns[n]
            let clipped = min(max(v, old[n] - epsilon), old[n] + epsilon)
            XCTAssertEqual(losses[n], 0.5 * max((v - r) * (v - r), (clipped - r) * (clipped - r)), accuracy: 1e-5)
            regions.insert(abs(v - old[n]) <= epsilon ? "inside" : abs(v - r) > abs(clipped - r) ? "outside, own error" : "outside, clipped error")
        }
        XCTAssertEqual(regions, ["inside", "outside, own error", "outside, clipped error"], "the inputs must reach every branch")
        let dvalues = Tensor(shape: [N])
        ClippedValueLoss.backward(dvalues: dvalues.data, dlosses: w.data, values: values.data, oldValues: old.data, returns: returns.data,
                                  epsilon: epsilon, N: N)
        g.check("ppo value dvalues", input: values, analytic: dvalues, step: 1e-3, samples: N, loss: loss)
    }
}
