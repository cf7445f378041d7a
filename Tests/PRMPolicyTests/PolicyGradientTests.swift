import Foundation
import XCTest
import PRMCore
import PRMModel
import PRMTestSupport
@testable import PRMPolicy

/// The whole policy's backward pass against central finite differences: PPO's loss (clipped
/// policy loss + c·clipped value loss, token means) and SFT's cross-entropy, through the LM head,
/// the value head, the decoder, the word table and the user vectors of several users.
final class PolicyGradientTests: XCTestCase {
    /// Sequences of three users (the generic one included) with a few scored tokens each.
    func sequences(_ rng: inout RandomSource) -> [PolicySequence] {
        // Ids from a small range, so word-table rows repeat and their gradients accumulate.
        func ids(_ n: Int) -> [Int32] { (0..<n).map { _ in Int32(3 + rng.next() % 40) } }
        return [PolicySequence(user: 1, tokens: ids(7), scored: [3, 4, 5, 6]),
                PolicySequence(user: 0, tokens: ids(4), scored: [1, 3]),
                PolicySequence(user: 2, tokens: ids(9), scored: [2, 5, 8])]
    }

    /// Checks sampled entries of every parameter tensor (all of a small one).
    func checkParameters(_ policy: Policy, label: String, loss: () -> Double, file: StaticString = #filePath, line: UInt = #line) {
        let p = policy.parameters
        var rng = RandomSource(seed: 99)
        let largest = p.grads.array.map(abs).max() ?? 0
        XCTAssertGreaterThan(largest, 0, "\(label): no gradient at all", file: file, line: line)
        for (index, entry) in p.entries.enumerated() {
            let handle = Parameters.Handle(index: index)
            let grad = p.grad(handle)
            // Sample where the gradient is nonzero (most word-table rows are untouched) plus a few anywhere.
            let live = (0..<entry.count).filter { grad[$0] != 0 }
            var indices = live.count <= 12 ? live : (0..<12).map { _ in live[Int(rng.next() % UInt64(live.count))] }
            indices += (0..<3).map { _ in Int(rng.next() % UInt64(entry.count)) }
            if entry.name.hasPrefix("value_head") || entry.name == "user.embeddings" {
                XCTAssertFalse(live.isEmpty, "\(label): \(entry.name) got no gradient", file: file, line: line)
            }
            let wrong = FiniteDifferences.disagreements(values: p.value(handle), analytic: grad, indices: indices, step: 1e-2,
                                                        relativeTolerance: 3e-2, absoluteFloor: 1e-3 * largest, loss: loss)
            for d in wrong.prefix(3) { XCTFail("\(label) \(entry.name)\(d)", file: file, line: line) }
        }
    }

    func testPPOLossThroughTheWholePolicy() throws {
        let (policy, _) = try TinyPolicies.policy(users: 2, settings: TinyPolicies.settings(embedding: 8, layers: 2, heads: 2, positions: 32))
        TinyPolicies.randomize(policy, seed: 17)
        var rng = RandomSource(seed: 3)
        let sequences = sequences(&rng)
        let objective = PPOObjective(policy: policy, clipRange: 0.2, valueClipRange: 0.2, valueCoefficient: 0.5)
        // The rollout's own numbers, then old log-probabilities and values moved so that some
        // tokens sit inside the clip range and some well outside it, on both sides.
        let measured = PPOObjective.measure(policy, sequences, scratch: GrowableBuffer())
        let shifts: [Float] = [0.05, -0.6, 0.5, -0.04]
        var samples: [PPOSample] = []
        var k = 0
        for (s, sequence) in sequences.enumerated() {
            let n = sequence.scored.count
            var sample = PPOSample(sequence: sequence, oldLogp: [], oldValues: [], advantages: [], returns: [])
            for t in 0..<n {
                let shift = shifts[k % shifts.count]
                sample.oldLogp.append(measured.logp[s][t] - shift)
                sample.oldValues.append(measured.values[s][t] + shift)
                sample.advantages.append(k % 3 == 0 ? -1 - rng.nextUniform() : 0.5 + rng.nextUniform())
                sample.returns.append(measured.values[s][t] + (k % 2 == 0 ? 1.5 : -1.2))
                k += 1
            }
            samples.append(sample)
        }
        let first = objective.evaluate(samples, backward: false)
        XCTAssertGreaterThan(first.clipFraction, 0.2)
        XCTAssertLessThan(first.clipFraction, 0.8)
        func loss() -> Double {
            let s = objective.evaluate(samples, backward: false)
            return s.policyLoss + 0.5 * s.valueLoss
        }
        policy.parameters.zeroGrad()
        objective.evaluate(samples, backward: true)
        checkParameters(policy, label: "ppo", loss: loss)
    }

    func testCrossEntropyThroughTheWholePolicy() throws {
        let (policy, _) = try TinyPolicies.policy(users: 2, settings: TinyPolicies.settings(embedding: 8, layers: 2, heads: 2, positions: 32))
        TinyPolicies.randomize(policy, seed: 21)
        var rng = RandomSource(seed: 4)
        let sequences = sequences(&rng)
        let trainer = try SFTTrainer(policy: policy, settings: TinyPolicies.settings(embedding: 8, layers: 2, heads: 2, positions: 32),
                                     train: sequences)
        func loss() -> Double { trainer.evaluate(sequences) }
        policy.parameters.zeroGrad()
        let step = trainer.crossEntropyStep(sequences)
        XCTAssertEqual(step.sum / Double(step.count), loss(), accuracy: 1e-5)
        // SFT trains no value: the value head gets no gradient.
        XCTAssertEqual(policy.parameters.grad(policy.valueWeight).pointee, 0)
        let p = policy.parameters
        var rng2 = RandomSource(seed: 7)
        let largest = p.grads.array.map(abs).max() ?? 0
        for (index, entry) in p.entries.enumerated() where !entry.name.hasPrefix("value_head") {
            let handle = Parameters.Handle(index: index)
            let live = (0..<entry.count).filter { p.grad(handle)[$0] != 0 }
            XCTAssertFalse(live.isEmpty, "\(entry.name) got no gradient")
            let indices = (0..<10).map { _ in live[Int(rng2.next() % UInt64(max(live.count, 1)))] }
            let wrong = FiniteDifferences.disagreements(values: p.value(handle), analytic: p.grad(handle), indices: indices, step: 1e-2,
                                                        relativeTolerance: 3e-2, absoluteFloor: 1e-3 * largest, loss: loss)
            for d in wrong.prefix(3) { XCTFail("sft \(entry.name)\(d)") }
        }
    }
}
