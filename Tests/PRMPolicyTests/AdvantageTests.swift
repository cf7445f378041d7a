import Foundation
import XCTest
@testable import PRMPolicy

/// GAE against its definition as a sum, whitening, and the adaptive KL coefficient.
final class AdvantageTests: XCTestCase {
    /// A_t = Σ_l (γλ)^l δ_{t+l} written out directly (eq. 16 of the GAE paper).
    func testGAEEqualsTheDiscountedSumOfTDErrors() {
        let rewards: [Float] = [0.1, -0.3, 0.0, 0.7, 1.5], values: [Float] = [0.2, 0.4, -0.1, 0.3, 0.9]
        for (gamma, lambda) in [(Float(1), Float(0.95)), (0.9, 0.5), (1, 1), (0.99, 0)] {
            let (advantages, returns) = GAE.compute(rewards: rewards, values: values, gamma: gamma, lambda: lambda)
            let T = rewards.count
            let deltas = (0..<T).map { t in rewards[t] + gamma * (t + 1 < T ? values[t + 1] : 0) - values[t] }
            for t in 0..<T {
                var expected: Float = 0
                for l in 0..<(T - t) { expected += Float(pow(Double(gamma * lambda), Double(l))) * deltas[t + l] }
                XCTAssertEqual(advantages[t], expected, accuracy: 1e-5)
                XCTAssertEqual(returns[t], expected + values[t], accuracy: 1e-5)
            }
            // λ = 1: the return is the discounted sum of rewards, whatever the values.
            if lambda == 1 {
                for t in 0..<T {
                    var sum: Float = 0
                    for l in 0..<(T - t) { sum += Float(pow(Double(gamma), Double(l))) * rewards[t + l] }
                    XCTAssertEqual(returns[t], sum, accuracy: 1e-5)
                }
            }
        }
    }

    func testWhitening() {
        var x: [Float] = [1, 2, 3, 4, 10]
        Whitening.whiten(&x)
        XCTAssertEqual(x.reduce(0, +) / 5, 0, accuracy: 1e-6)
        XCTAssertEqual(x.map { $0 * $0 }.reduce(0, +) / 5, 1, accuracy: 1e-5)
        var y: [Float] = [1, 2, 3, 4, 10]
        Whitening.whiten(&y, shiftMean: false)
        XCTAssertEqual(y.reduce(0, +) / 5, 4, accuracy: 1e-5)
    }

    /// The coefficient rises while the KL is above target and falls below it, at most 20 % of
    /// n / horizon per update; a fixed controller never moves.
    func testAdaptiveKLCoefficient() {
        var adaptive = KLController(coefficient: 0.1, target: 6, horizon: 100)
        adaptive.update(kl: 12, replies: 10)
        XCTAssertEqual(adaptive.coefficient, 0.1 * (1 + 0.2 * 0.1), accuracy: 1e-7)
        adaptive.update(kl: 5.4, replies: 10)
        XCTAssertEqual(adaptive.coefficient, 0.1 * 1.02 * (1 - 0.1 * 0.1), accuracy: 1e-7)
        var fixed = KLController(coefficient: 0.1, target: nil, horizon: 100)
        fixed.update(kl: 50, replies: 64)
        XCTAssertEqual(fixed.coefficient, 0.1)
    }
}
