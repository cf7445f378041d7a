import Foundation
import XCTest
import PRMCore
import PRMScoring
import PRMTestSupport
import PRMTraining

/// A model whose weights are all finite but whose scores are not (one step at a huge learning
/// rate leaves weights near 1e30) is never written, loaded or served: every score would be null.
final class DivergedModelTests: XCTestCase {
    /// The files a checkpoint folder holds besides the training log (`Checkpoint`, `TrainingState`).
    static let checkpointFiles = ["config.json", "model.safetensors", "tokenizer.json", "users.json",
                                  "optimizer.safetensors", "trainer_state.json"]

    /// The run of issue 14 on the real MiniLM and the built-in data, with and without the refit:
    /// exit 1 naming the non-finite score, and no checkpoint file (nor a temporary one) in --out;
    /// the training log stays, to show how the run diverged.
    func testHugeLearningRateWritesNoCheckpoint() throws {
        let backbone = try TestSupport.miniLMDirectory()
        let data = TestSupport.lengthprefDirectory.appendingPathComponent("train.jsonl")
        for refit in [false, true] {
            let out = try scratchFolder("prm-diverged").appendingPathComponent("q6")
            var arguments = ["train", "--backbone", backbone.path, "--data", data.path, "--limit", "4", "--epochs", "1",
                             "--lr", "1e30", "--out", out.path]
            if !refit { arguments.append("--no-refit-seen") }
            let result = PRM.run(arguments)
            assertFailed(result, command: "train", mentioning: ["not writing a checkpoint", "the weights have diverged", "probe reply"])
            XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: out.path), ["train_log.jsonl"],
                           "refit \(refit): only the training log may be in --out")
        }
    }

    /// A tiny trained checkpoint whose weights are all multiplied by 1e30 (finite, as after the
    /// step above): `prm score --model`, the `Scorer` every server, bench and PPO run loads
    /// through, and `prm adapt` refuse it, naming the checkpoint; adapt writes nothing.
    func testDivergedCheckpointIsRefusedWhenLoaded() throws {
        let folder = try scratchFolder("prm-diverged")
        let (checkpoint, comparisons) = try trainTinyRewardModel(in: folder, comparisonsPerUser: 4)
        let score = ["score", "--model", checkpoint.path, "--user", "user-1", "--prompt", "Human: hi\n\nAssistant:", "Hello.", "Hi there, how can I help?"]
        assertSucceeded(PRM.run(score))

        try scaleWeights(of: checkpoint, by: 1e30)
        assertFailed(PRM.run(score), command: "score", mentioning: [checkpoint.path, "the weights have diverged"])
        XCTAssertThrowsError(try Scorer(checkpoint: checkpoint)) { error in
            XCTAssertTrue("\(error)".contains(checkpoint.path) && "\(error)".contains("the weights have diverged"), "\(error)")
        }
        let adapted = folder.appendingPathComponent("adapted")
        let newcomer = comparisons.prefix(3).map { c in JSONL.object(c).merging(["user_id": "newcomer"]) { $1 } }
        let newData = folder.appendingPathComponent("new.jsonl")
        try JSONL.write(newcomer, to: newData)
        assertFailed(PRM.run("adapt", "--model", checkpoint.path, "--data", newData.path, "--out", adapted.path),
                     command: "adapt", mentioning: [checkpoint.path, "refusing to load", "the weights have diverged"])
        XCTAssertFalse(FileManager.default.fileExists(atPath: adapted.path), "adapt wrote a diverged model")
    }

    /// Rewrites model.safetensors with every value times `factor` (metadata kept).
    func scaleWeights(of checkpoint: URL, by factor: Float) throws {
        let url = checkpoint.appendingPathComponent("model.safetensors")
        let file = try SafetensorsFile(contentsOf: url)
        let tensors = try file.names.map { name in (name, try file.tensor(name)) }
        for (_, tensor) in tensors {
            for i in 0..<tensor.count { tensor.data[i] *= factor }
            XCTAssertTrue(tensor.array.allSatisfy(\.isFinite), "the scaled weights stay finite")
        }
        try withExtendedLifetime(tensors) {
            try SafetensorsWriter.write(tensors.map { SafetensorsWriter.Entry(name: $0.0, tensor: $0.1) }, metadata: file.metadata, to: url)
        }
    }
}
