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
}
