import Foundation
import XCTest
import PRMTestSupport
import PRMModel
import PRMTraining

/// `prm bench reward` on a Llama-family reward model (trained by `prm train` on the tiny random
/// llama of Tests/Fixtures/llama-family): the scores it records for given token ids — what
/// bench/decoder_vs_transformers.py holds transformers' scores against — are the training
/// forward's for the generic user, whether a prompt is shared by several replies or not; and a
/// missing --inputs is a usage error naming it.
final class BenchRewardTests: XCTestCase {
    func testRecordedScoresAreTheTrainingForwardsOnTheSameIDs() throws {
        let folder = try scratchFolder("prm-bench-reward")
        let checkpoint = try tinyLlamaCheckpoint(in: folder, seed: 3, options: ["--reply-counts", "0"])
        let prompt: [Int32] = [72, 117, 109, 97, 110, 58, 32, 104, 105]
        let items: [(prompt: [Int32], reply: [Int32])] = [(prompt, [32, 79, 107]), (prompt, [32, 72, 101, 108, 108, 111, 33]),
                                                          ([], [87, 104, 121, 63]), (prompt, [])]
        let inputs = folder.appendingPathComponent("inputs.json")
        let body: [String: Any] = ["cases": [["name": "shared prompt", "items": items.map { ["prompt": $0.prompt, "reply": $0.reply] }]]]
        try JSONSerialization.data(withJSONObject: body).write(to: inputs)
        let report = folder.appendingPathComponent("reward.json")
        assertSucceeded(PRM.run("bench", "reward", "--reward-model", checkpoint.path, "--inputs", inputs.path, "--repeats", "1",
                                "--json", report.path))
        let recorded = try XCTUnwrap(((JSONSerialization.jsonObject(with: Data(contentsOf: report)) as? [String: Any])?["cases"] as? [[String: Any]])?
            .first?["scores"] as? [Double])
        let model = try Checkpoint.load(checkpoint).model
        let expected = model.forward(items.map { RewardInput(user: 0, prompt: $0.prompt, reply: $0.reply) })
        XCTAssertEqual(recorded.count, expected.count)
        for (got, want) in zip(recorded, expected) { XCTAssertEqual(Float(got), want, accuracy: 1e-5 * max(1, abs(want))) }
        assertUsageError(PRM.run("bench", "reward", "--reward-model", checkpoint.path), command: "bench", message: "missing required option --inputs")
    }
}
