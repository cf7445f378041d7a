import XCTest
import PRMTestSupport
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
        var seed = rng.next()
        let indices = FiniteDifferences.sample(input.count, samples, seed: &seed)
        let noise = FiniteDifferences.noise(values: input.data, analytic: analytic.data, indices: Array(indices.prefix(8)), step: step, loss: loss)
        let floor = FiniteDifferences.floor(analytic: analytic.data, count: analytic.count, noiseFloor: noise)
        let wrong = FiniteDifferences.disagreements(values: input.data, analytic: analytic.data, indices: indices, step: step,
                                                    relativeTolerance: relativeTolerance, absoluteFloor: floor, loss: loss)
        for d in wrong.prefix(5) { XCTFail("\(label)\(d)", file: file, line: line) }
        let failures = wrong.count
        XCTAssertEqual(failures, 0, "\(label): \(failures) of \(indices.count) entries disagree", file: file, line: line)
    }
}

/// Σ w ⊙ out in double precision.
func weightedSum(_ out: Tensor, _ w: Tensor) -> Double {
    var s = 0.0
    for i in 0..<out.count { s += Double(out[i]) * Double(w[i]) }
    return s
}
