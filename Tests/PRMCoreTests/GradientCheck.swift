import XCTest
@testable import PRMCore

/// Central finite differences against a kernel's analytic backward pass.
///
/// The scalar probed is L = Σ w ⊙ f(x) with a fixed random w, so dL/df = w is the upstream
/// gradient handed to the backward pass. Differences are taken in Float32 (the kernels' precision)
/// with a step large enough to stay above rounding noise, and compared with a relative tolerance.
struct GradientCheck {
    var rng = RandomSource(seed: 1234)

    mutating func tensor(_ shape: [Int], scale: Float = 1) -> Tensor {
        let t = Tensor(shape: shape)
        for i in 0..<t.count { t[i] = rng.nextNormal() * scale }
        return t
    }

    /// Checks `analytic` (the gradient the backward pass accumulated for `input`) against finite
    /// differences of `loss()` (which runs the forward pass on `input`'s current values).
    mutating func check(_ label: String, input: Tensor, analytic: Tensor, step: Float = 1e-2,
                        relativeTolerance: Float = 2e-2, samples: Int = 48,
                        file: StaticString = #filePath, line: UInt = #line, loss: () -> Double) {
        XCTAssertEqual(input.count, analytic.count, "\(label): gradient shape", file: file, line: line)
        let indices = input.count <= samples ? Array(0..<input.count)
            : (0..<samples).map { _ in Int(rng.next() % UInt64(input.count)) }
        var largest: Float = 1e-6
        for i in 0..<analytic.count { largest = max(largest, abs(analytic[i])) }
        var failures = 0
        for i in indices {
            let saved = input[i]
            input[i] = saved + step
            let plus = loss()
            input[i] = saved - step
            let minus = loss()
            input[i] = saved
            let numeric = Float((plus - minus) / Double(2 * step))
            let error = abs(numeric - analytic[i])
            let allowed = relativeTolerance * max(abs(numeric), abs(analytic[i])) + 1e-3 * largest
            if error > allowed {
                failures += 1
                if failures <= 5 {
                    XCTFail("\(label)[\(i)]: analytic \(analytic[i]) vs numeric \(numeric)", file: file, line: line)
                }
            }
        }
        XCTAssertEqual(failures, 0, "\(label): \(failures) of \(indices.count) entries disagree", file: file, line: line)
    }
}

/// Σ w ⊙ out in double precision.
func weightedSum(_ out: Tensor, _ w: Tensor) -> Double {
    var s = 0.0
    for i in 0..<out.count { s += Double(out[i]) * Double(w[i]) }
    return s
}
