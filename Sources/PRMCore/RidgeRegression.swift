import CBLAS
import Foundation

/// Ridge regression y ≈ X·w + b in double precision: minimises ‖y − X·w − b‖² + λ‖w‖², the
/// intercept b unpenalised.
///
/// X and y are centred, so b = ȳ − x̄·w and w solves the normal equations
/// (XcᵀXc + λI) w = Xcᵀyc. XcᵀXc is symmetric positive definite for λ > 0, so the solve is
/// LAPACK's Cholesky (`dposv`: `dpotrf` then `dpotrs`) from the OpenBLAS the package already
/// links; the Gram matrix is formed once and shared by every λ of a grid. Linear probes
/// (`prm probe`) use it; D is a model's width (hundreds), so a solve is a few milliseconds.
public struct RidgeRegression: Sendable, Equatable {
    /// (D)
    public let weights: [Double]
    public let intercept: Double
    public let lambda: Double

    /// A solve that did not succeed: a non-positive λ, or a matrix LAPACK could not factor
    /// (only possible with non-finite inputs once λ > 0).
    public struct Failure: Error, CustomStringConvertible, Sendable {
        public let description: String
        public init(_ description: String) { self.description = description }
    }

    public init(weights: [Double], intercept: Double, lambda: Double) {
        self.weights = weights
        self.intercept = intercept
        self.lambda = lambda
    }

    /// One fit per λ in `lambdas`, in that order, from one Gram matrix.
    /// - Parameters:
    ///   - x: (N, D) row-major.
    ///   - y: (N)
    public static func fit(x: [Double], y: [Double], rows N: Int, columns D: Int, lambdas: [Double]) throws -> [RidgeRegression] {
        precondition(x.count == N * D && y.count == N, "x must be (N, D) and y (N)")
        guard N >= 1, D >= 1 else { throw Failure("ridge regression needs at least one row and one column (got \(N) × \(D))") }
        if let bad = lambdas.first(where: { !($0 > 0) || !$0.isFinite }) {
            throw Failure("ridge λ must be positive and finite, got \(bad)")
        }
        guard x.allSatisfy(\.isFinite), y.allSatisfy(\.isFinite) else { throw Failure("ridge regression inputs are not all finite") }
        // Column means x̄ (D) and ȳ; Xc = X − x̄ (N, D), yc = y − ȳ (N).
        var means = [Double](repeating: 0, count: D)
        for n in 0..<N { for d in 0..<D { means[d] += x[n * D + d] } }
        for d in 0..<D { means[d] /= Double(N) }
        let yMean = y.reduce(0, +) / Double(N)
        var xc = x
        for n in 0..<N { for d in 0..<D { xc[n * D + d] -= means[d] } }
        let yc = y.map { $0 - yMean }
        // G = Xcᵀ Xc (D, D), r = Xcᵀ yc (D).
        var gram = [Double](repeating: 0, count: D * D)
        var rhs = [Double](repeating: 0, count: D)
        cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Int32(D), Int32(D), Int32(N), 1, xc, Int32(D), xc, Int32(D), 0, &gram, Int32(D))
        cblas_dgemv(CblasRowMajor, CblasTrans, Int32(N), Int32(D), 1, xc, Int32(D), yc, 1, 0, &rhs, 1)
        return try lambdas.map { lambda in
            let w = try solve(gram: gram, rhs: rhs, size: D, lambda: lambda)
            let b = yMean - zip(w, means).reduce(0) { $0 + $1.0 * $1.1 }
            return RidgeRegression(weights: w, intercept: b, lambda: lambda)
        }
    }

    /// One fit at one λ.
    public static func fit(x: [Double], y: [Double], rows N: Int, columns D: Int, lambda: Double) throws -> RidgeRegression {
        try fit(x: x, y: y, rows: N, columns: D, lambdas: [lambda])[0]
    }

    /// (G + λI) w = r by Cholesky. G is symmetric, so row- and column-major are the same matrix.
    static func solve(gram: [Double], rhs: [Double], size D: Int, lambda: Double) throws -> [Double] {
        var a = gram, b = rhs
        for d in 0..<D { a[d * D + d] += lambda }
        var n = Int32(D), nrhs: Int32 = 1, lda = Int32(D), ldb = Int32(D), info: Int32 = 0
        var uplo = CChar(UInt8(ascii: "U"))
        dposv_(&uplo, &n, &nrhs, &a, &lda, &b, &ldb, &info, 1)
        guard info == 0 else {
            throw Failure(info < 0 ? "dposv: argument \(-info) is invalid"
                                   : "dposv: the ridge matrix is not positive definite (leading minor \(info), λ \(lambda))")
        }
        return b
    }

    /// The prediction for one row (D).
    public func predict(_ row: UnsafeBufferPointer<Double>) -> Double {
        precondition(row.count == weights.count, "a row must have \(weights.count) columns")
        return zip(row, weights).reduce(intercept) { $0 + $1.0 * $1.1 }
    }

    /// Predictions for (N, D) row-major `x`.
    public func predict(x: [Double], rows N: Int) -> [Double] {
        let D = weights.count
        precondition(x.count == N * D, "x must be (N, \(D))")
        return x.withUnsafeBufferPointer { p in
            (0..<N).map { n in predict(UnsafeBufferPointer(rebasing: p[(n * D)..<(n * D + D)])) }
        }
    }

    /// What k-fold cross-validation found: the mean squared error of each λ over the held-out
    /// folds (every row predicted once, by the fit on the other folds), and the λ with the least.
    public struct CrossValidation: Sendable, Equatable {
        public let lambdas: [Double]
        /// (lambdas.count)
        public let meanSquaredErrors: [Double]
        public var best: Double { lambdas[meanSquaredErrors.indices.min { meanSquaredErrors[$0] < meanSquaredErrors[$1] } ?? 0] }
    }

    /// Chooses λ from `lambdas` by cross-validation; `folds[n]` in 0..<k says which fold row n is
    /// held out in (the caller assigns them, e.g. so that related rows share a fold). Folds with
    /// no rows, or that leave no rows to fit on, are skipped.
    public static func crossValidate(x: [Double], y: [Double], rows N: Int, columns D: Int, lambdas: [Double],
                                     folds: [Int]) throws -> CrossValidation {
        precondition(folds.count == N, "one fold index per row")
        guard !lambdas.isEmpty else { throw Failure("cross-validation needs at least one λ") }
        var squaredErrors = [Double](repeating: 0, count: lambdas.count)
        var predicted = 0
        for fold in Set(folds).sorted() {
            let held = (0..<N).filter { folds[$0] == fold }, kept = (0..<N).filter { folds[$0] != fold }
            guard !kept.isEmpty, !held.isEmpty else { continue }
            let fits = try fit(x: rows(kept, of: x, D), y: kept.map { y[$0] }, rows: kept.count, columns: D, lambdas: lambdas)
            let heldX = rows(held, of: x, D)
            for (k, model) in fits.enumerated() {
                for (prediction, n) in zip(model.predict(x: heldX, rows: held.count), held) {
                    squaredErrors[k] += (prediction - y[n]) * (prediction - y[n])
                }
            }
            predicted += held.count
        }
        guard predicted > 0 else { throw Failure("cross-validation needs at least two folds with rows") }
        return CrossValidation(lambdas: lambdas, meanSquaredErrors: squaredErrors.map { $0 / Double(predicted) })
    }

    /// The rows `indices` of (N, D) row-major `x`, in that order.
    static func rows(_ indices: [Int], of x: [Double], _ D: Int) -> [Double] {
        var out = [Double]()
        out.reserveCapacity(indices.count * D)
        for n in indices { out += x[(n * D)..<(n * D + D)] }
        return out
    }

    /// The coefficient of determination 1 − Σ(y − ŷ)² / Σ(y − ȳ)² with ȳ the mean of `actual`:
    /// 1 for a perfect fit, 0 for predicting the mean, negative for worse. Nil when `actual` is
    /// constant (nothing to explain).
    public static func rSquared(predicted: [Double], actual: [Double]) -> Double? {
        precondition(predicted.count == actual.count, "one prediction per value")
        guard !actual.isEmpty else { return nil }
        let mean = actual.reduce(0, +) / Double(actual.count)
        let total = actual.reduce(0) { $0 + ($1 - mean) * ($1 - mean) }
        guard total > 0 else { return nil }
        let residual = zip(predicted, actual).reduce(0) { $0 + ($1.0 - $1.1) * ($1.0 - $1.1) }
        return 1 - residual / total
    }
}
