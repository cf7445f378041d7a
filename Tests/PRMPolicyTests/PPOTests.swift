import Foundation
import XCTest
import PRMCore
import PRMModel
import PRMScoring
import PRMTestSupport
@testable import PRMPolicy

/// The toy reward of issue 10: −|length − target_u|, the reply's length in policy tokens against
/// its user's target. Computed from the text, as a reward model sees replies.
final class LengthTargetReward: RewardSource {
    let targets: [String: Int]
    let format: DialogueFormat
    let name = "length-target"

    init(targets: [String: Int], format: DialogueFormat) {
        self.targets = targets
        self.format = format
    }

    func scores(_ items: [ScoringItem]) throws -> [Float] {
        try items.map { item in
            guard let id = item.userID, let target = targets[id] else { throw PolicyError("no target for user \(item.userID ?? "nil")") }
            return -Float(abs(format.encodeReply(item.response).count - target))
        }
    }
}

/// `LengthTargetReward` that gives one reply of one iteration (every `rollouts` calls make an
/// iteration) the largest finite score: a reward no finite value function can fit.
final class PoisonedReward: RewardSource {
    let base: LengthTargetReward
    let iteration: Int
    private var calls = 0
    let name = "poisoned-length-target"

    init(base: LengthTargetReward, iteration: Int) {
        self.base = base
        self.iteration = iteration
    }

    func scores(_ items: [ScoringItem]) throws -> [Float] {
        var scores = try base.scores(items)
        if calls == iteration { scores[0] = .greatestFiniteMagnitude }
        calls += 1
        return scores
    }
}

/// PPO end to end on a tiny policy: each user's mean reply length moves towards its own target.
final class PPOTests: XCTestCase {
    /// A tiny GPT-2-initialised policy whose replies end at a varied length: LN_f's bias and
    /// <|end|>'s row of the tied table share a direction, so <|end|> gets a logit boost of about
    /// `boost` (plus the hidden state's own component), against a nearly uniform rest.
    func policy(users: Int) throws -> (Policy, UserTable) {
        let (policy, table) = try TinyPolicies.policy(users: users, settings: TinyPolicies.settings(embedding: 32, layers: 1, heads: 2, positions: 96))
        let p = policy.parameters
        let bias = try XCTUnwrap(p.handle(named: "ln_f.bias")), wte = try XCTUnwrap(p.handle(named: "wte.weight"))
        let C = policy.backbone.hiddenSize
        p.value(bias)[0] = 3
        p.value(wte)[Int(policy.format.end) * C] = 1.9
        return (policy, table)
    }

    func testLengthMovesTowardsEachUsersTarget() throws {
        let targets = ["user-1": 2, "user-2": 16]
        let (policy, users) = try policy(users: 2)
        let (reference, referenceUsers) = try self.policy(users: 0)
        let prompts = ["Human: Hi\n\nAssistant:", "What is a cat?", "Tell me a story.", "Human: How do I bake bread?\n\nAssistant:"]
            .flatMap { prompt in targets.keys.map { PPOPrompt(userID: $0, prompt: prompt) } }
        var settings = PPOSettings()
        settings.iterations = 40
        settings.rollouts = 32
        settings.minibatch = 8
        settings.epochs = 4
        settings.learningRate = 3e-3
        settings.userLearningRate = 1e-2
        settings.klCoefficient = 0.01
        settings.maxNewTokens = 20
        settings.valueCoefficient = 0.5
        let trainer = try PPOTrainer(policy: policy, users: users, reference: reference, referenceUsers: referenceUsers, prompts: prompts,
                                     reward: LengthTargetReward(targets: targets, format: policy.format), settings: settings)
        try trainer.run()
        func length(_ entries: ArraySlice<PPOLogEntry>, _ user: String) -> Double {
            entries.map { $0.groups[user]?.lengthTokens ?? .nan }.reduce(0, +) / Double(entries.count)
        }
        let first = trainer.log.prefix(3), last = trainer.log.suffix(5)
        XCTAssertTrue(trainer.log.allSatisfy { $0.groups.keys.sorted() == ["user-1", "user-2"] })
        for (user, target) in targets {
            let before = abs(length(first, user) - Double(target)), after = abs(length(last, user) - Double(target))
            XCTAssertLessThan(after, 0.5 * before, "\(user): |length − \(target)| \(before) → \(after)")
        }
        XCTAssertLessThan(length(last, "user-1"), length(last, "user-2") - 8)
        // The policy moved away from the reference (the KL it pays grew) and the log is complete.
        XCTAssertEqual(trainer.log.first?.kl ?? .nan, 0, accuracy: 1e-4)
        XCTAssertGreaterThan(trainer.log.last?.kl ?? 0, 1)
        XCTAssertTrue(trainer.log.allSatisfy { $0.entropy > 0 && $0.valueLoss.isFinite && (0...1).contains($0.clipFraction) })
    }

    /// Settings for short runs: 8 replies of at most 8 tokens, 2 minibatches, 2 epochs, adaptive β.
    func shortSettings(iterations: Int) -> PPOSettings {
        var settings = PPOSettings()
        settings.iterations = iterations
        settings.rollouts = 8
        settings.minibatch = 4
        settings.epochs = 2
        settings.learningRate = 3e-3
        settings.userLearningRate = 1e-2
        settings.maxNewTokens = 8
        settings.targetKL = 0.5
        settings.klHorizon = 16
        return settings
    }

    static let targets = ["user-1": 2, "user-2": 6]
    static let prompts = ["Human: Hi\n\nAssistant:", "What is a cat?", "Tell me a story."]
        .flatMap { prompt in targets.keys.sorted().map { PPOPrompt(userID: $0, prompt: prompt) } }

    func trainer(_ settings: PPOSettings, policy: Policy, users: UserTable, prompts: [PPOPrompt] = PPOTests.prompts,
                 reward: (any RewardSource)? = nil) throws -> PPOTrainer {
        let (reference, referenceUsers) = try self.policy(users: 0)
        return try PPOTrainer(policy: policy, users: users, reference: reference, referenceUsers: referenceUsers, prompts: prompts,
                              reward: reward ?? LengthTargetReward(targets: Self.targets, format: policy.format), settings: settings)
    }

    /// What an iteration's log entry measured, timings left out.
    func measured(_ entry: PPOLogEntry) -> [Double] {
        [Double(entry.iteration), entry.reward, entry.lengthTokens, entry.lengthWords, entry.kl, Double(entry.klCoefficient), entry.entropy,
         entry.policyLoss, entry.valueLoss, entry.clipFraction, Double(entry.gradientNorm)]
            + entry.groups.sorted { $0.key < $1.key }.flatMap { [Double($0.value.replies), $0.value.reward, $0.value.lengthTokens] }
    }

    /// Stopped after 2 of 4 iterations, saved, loaded and resumed: the same weights bit for bit
    /// and the same log entries after the stop as an uninterrupted run (draws, sampling seeds and
    /// minibatch orders follow the iteration; AdamW's moments and step and β are restored).
    func testResumeEqualsAnUninterruptedRun() throws {
        let settings = shortSettings(iterations: 4)
        let (wholePolicy, users) = try policy(users: 2)
        let whole = try trainer(settings, policy: wholePolicy, users: users)
        try whole.run()

        let folder = try TestSupport.temporaryDirectory("ppo-resume")
        defer { try? FileManager.default.removeItem(at: folder) }
        let (firstPolicy, _) = try policy(users: 2)
        let first = try trainer(settings, policy: firstPolicy, users: users)
        try first.run(until: 2)
        try PPOState.save(first, dataFile: nil, reference: "reference", to: folder)

        let state = try PPOState.load(from: folder)
        XCTAssertEqual(state.iteration, 2)
        XCTAssertNotEqual(state.kl.coefficient, settings.klCoefficient, "β moved, so restoring it matters")
        let (restored, restoredUsers, training) = try PolicyCheckpoint.load(folder)
        XCTAssertEqual(training["iteration"] as? Int, 2)
        let resumed = try trainer(state.settings, policy: restored, users: restoredUsers)
        try state.restore(into: resumed, from: folder)
        XCTAssertEqual(resumed.optimizer.step, first.optimizer.step)
        try resumed.run()
        XCTAssertEqual(resumed.iteration, 4)
        XCTAssertEqual(restored.parameters.values.array, wholePolicy.parameters.values.array, "resumed weights differ from the uninterrupted run")
        XCTAssertEqual(resumed.log.map(measured), whole.log.suffix(2).map(measured))

        // Other prompts are refused, naming the folder.
        let other = try trainer(state.settings, policy: restored, users: restoredUsers, prompts: Array(Self.prompts.dropFirst()))
        XCTAssertThrowsError(try state.restore(into: other, from: folder)) { error in
            XCTAssertTrue("\(error)".contains(folder.path) && "\(error)".contains("prompts differ from the run being resumed"), "\(error)")
        }
    }

    /// A minibatch whose loss is not finite (a reply scored with the largest finite Float: its
    /// value loss overflows) is skipped and counted, the run goes on, and every checkpoint it
    /// writes holds finite weights.
    func testPoisonedBatchIsSkippedAndNoNonFiniteCheckpointIsWritten() throws {
        var settings = shortSettings(iterations: 3)
        settings.whitenRewards = false  // whitening would bring the score back to a few units
        settings.checkpointEvery = 1
        let (policy, users) = try self.policy(users: 2)
        let reward = PoisonedReward(base: LengthTargetReward(targets: Self.targets, format: policy.format), iteration: 1)
        let trainer = try trainer(settings, policy: policy, users: users, reward: reward)
        let folder = try TestSupport.temporaryDirectory("ppo-poisoned")
        defer { try? FileManager.default.removeItem(at: folder) }
        var saved = 0
        try trainer.run { _ in
            try PPOState.save(trainer, dataFile: nil, reference: "reference", to: folder)
            let (loaded, _, _) = try PolicyCheckpoint.load(folder)
            XCTAssertNil(loaded.parameters.firstNonFinite(), "a checkpoint holds a non-finite weight")
            saved += 1
        }
        XCTAssertEqual(saved, 3)
        XCTAssertEqual(trainer.skippedUpdates, settings.epochs, "one minibatch per epoch holds the poisoned reply")
        XCTAssertNil(policy.parameters.firstNonFinite())
    }
}
