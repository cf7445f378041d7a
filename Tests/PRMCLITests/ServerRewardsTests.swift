import Foundation
import XCTest
import PRMCore
import PRMModel
import PRMScoring
import PRMServing
import PRMTestSupport
import PRMPolicy
@testable import PRMCLI

/// PPO's rewards through a real server on a real socket equal the in-process scores.
final class ServerRewardsTests: XCTestCase {
    func testServerRewardsEqualInProcessScores() throws {
        let folder = try TinyBackbones.bert()
        let users = UserTable(ids: ["ann", "bob"])
        let config = RewardModelConfig(aggregator: .linearHead,
                                       userModel: UserModelConfig(kind: .individual, tokens: 1, users: users.count, clusters: 2, sharedGeneric: true),
                                       maxLength: 48)
        let model = try RewardModel(backboneConfig: folder.appendingPathComponent("config.json"),
                                    tokenizerFile: folder.appendingPathComponent("tokenizer.json"), config: config)
        Backbones.initializeRandomly(model.parameters, seed: 3)
        model.initializeUserModelAndHead(seed: 3)
        let scorer = Scorer(model: model, users: users)
        var settings = ServerSettings()
        settings.bind = "tcp://127.0.0.1:0"
        settings.modelPath = "tiny"
        let running = try BackgroundServer(try ScoringServer(scorer: scorer, settings: settings))
        defer { try? running.stop(timeout: 20) }

        // More items than one request carries, users known and unknown, and one prompt repeated.
        let items = (0..<10).map { k in
            ScoringItem(userID: ["ann", "bob", nil, "zed"][k % 4], prompt: k % 3 == 0 ? "Human: Hi\n\nAssistant:" : "Human: Question \(k)?\n\nAssistant:",
                        response: String(repeating: "word ", count: k + 1))
        }
        let rewards = try ServerRewards(endpoint: running.endpoint, timeout: 10, retries: 1, itemsPerRequest: 4)
        let expected = scorer.score(items).map(\.score)
        XCTAssertEqual(try rewards.scores(items), expected)
        XCTAssertGreaterThan(Set(expected).count, 5)
    }
}
