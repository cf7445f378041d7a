import Foundation
import XCTest
import PRMTestSupport
import PRMTraining

/// A model loaded at bf16 or int8 has released its fp32 layer matrices, so nothing may run its
/// training pass: `prm eval --few-shot` on a soft-prompt Llama reward model (whose new users are
/// fitted through the backbone's forward and backward) is refused at --precision int8 with an
/// error naming the precision and what to do, and runs at fp32.
final class LowPrecisionTrainingRefusalTests: XCTestCase {
    func testSoftPromptFewShotIsRefusedAtLowPrecision() throws {
        let folder = try scratchFolder("prm-low-precision-training")
        let checkpoint = try tinyLlamaCheckpoint(in: folder, seed: 7, options: ["--aggregator", "soft-prompt"])
        let unseen = folder.appendingPathComponent("unseen.jsonl")
        try JSONL.write(SyntheticPreferences.twoGroups(users: 2, minorityShare: 0.5, comparisonsPerUser: 3, seed: 8).comparisons
            .map { var c = $0; c.userID = "new-" + c.userID; return c }, to: unseen)
        assertFailed(PRM.run("eval", "--model", checkpoint.path, "--data", unseen.path, "--few-shot", "1", "--precision", "int8"),
                     command: "eval", mentioning: ["soft-prompt", "--precision int8", "load it at fp32"])
        assertSucceeded(PRM.run("eval", "--model", checkpoint.path, "--data", unseen.path, "--few-shot", "1"))
    }
}
