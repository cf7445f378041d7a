import Foundation
import XCTest
@testable import PRMCore

/// The learning-rate schedule and AdamW against independent Double references.
final class OptimizerTests: XCTestCase {
    // MARK: - Schedule

    func testScheduleWarmupCosineFloor() {
        let peak: Float = 1e-3
        let s = LearningRateSchedule(peak: peak, warmupSteps: 10, totalSteps: 110, floorFraction: 0.1)
        let floor = peak * 0.1
        // nanoGPT's warm-up: lr = peak·(step+1)/(W+1), so step 0 is not 0 and step W is the peak.
        XCTAssertEqual(s.rate(at: 0), peak / 11, accuracy: 1e-10)
        for step in 0..<10 {
            XCTAssertEqual(s.rate(at: step), peak * Float(step + 1) / 11, accuracy: 1e-10, "warm-up step \(step)")
            XCTAssertLessThan(s.rate(at: step), s.rate(at: step + 1), "warm-up must increase at \(step)")
        }
        XCTAssertEqual(s.rate(at: 10), peak, "peak at the end of warm-up")
        XCTAssertEqual(s.rate(at: 60), (peak + floor) / 2, accuracy: 1e-10, "cosine midpoint")
        // A quarter of the way: floor + (1 + cos(π/4))/2 · (peak − floor).
        let quarter = Double(floor) + 0.5 * (1 + cos(Double.pi / 4)) * Double(peak - floor)
        XCTAssertEqual(Double(s.rate(at: 35)), quarter, accuracy: 1e-10)
        for step in [110, 111, 200, 1_000_000] {
            XCTAssertEqual(s.rate(at: step), floor, accuracy: 1e-12, "floor at step \(step)")
        }
        for step in 10..<110 {
            XCTAssertLessThan(s.rate(at: step + 1), s.rate(at: step), "cosine must decrease at \(step)")
        }
        XCTAssertEqual(s.rate(at: -5), s.rate(at: 0), "negative steps count as 0")

        let noWarmup = LearningRateSchedule(peak: 0.5, warmupSteps: 0, totalSteps: 4, floorFraction: 0)
        XCTAssertEqual(noWarmup.rate(at: 0), 0.5)
        XCTAssertEqual(noWarmup.rate(at: 2), 0.25, accuracy: 1e-7)
        XCTAssertEqual(noWarmup.rate(at: 4), 0)
        let constant = LearningRateSchedule.constant(3e-5)
        for step in [0, 1, 17, 100_000] { XCTAssertEqual(constant.rate(at: step), 3e-5) }
        // Warm-up straight into the floor: defined, no division by zero.
        let degenerate = LearningRateSchedule(peak: 1, warmupSteps: 3, totalSteps: 3, floorFraction: 0.25)
        XCTAssertEqual(degenerate.rate(at: 2), 0.75)
        XCTAssertEqual(degenerate.rate(at: 3), 0.25)
    }

    func testScheduleValidationAndCoding() throws {
        let good = LearningRateSchedule(peak: 1e-2, warmupSteps: 5, totalSteps: 50, floorFraction: 0.05)
        XCTAssertNoThrow(try good.validate())
        let bad: [(LearningRateSchedule, String)] = [
            (LearningRateSchedule(peak: -1, warmupSteps: 0, totalSteps: 1), "learning_rate"),
            (LearningRateSchedule(peak: .nan, warmupSteps: 0, totalSteps: 1), "learning_rate"),
            (LearningRateSchedule(peak: 1, warmupSteps: -1, totalSteps: 1), "warmup_steps"),
            (LearningRateSchedule(peak: 1, warmupSteps: 10, totalSteps: 5), "total_steps"),
            (LearningRateSchedule(peak: 1, warmupSteps: 0, totalSteps: 5, floorFraction: 1.5), "min_lr_ratio"),
        ]
        for (schedule, key) in bad {
            XCTAssertThrowsError(try schedule.validate()) { error in
                guard case let OptimizerError.invalidSchedule(k, _, _) = error else {
                    return XCTFail("unexpected error \(error)")
                }
                XCTAssertEqual(k, key)
            }
        }

        let settings = AdamW.GroupSettings(schedule: good, frozen: true)
        let json = try JSONEncoder().encode(settings)
        let text = String(decoding: json, as: UTF8.self)
        for key in ["learning_rate", "warmup_steps", "total_steps", "min_lr_ratio", "frozen"] {
            XCTAssertTrue(text.contains("\"\(key)\""), "missing key \(key) in \(text)")
        }
        XCTAssertEqual(try JSONDecoder().decode(AdamW.GroupSettings.self, from: json), settings)
        // Optional keys take their defaults; an invalid schedule fails on load.
        let minimal = Data(#"{"schedule": {"learning_rate": 0.01, "total_steps": 100}}"#.utf8)
        let decoded = try JSONDecoder().decode(AdamW.GroupSettings.self, from: minimal)
        XCTAssertEqual(decoded, AdamW.GroupSettings(schedule: LearningRateSchedule(
            peak: 0.01, warmupSteps: 0, totalSteps: 100, floorFraction: 0.1), frozen: false))
        let invalid = Data(#"{"learning_rate": 0.01, "warmup_steps": 200, "total_steps": 100}"#.utf8)
        XCTAssertThrowsError(try JSONDecoder().decode(LearningRateSchedule.self, from: invalid))
    }

    // MARK: - AdamW against a Double reference

    /// Odd sizes (vector bodies and scalar tails), a frozen entry between trainable ones, two
    /// adjacent decaying backbone entries that merge into one run.
    func testAdamWMatchesReferenceSmall() {
        var layout = Parameters.Layout()
        _ = layout.add("bb.w1", [5, 7], group: .backbone)                 // decays (backbone matrix)
        _ = layout.add("head.w", [2, 3], group: .head, decays: true)      // frozen
        _ = layout.add("bb.b", [7], group: .backbone)                     // no decay (vector)
        _ = layout.add("bb.w2", [3, 7], group: .backbone)                 // decays
        _ = layout.add("bb.w3", [2, 9], group: .backbone)                 // decays, merges with bb.w2
        _ = layout.add("user.table", [4, 5], group: .user)                // no decay, other lr
        _ = layout.add("user.decayed", [19], group: .user, decays: true)  // decays, other lr
        checkAgainstReference(Parameters(layout), steps: 8)
    }

    /// Large enough that `Parallel` splits the update, the norm and the clipping across cores.
    func testAdamWMatchesReferenceParallel() {
        var layout = Parameters.Layout()
        _ = layout.add("bb.w", [257, 131], group: .backbone)
        _ = layout.add("head.w", [64, 33], group: .head)
        _ = layout.add("bb.b", [131], group: .backbone)
        _ = layout.add("user.table", [300, 17], group: .user)
        let parameters = Parameters(layout)
        if Parallel.cores > 1 {
            XCTAssertGreaterThan(Parallel.chunkCount(parameters.count - 64 * 33, costPerItem: 8), 1,
                                 "the test must exercise the parallel path")
        }
        checkAgainstReference(parameters, steps: 3)
    }

    static let groupsForReference: [Parameters.Group: AdamW.GroupSettings] = [
        .backbone: .init(schedule: LearningRateSchedule(peak: 0.05, warmupSteps: 2, totalSteps: 6, floorFraction: 0.2)),
        .user: .init(schedule: LearningRateSchedule(peak: 0.02, warmupSteps: 0, totalSteps: 4, floorFraction: 0.5)),
        .head: .init(schedule: .constant(1), frozen: true),
    ]

    func checkAgainstReference(_ parameters: Parameters, steps: Int,
                               file: StaticString = #filePath, line: UInt = #line) {
        var rng = RandomSource(seed: 42)
        fill(parameters.values.data, parameters.count, &rng)
        let groups = Self.groupsForReference
        let adam = AdamW(parameters: parameters, groups: groups)
        adam.weightDecay = 0.1
        let initial = parameters.values.array

        var reference = ReferenceAdamW(parameters: parameters, groups: groups, weightDecay: 0.1)
        for step in 0..<steps {
            fill(parameters.grads.data, parameters.count, &rng, scale: step == 3 ? 10 : 1)
            let grads = parameters.grads.array
            reference.update(grads: grads.map(Double.init))
            XCTAssertEqual(adam.learningRate(.backbone), groups[.backbone]!.schedule.rate(at: step), file: file, line: line)
            XCTAssertEqual(adam.learningRate(.head), 0, file: file, line: line)
            adam.update()
            XCTAssertEqual(adam.step, step + 1, file: file, line: line)
            XCTAssertEqual(parameters.grads.array, grads, "update() must not touch the gradients", file: file, line: line)

            var worst = (p: 0.0, m: 0.0, v: 0.0)
            for i in 0..<parameters.count {
                worst.p = max(worst.p, abs(Double(parameters.values[i]) - reference.p[i]) / max(1, abs(reference.p[i])))
                // m can cancel towards 0, so its error is measured against the same average
                // of |g| (its condition); v is a sum of positive terms, so plainly relative.
                worst.m = max(worst.m, abs(Double(adam.m[i]) - reference.m[i]) / max(1e-30, reference.mScale[i]))
                worst.v = max(worst.v, abs(Double(adam.v[i]) - reference.v[i]) / max(1e-30, reference.v[i]))
            }
            XCTAssertLessThan(worst.p, 1e-6, "parameters after step \(step + 1)", file: file, line: line)
            XCTAssertLessThan(worst.m, 1e-6, "m after step \(step + 1)", file: file, line: line)
            XCTAssertLessThan(worst.v, 1e-6, "v after step \(step + 1)", file: file, line: line)
        }
        // Frozen: values bit-identical, moments still zero.
        for e in parameters.entries where e.group == .head {
            for i in e.offset..<e.offset + e.count {
                XCTAssertEqual(parameters.values[i].bitPattern, initial[i].bitPattern, "frozen \(e.name) moved", file: file, line: line)
                XCTAssertEqual(adam.m[i], 0, file: file, line: line)
                XCTAssertEqual(adam.v[i], 0, file: file, line: line)
            }
        }
        // Every trainable entry moved by far more than the tolerance, so the comparison has teeth.
        for e in parameters.entries where e.group != .head {
            let moved = (e.offset..<e.offset + e.count).reduce(0) { $0 + abs(parameters.values[$1] - initial[$1]) }
            XCTAssertGreaterThan(moved / Float(e.count), 1e-3, "\(e.name) barely moved", file: file, line: line)
        }
    }

    // MARK: - Convergence

    /// Least squares min ½‖Ax − b‖²/n, x split over two groups (with a frozen bystander):
    /// AdamW with warm-up, cosine decay and clipping ends at the normal-equations solution.
    func testAdamWMinimisesLeastSquares() {
        let (n, d) = (40, 6)
        var rng = RandomSource(seed: 7)
        let a = (0..<n * d).map { _ in Double(rng.nextNormal()) }
        let b = (0..<n).map { _ in Double(rng.nextNormal()) * 3 }

        var layout = Parameters.Layout()
        _ = layout.add("bb.x", [4], group: .backbone, decays: false)
        _ = layout.add("head.bystander", [5], group: .head)
        _ = layout.add("user.x", [2], group: .user)
        let parameters = Parameters(layout)
        let bystander = parameters.entries[1].offset
        for i in 0..<5 { parameters.values[bystander + i] = Float(i) }
        let slots = [0, 1, 2, 3, 9, 10]  // where x's six coordinates live in the flat buffer
        let total = 3000
        let adam = AdamW(parameters: parameters, groups: [
            .backbone: .init(schedule: LearningRateSchedule(peak: 0.1, warmupSteps: 20, totalSteps: total, floorFraction: 0.01)),
            .user: .init(schedule: LearningRateSchedule(peak: 0.05, warmupSteps: 0, totalSteps: total, floorFraction: 0.01)),
            .head: .init(schedule: .constant(1), frozen: true),
        ])

        func residuals(_ x: [Double]) -> [Double] {
            (0..<n).map { r in (0..<d).reduce(-b[r]) { $0 + a[r * d + $1] * x[$1] } }
        }
        func loss(_ x: [Double]) -> Double { residuals(x).reduce(0) { $0 + $1 * $1 } / Double(2 * n) }
        for _ in 0..<total {
            let x = slots.map { Double(parameters.values[$0]) }
            let r = residuals(x)
            parameters.zeroGrad()
            for j in 0..<d {
                parameters.grads[slots[j]] = Float((0..<n).reduce(0.0) { $0 + a[$1 * d + j] * r[$1] } / Double(n))
            }
            parameters.grads[bystander] = 1  // a frozen gradient must not matter
            adam.clipGradients(maxNorm: 1)
            adam.update()
        }

        let optimum = solveNormalEquations(a, b, n: n, d: d)
        let x = slots.map { Double(parameters.values[$0]) }
        let initialLoss = loss([Double](repeating: 0, count: d))
        XCTAssertGreaterThan(initialLoss - loss(optimum), 0.1, "the problem must not start at its optimum")
        for j in 0..<d {
            XCTAssertEqual(x[j], optimum[j], accuracy: 1e-3, "x[\(j)]")
        }
        XCTAssertLessThan(loss(x) - loss(optimum), 1e-6 * loss(optimum))
        for i in 0..<5 { XCTAssertEqual(parameters.values[bystander + i], Float(i)) }
    }

    // MARK: - Clipping

    /// A step with a non-finite loss or gradient changes no weight but advances the step; a good
    /// step in between resets the count; the third bad step in a row stops the run, naming it.
    func testGuardedUpdateSkipsNonFiniteStepsAndStopsAfterThreeInARow() throws {
        var layout = Parameters.Layout()
        _ = layout.add("bb.w", [8], group: .backbone)
        let parameters = Parameters(layout)
        let adam = AdamW(parameters: parameters, groups: [.backbone: .init(schedule: .constant(0.1))])
        let update = GuardedUpdate(optimizer: adam, maxNorm: 1, advice: "Lower --lr")
        var rng = RandomSource(seed: 5)
        fill(parameters.values.data, parameters.count, &rng)
        func step(loss: Float, gradient: Float) throws {
            for i in 0..<parameters.count { parameters.grads[i] = gradient }
            try update.apply(loss: loss, label: "step \(adam.step + 1)")
            parameters.zeroGrad()
        }
        let before = parameters.values.array
        try step(loss: .nan, gradient: 1)
        try step(loss: 1, gradient: .infinity)
        XCTAssertEqual(parameters.values.array, before, "a skipped step changed the weights")
        XCTAssertEqual(adam.step, 2)
        XCTAssertEqual(update.skipped, 2)
        try step(loss: 1, gradient: 1)
        XCTAssertNotEqual(parameters.values.array, before)
        try step(loss: .nan, gradient: 1)
        try step(loss: .nan, gradient: 1)
        XCTAssertThrowsError(try step(loss: 1, gradient: .nan)) { error in
            XCTAssertTrue("\(error)".hasPrefix("3 updates in a row had a non-finite loss or gradient norm (last at step 6:"), "\(error)")
            XCTAssertTrue("\(error)".hasSuffix("stopping. Lower --lr"), "\(error)")
        }
        XCTAssertEqual(update.skipped, 5)
        XCTAssertTrue(parameters.firstNonFinite() == nil)
        parameters.values[3] = .nan
        XCTAssertEqual(parameters.firstNonFinite()?.name, "bb.w")
        XCTAssertEqual(parameters.firstNonFinite()?.index, 3)
    }

    func testGradientNormAndClipping() {
        var layout = Parameters.Layout()
        _ = layout.add("bb.w", [40, 41], group: .backbone)
        _ = layout.add("head.w", [10], group: .head)
        _ = layout.add("user.table", [30, 7], group: .user)
        let parameters = Parameters(layout)
        let adam = AdamW(parameters: parameters, groups: [
            .backbone: .init(schedule: .constant(1e-3)),
            .user: .init(schedule: .constant(1e-2)),
            .head: .init(schedule: .constant(1), frozen: true),
        ])
        var rng = RandomSource(seed: 3)
        fill(parameters.grads.data, parameters.count, &rng)
        let frozen = parameters.entries[1]
        for i in frozen.offset..<frozen.offset + frozen.count { parameters.grads[i] = 100 }
        let original = parameters.grads.array
        let isFrozen = (0..<parameters.count).map { frozen.offset..<frozen.offset + frozen.count ~= $0 }
        let norm = zip(original, isFrozen).reduce(0.0) { $1.1 ? $0 : $0 + Double($1.0) * Double($1.0) }.squareRoot()
        XCTAssertGreaterThan(norm, 10)

        XCTAssertEqual(Double(adam.gradientNorm()), norm, accuracy: 1e-6 * norm, "frozen gradients excluded")

        // Below the bound: untouched, bit for bit.
        XCTAssertEqual(Double(adam.clipGradients(maxNorm: Float(norm * 2))), norm, accuracy: 1e-6 * norm)
        XCTAssertEqual(parameters.grads.array, original)
        // Clipping off (maxNorm ≤ 0): untouched.
        adam.clipGradients(maxNorm: 0)
        XCTAssertEqual(parameters.grads.array, original)

        // Above: scaled by maxNorm / norm; returns the norm before clipping.
        let maxNorm = Float(norm / 4)
        XCTAssertEqual(Double(adam.clipGradients(maxNorm: maxNorm)), norm, accuracy: 1e-6 * norm)
        XCTAssertEqual(adam.gradientNorm(), maxNorm, accuracy: 1e-5 * maxNorm)
        XCTAssertLessThanOrEqual(adam.gradientNorm(), maxNorm * (1 + 1e-6))
        let scale = Double(maxNorm) / norm
        for i in 0..<parameters.count {
            if isFrozen[i] {
                XCTAssertEqual(parameters.grads[i], 100, "frozen gradient \(i) was scaled")
            } else {
                XCTAssertEqual(Double(parameters.grads[i]), Double(original[i]) * scale,
                               accuracy: 1e-6 * abs(Double(original[i])) + 1e-12, "gradient \(i)")
            }
        }

        // A NaN in a frozen gradient does not matter; in a trainable one it is reported, and
        // the gradients are left as they are for the caller to skip the step.
        parameters.grads[frozen.offset] = .nan
        XCTAssertTrue(adam.gradientNorm().isFinite)
        let before = parameters.grads.array
        parameters.grads[5] = .nan
        XCTAssertTrue(adam.clipGradients(maxNorm: 1e-3).isNaN)
        for i in 0..<parameters.count where i != 5 {
            XCTAssertEqual(parameters.grads[i].bitPattern, before[i].bitPattern)
        }
    }

    func testGradientNormParallel() {
        var layout = Parameters.Layout()
        _ = layout.add("user.table", [999, 101], group: .user)
        _ = layout.add("head.w", [77], group: .head)
        _ = layout.add("bb.w", [13, 17], group: .backbone)
        let parameters = Parameters(layout)
        let adam = AdamW(parameters: parameters, groups: [
            .backbone: .init(schedule: .constant(1e-3)), .user: .init(schedule: .constant(1e-2)),
            .head: .init(schedule: .constant(1), frozen: true),
        ])
        var rng = RandomSource(seed: 11)
        fill(parameters.grads.data, parameters.count, &rng)
        var sum = 0.0
        for e in parameters.entries where e.group != .head {
            for i in e.offset..<e.offset + e.count { sum += Double(parameters.grads[i]) * Double(parameters.grads[i]) }
        }
        XCTAssertEqual(Double(adam.gradientNorm()), sum.squareRoot(), accuracy: 1e-6 * sum.squareRoot())
        adam.clipGradients(maxNorm: 2)
        XCTAssertEqual(adam.gradientNorm(), 2, accuracy: 1e-5)
    }

    // MARK: - Checkpoint state

    func testRestoreGivesBitIdenticalUpdates() throws {
        func makeParameters() -> Parameters {
            var layout = Parameters.Layout()
            _ = layout.add("bb.w", [203, 171], group: .backbone)
            _ = layout.add("head.w", [9, 9], group: .head)
            _ = layout.add("bb.b", [171], group: .backbone)
            _ = layout.add("user.table", [50, 13], group: .user)
            return Parameters(layout)
        }
        let groups: [Parameters.Group: AdamW.GroupSettings] = [
            .backbone: .init(schedule: LearningRateSchedule(peak: 3e-3, warmupSteps: 3, totalSteps: 8)),
            .user: .init(schedule: LearningRateSchedule(peak: 1e-2, warmupSteps: 0, totalSteps: 8)),
            .head: .init(schedule: .constant(1), frozen: true),
        ]
        func setGradients(_ p: Parameters, step: Int) {
            var rng = RandomSource(seed: UInt64(1000 + step))
            fill(p.grads.data, p.count, &rng)
        }

        let first = makeParameters()
        var rng = RandomSource(seed: 5)
        fill(first.values.data, first.count, &rng)
        let uninterrupted = AdamW(parameters: first, groups: groups)
        for step in 0..<4 {
            setGradients(first, step: step)
            uninterrupted.clipGradients(maxNorm: 50)
            uninterrupted.update()
        }
        let (savedStep, savedM, savedV, savedValues) = (uninterrupted.step, uninterrupted.m.array,
                                                        uninterrupted.v.array, first.values.array)

        func resumed(step: Int) throws -> (Parameters, AdamW) {
            let p = makeParameters()
            savedValues.withUnsafeBufferPointer { p.values.data.update(from: $0.baseAddress!, count: p.count) }
            let adam = AdamW(parameters: p, groups: groups)
            try savedM.withUnsafeBufferPointer { m in
                try savedV.withUnsafeBufferPointer { v in
                    try adam.restore(step: step, m: m.baseAddress!, v: v.baseAddress!, count: m.count)
                }
            }
            return (p, adam)
        }
        let (second, restored) = try resumed(step: savedStep)
        let (third, wrongStep) = try resumed(step: 0)
        for step in 4..<8 {
            for (p, adam) in [(first, uninterrupted), (second, restored), (third, wrongStep)] {
                setGradients(p, step: step)
                adam.clipGradients(maxNorm: 50)
                adam.update()
            }
        }
        XCTAssertEqual(restored.step, uninterrupted.step)
        XCTAssertEqual(mismatches(second.values, first.values), 0, "parameters after resuming")
        XCTAssertEqual(mismatches(restored.m, uninterrupted.m), 0, "m after resuming")
        XCTAssertEqual(mismatches(restored.v, uninterrupted.v), 0, "v after resuming")
        // The step is part of the state: resuming at the wrong step diverges.
        XCTAssertGreaterThan(mismatches(third.values, first.values), first.count / 2)

        // Bad states throw clear errors and leave the optimizer as it was.
        let short = [Float](repeating: 0, count: 10)
        XCTAssertThrowsError(try restored.restore(step: 1, m: short, v: short, count: short.count)) { error in
            XCTAssertEqual(error as? OptimizerError, .stateSizeMismatch(expected: first.count, got: 10))
            XCTAssertTrue("\(error)".contains("\(first.count)") && "\(error)".contains("10"), "\(error)")
        }
        var badV = savedV
        badV[17] = -1
        XCTAssertThrowsError(try restored.restore(step: 1, m: savedM, v: badV, count: badV.count)) { error in
            XCTAssertEqual(error as? OptimizerError, .invalidState(buffer: "v", index: 17, value: -1))
        }
        XCTAssertThrowsError(try restored.restore(step: -1, m: savedM, v: savedV, count: savedV.count)) { error in
            XCTAssertEqual(error as? OptimizerError, .invalidStep(-1))
        }
        XCTAssertEqual(restored.step, 8)
        XCTAssertEqual(mismatches(restored.m, uninterrupted.m), 0)
    }
}

// MARK: - Helpers

private func fill(_ x: UnsafeMutablePointer<Float>, _ count: Int, _ rng: inout RandomSource, scale: Float = 1) {
    for i in 0..<count { x[i] = rng.nextNormal() * scale }
}

/// Number of floats whose bit patterns differ.
private func mismatches(_ a: Tensor, _ b: Tensor) -> Int {
    precondition(a.count == b.count)
    return (0..<a.count).reduce(0) { $0 + (a[$1].bitPattern == b[$1].bitPattern ? 0 : 1) }
}

/// nanoGPT's get_lr, written out again in Double.
private func referenceRate(_ s: LearningRateSchedule, _ step: Int) -> Double {
    let peak = Double(s.peak), floor = Double(s.peak) * Double(s.floorFraction)
    if step < s.warmupSteps { return peak * Double(step + 1) / Double(s.warmupSteps + 1) }
    if step >= s.totalSteps { return floor }
    let ratio = Double(step - s.warmupSteps) / Double(s.totalSteps - s.warmupSteps)
    return floor + 0.5 * (1 + cos(Double.pi * ratio)) * (peak - floor)
}

/// AdamW as `torch.optim.AdamW` computes it (Loshchilov & Hutter, Algorithm 2 with decoupled
/// decay scaled by the learning rate), float by float in Double, textbook form.
private struct ReferenceAdamW {
    var p: [Double], m: [Double], v: [Double]
    /// m's recursion on |g|: the scale of m's rounding error when its terms cancel.
    var mScale: [Double]
    var t = 0
    // AdamW's defaults as the Float values it actually holds (0.999 is 0.99900001287… in Float,
    // which moves 1 − β2 by 1.3e-5 relative: a difference in the hyperparameter, not the algorithm).
    let beta1 = Double(Float(0.9)), beta2 = Double(Float(0.999)), eps = Double(Float(1e-8))
    let weightDecay: Double
    let schedule: [LearningRateSchedule?]  // per float; nil = frozen
    let decays: [Bool]

    init(parameters: Parameters, groups: [Parameters.Group: AdamW.GroupSettings], weightDecay: Double) {
        p = parameters.values.array.map(Double.init)
        m = [Double](repeating: 0, count: parameters.count)
        v = m
        mScale = m
        self.weightDecay = weightDecay
        var schedule: [LearningRateSchedule?] = [], decays: [Bool] = []
        for e in parameters.entries {
            let settings = groups[e.group]!
            schedule += [LearningRateSchedule?](repeating: settings.frozen ? nil : settings.schedule, count: e.count)
            decays += [Bool](repeating: e.decays, count: e.count)
        }
        self.schedule = schedule
        self.decays = decays
    }

    mutating func update(grads g: [Double]) {
        let lrAtStep = t
        t += 1
        for i in 0..<p.count {
            guard let s = schedule[i] else { continue }
            let lr = referenceRate(s, lrAtStep)
            if decays[i] { p[i] -= lr * weightDecay * p[i] }
            m[i] = beta1 * m[i] + (1 - beta1) * g[i]
            mScale[i] = beta1 * mScale[i] + (1 - beta1) * abs(g[i])
            v[i] = beta2 * v[i] + (1 - beta2) * g[i] * g[i]
            let mHat = m[i] / (1 - pow(beta1, Double(t)))
            let vHat = v[i] / (1 - pow(beta2, Double(t)))
            p[i] -= lr * mHat / (vHat.squareRoot() + eps)
        }
    }
}

/// Solves AᵀA x = Aᵀb (A: n×d row-major) by Gaussian elimination with partial pivoting.
private func solveNormalEquations(_ a: [Double], _ b: [Double], n: Int, d: Int) -> [Double] {
    var m = [[Double]](repeating: [Double](repeating: 0, count: d + 1), count: d)
    for i in 0..<d {
        for j in 0..<d { m[i][j] = (0..<n).reduce(0.0) { $0 + a[$1 * d + i] * a[$1 * d + j] } }
        m[i][d] = (0..<n).reduce(0.0) { $0 + a[$1 * d + i] * b[$1] }
    }
    for col in 0..<d {
        let pivot = (col..<d).max { abs(m[$0][col]) < abs(m[$1][col]) }!
        m.swapAt(col, pivot)
        for row in 0..<d where row != col {
            let f = m[row][col] / m[col][col]
            for k in col...d { m[row][k] -= f * m[col][k] }
        }
    }
    return (0..<d).map { m[$0][d] / m[$0][$0] }
}
