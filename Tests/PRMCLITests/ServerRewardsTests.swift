import Foundation
import XCTest
import PRMCore
import PRMModel
import PRMScoring
import PRMServing
import PRMScoringTestSupport
import PRMTestSupport
import PRMPolicy
@testable import PRMCLI

/// PPO's rewards through a real server on a real socket equal the in-process scores.
final class ServerRewardsTests: XCTestCase {
    func testServerRewardsEqualInProcessScores() throws {
        let scorer = try TinyScorers.linearHead()
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
