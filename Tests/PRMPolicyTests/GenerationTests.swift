import Foundation
import XCTest
import PRMCore
import PRMModel
import PRMTestSupport
@testable import PRMPolicy

/// Generation: the KV-cached, batched, prefix-sharing decoder against the training forward pass
/// recomputed over the whole sequence at every step.
final class GenerationTests: XCTestCase {
    /// A tiny policy with two known users and weights spread enough that greedy choices differ
    /// between users and prompts (and replies do not stop at once).
    func policy() throws -> Policy {
        let (policy, _) = try TinyPolicies.policy(users: 2, settings: TinyPolicies.settings(embedding: 16, layers: 2, heads: 2, positions: 64))
        TinyPolicies.randomize(policy, seed: 21)
        return policy
    }

    let prompts = ["Human: How do I bake bread?\n\nAssistant:", "What is a cat?",
                   "Human: Hi\n\nAssistant: Hello.\n\nHuman: Tell me a story.\n\nAssistant:"]

    /// Greedy decoding without any cache: each next token is the argmax of the training forward
    /// pass's logits over [user ; prompt ; reply so far] (the appended 0 is never attended:
    /// the scored row is the one before it).
    func greedyWithoutCache(_ policy: Policy, user: Int, prompt: [Int32], maxNewTokens: Int) -> [Int32] {
        var reply: [Int32] = []
        let V = policy.vocabularySize
        while reply.count < maxNewTokens {
            let tokens = prompt + reply + [0]
            let out = policy.forward([PolicySequence(user: user, tokens: tokens, scored: [tokens.count - 1])], training: false)
            var best = 0
            for v in 1..<V where out.logits[v] > out.logits[best] { best = v }
            reply.append(Int32(best))
            if Int32(best) == policy.format.end { break }
        }
        return reply
    }

    func testCachedGreedyEqualsRecomputingEveryStep() throws {
        let policy = try policy()
        let settings = SamplingSettings(temperature: 0, maxNewTokens: 20)
        var requests: [GenerationRequest] = []
        for (p, prompt) in prompts.enumerated() {
            for user in 0...2 {
                requests.append(GenerationRequest(user: user, prompt: policy.promptIDs(prompt, maxNewTokens: 20), samples: 2, seed: UInt64(p)))
            }
        }
        let generator = Generator(policy: policy)
        let replies = generator.generate(requests, settings: settings)
        var distinct = Set<[Int32]>()
        for (request, samples) in zip(requests, replies) {
            let expected = greedyWithoutCache(policy, user: request.user, prompt: request.prompt, maxNewTokens: 20)
            XCTAssertEqual(samples, [expected, expected], "user \(request.user)")
            distinct.insert(expected)
        }
        // The comparison means something only if replies are long and differ.
        XCTAssertGreaterThan(distinct.count, 3)
        XCTAssertGreaterThan(generator.decodedTokens, 50)
    }

    /// Each reply draws from its own stream: decoding prompts together or one at a time, with
    /// temperature, top-k and top-p, gives the same replies.
    func testBatchedSamplingEqualsOneAtATime() throws {
        let policy = try policy()
        let settings = SamplingSettings(temperature: 1.3, topK: 50, topP: 0.95, maxNewTokens: 16)
        let requests = prompts.enumerated().map { p, prompt in
            GenerationRequest(user: p % 3, prompt: policy.promptIDs(prompt, maxNewTokens: 16), samples: 3, seed: 100 + UInt64(p))
        }
        let together = Generator(policy: policy).generate(requests, settings: settings)
        let alone = requests.map { Generator(policy: policy).generate([$0], settings: settings)[0] }
        XCTAssertEqual(together, alone)
        // Samples of one prompt differ (their streams do).
        XCTAssertTrue(together.allSatisfy { Set($0).count > 1 })
        XCTAssertTrue(together.joined().allSatisfy { $0.count <= 16 && !$0.isEmpty })
    }

    /// Top-k 1 is greedy whatever the temperature.
    func testTopOneIsGreedy() throws {
        let policy = try policy()
        let request = GenerationRequest(user: 1, prompt: policy.promptIDs(prompts[0], maxNewTokens: 12), samples: 2, seed: 3)
        let greedy = Generator(policy: policy).generate([request], settings: SamplingSettings(temperature: 0, maxNewTokens: 12))
        let topOne = Generator(policy: policy).generate([request], settings: SamplingSettings(temperature: 2, topK: 1, maxNewTokens: 12))
        XCTAssertEqual(greedy, topOne)
    }

    func testSettingsAreValidated() {
        XCTAssertThrowsError(try SamplingSettings(temperature: -1, maxNewTokens: 4).validate())
        XCTAssertThrowsError(try SamplingSettings(temperature: 1, topP: 0, maxNewTokens: 4).validate())
        XCTAssertThrowsError(try SamplingSettings(temperature: 1, maxNewTokens: 0).validate())
        XCTAssertNoThrow(try SamplingSettings(temperature: 0, topK: 3, topP: 0.5, maxNewTokens: 4).validate())
    }
}
