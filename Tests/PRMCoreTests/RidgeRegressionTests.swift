import Foundation
import XCTest
import PRMCore

/// `RidgeRegression` (LAPACK dposv from OpenBLAS) on data whose answer is known: an exact linear
/// relation, pure noise, and the normal equations the solution must satisfy.
final class RidgeRegressionTests: XCTestCase {
    /// (N, D) standard normal values from a seed.
    func gaussian(_ N: Int, _ D: Int, seed: UInt64) -> [Double] {
        var rng = RandomSource(seed: seed)
        return (0..<(N * D)).map { _ in Double(rng.nextNormal()) }
    }

    func linear(_ x: [Double], weights: [Double], intercept: Double) -> [Double] {
        let D = weights.count
        return (0..<(x.count / D)).map { n in (0..<D).reduce(intercept) { $0 + x[n * D + $1] * weights[$1] } }
    }

    func testExactLinearDataIsRecoveredAndPredictedWithR2OfOne() throws {
        let (N, D) = (300, 24)
        let weights = (0..<D).map { Double($0 % 7) - 3 + 0.25 * Double($0) }
        let x = gaussian(N, D, seed: 1), y = linear(x, weights: weights, intercept: 4.5)
        let fit = try RidgeRegression.fit(x: x, y: y, rows: N, columns: D, lambda: 1e-8)
        for d in 0..<D { XCTAssertEqual(fit.weights[d], weights[d], accuracy: 1e-6, "weight \(d)") }
        XCTAssertEqual(fit.intercept, 4.5, accuracy: 1e-6)
        let xTest = gaussian(100, D, seed: 2)
        let r2 = try XCTUnwrap(RidgeRegression.rSquared(predicted: fit.predict(x: xTest, rows: 100),
                                                        actual: linear(xTest, weights: weights, intercept: 4.5)))
        XCTAssertGreaterThan(r2, 1 - 1e-9)
    }

    /// The ridge optimum satisfies Xcᵀ(yc − Xc w) = λ w: checked in plain Swift loops, not through
    /// the BLAS/LAPACK path that computed w.
    func testSolutionSatisfiesTheNormalEquations() throws {
        let (N, D) = (80, 30)
        let x = gaussian(N, D, seed: 3), y = gaussian(N, 1, seed: 4).map { 2 + $0 }
        for lambda in [0.5, 10, 1_000] {
            let fit = try RidgeRegression.fit(x: x, y: y, rows: N, columns: D, lambda: lambda)
            let means = (0..<D).map { d in (0..<N).reduce(0) { $0 + x[$1 * D + d] } / Double(N) }
            let yMean = y.reduce(0, +) / Double(N)
            let residual = (0..<N).map { n in (y[n] - yMean) - (0..<D).reduce(0) { $0 + (x[n * D + $1] - means[$1]) * fit.weights[$1] } }
            for d in 0..<D {
                let gradient = (0..<N).reduce(0) { $0 + (x[$1 * D + d] - means[d]) * residual[$1] }
                XCTAssertEqual(gradient, lambda * fit.weights[d], accuracy: 1e-8 * max(1, abs(lambda * fit.weights[d])), "λ \(lambda), d \(d)")
            }
            XCTAssertEqual(fit.intercept, yMean - zip(means, fit.weights).reduce(0) { $0 + $1.0 * $1.1 }, accuracy: 1e-10)
        }
    }

    /// A target unrelated to X: the probe, λ chosen by cross-validation, explains nothing on
    /// held-out rows (R² near 0 or below), and cross-validation prefers heavy shrinkage.
    func testNoiseGivesNoHeldOutR2AndAHeavyPenalty() throws {
        let (N, D) = (200, 40)
        let x = gaussian(N, D, seed: 5), y = gaussian(N, 1, seed: 6)
        let lambdas = [0.01, 0.1, 1, 10, 100, 1_000, 10_000, 100_000]
        let validation = try RidgeRegression.crossValidate(x: x, y: y, rows: N, columns: D, lambdas: lambdas, folds: (0..<N).map { $0 % 5 })
        XCTAssertGreaterThanOrEqual(validation.best, 100, "\(validation)")
        let fit = try RidgeRegression.fit(x: x, y: y, rows: N, columns: D, lambda: validation.best)
        let xTest = gaussian(200, D, seed: 7), yTest = gaussian(200, 1, seed: 8)
        let r2 = try XCTUnwrap(RidgeRegression.rSquared(predicted: fit.predict(x: xTest, rows: 200), actual: yTest))
        XCTAssertLessThan(r2, 0.02)
        // Without the penalty the same fit does worse on new rows than predicting the mean.
        let loose = try RidgeRegression.fit(x: x, y: y, rows: N, columns: D, lambda: 1e-6)
        XCTAssertLessThan(try XCTUnwrap(RidgeRegression.rSquared(predicted: loose.predict(x: xTest, rows: 200), actual: yTest)), 0)
    }

    /// A linear signal with a little noise: cross-validation picks a small λ, the errors grow
    /// with λ past it, and the weights shrink monotonically as λ grows.
    func testCrossValidationPrefersLittleShrinkageOnASignal() throws {
        let (N, D) = (200, 20)
        let weights = (0..<D).map { Double($0) / 10 - 1 }
        var rng = RandomSource(seed: 9)
        let x = gaussian(N, D, seed: 10), y = linear(x, weights: weights, intercept: 0).map { $0 + 0.1 * Double(rng.nextNormal()) }
        let lambdas = [0.01, 0.1, 1, 10, 100, 1_000, 10_000]
        let validation = try RidgeRegression.crossValidate(x: x, y: y, rows: N, columns: D, lambdas: lambdas, folds: (0..<N).map { $0 % 5 })
        XCTAssertLessThanOrEqual(validation.best, 1, "\(validation)")
        XCTAssertEqual(validation.meanSquaredErrors.count, lambdas.count)
        for k in 3..<lambdas.count { XCTAssertGreaterThan(validation.meanSquaredErrors[k], validation.meanSquaredErrors[k - 1], "\(validation)") }
        let norms = try RidgeRegression.fit(x: x, y: y, rows: N, columns: D, lambdas: lambdas).map { $0.weights.reduce(0) { $0 + $1 * $1 } }
        for k in 1..<norms.count { XCTAssertLessThan(norms[k], norms[k - 1]) }
    }

    func testBadInputsThrowInsteadOfTrapping() {
        let x = gaussian(10, 3, seed: 11), y = gaussian(10, 1, seed: 12)
        XCTAssertThrowsError(try RidgeRegression.fit(x: x, y: y, rows: 10, columns: 3, lambda: 0)) {
            XCTAssertTrue("\($0)".contains("positive"), "\($0)")
        }
        var bad = y
        bad[3] = .nan
        XCTAssertThrowsError(try RidgeRegression.fit(x: x, y: bad, rows: 10, columns: 3, lambda: 1))
        XCTAssertThrowsError(try RidgeRegression.crossValidate(x: x, y: y, rows: 10, columns: 3, lambdas: [1], folds: Array(repeating: 0, count: 10)))
        XCTAssertNil(RidgeRegression.rSquared(predicted: [1, 2, 3], actual: [5, 5, 5]))
        XCTAssertEqual(RidgeRegression.rSquared(predicted: [2, 2, 2], actual: [1, 2, 3]), 0)
    }
}
