import Foundation
import XCTest
import PRMTestSupport
import PRMTraining

/// Every trap in training that input can reach is an error naming its cause, never a crash, a
/// silent NaN or a wrong result: one test each, through `prm train` on a tiny BERT.
final class TrainTrapTests: XCTestCase {
    /// A tiny BERT folder and 40 synthetic comparisons (4 users).
    func setUpRun(config: [String: Any] = TinyBert.config) throws -> (backbone: URL, data: URL, out: URL, comparisons: [Comparison]) {
        let folder = try scratchFolder("prm-traps")
        let backbone = folder.appendingPathComponent("tiny-bert")
        try TinyBert.makeFolder(backbone)
        try JSONSerialization.data(withJSONObject: config).write(to: backbone.appendingPathComponent("config.json"))
        let comparisons = SyntheticPreferences.twoGroups(users: 4, minorityShare: 0.25, comparisonsPerUser: 10, seed: 5).comparisons
        let data = folder.appendingPathComponent("pairs.jsonl")
        try JSONL.write(comparisons, to: data)
        return (backbone, data, folder.appendingPathComponent("run"), comparisons)
    }

    /// `prm train` on the run's folders; `extra` ("--option", "value", ...) overrides the small defaults.
    func train(_ run: (backbone: URL, data: URL, out: URL, comparisons: [Comparison]), _ extra: String...) -> CommandResult {
        var arguments = ["train", "--backbone", run.backbone.path, "--data", run.data.path, "--out", run.out.path]
        for (option, value) in [("--epochs", "1"), ("--max-length", "64"), ("--batch-size", "8")] where !extra.contains(option) {
            arguments += [option, value]
        }
        return PRM.run(arguments + extra)
    }

    // MARK: - Non-finite training

    /// A rate that blows the weights up: the non-finite steps are skipped and counted, the run
    /// stops after three in a row naming the cause, the log keeps those lines (NaN as null),
    /// and no checkpoint is written.
    func testDivergingRunStopsWithoutACheckpoint() throws {
        let run = try setUpRun()
        let result = train(run, "--lr", "1e30", "--user-lr", "1e30", "--log-every", "1", "--batch-size", "4", "--epochs", "2")
        assertFailed(result, command: "train", mentioning: ["3 updates in a row had a non-finite loss or gradient norm", "stopping"])
        XCTAssertFalse(FileManager.default.fileExists(atPath: run.out.appendingPathComponent("model.safetensors").path),
                       "a checkpoint was written for a diverged run")
        let log = try String(contentsOf: run.out.appendingPathComponent("train_log.jsonl"), encoding: .utf8)
        let entries = try log.split(separator: "\n").map { try XCTUnwrap(JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]) }
        XCTAssertGreaterThanOrEqual(entries.count, 3, log)
        XCTAssertTrue(entries.contains { $0["loss"] is NSNull || $0["gradient_norm"] is NSNull }, "non-finite values are logged as null\n\(log)")
        XCTAssertGreaterThanOrEqual(entries.compactMap { $0["skipped_updates"] as? Int }.max() ?? 0, 2, log)
    }

    // MARK: - Input

    /// User text and 63 user tokens in a 128-token window on a 128-position backbone: the user
    /// text is cut so the sequence still fits (it used to run past the position table).
    func testLongUserTextIsCutToTheWindow() throws {
        let run = try setUpRun()
        let words = Array(repeating: "I prefer answers that are long and detailed", count: 40).joined(separator: " ")
        try JSONL.write(run.comparisons.map { JSONL.object($0).merging(["user_info": words]) { $1 } }, to: run.data)
        let result = PRM.run(["train", "--backbone", run.backbone.path, "--data", run.data.path, "--out", run.out.path, "--epochs", "1",
                              "--batch-size", "8", "--aggregator", "soft-prompt", "--user-tokens", "63", "--max-length", "128"])
        assertSucceeded(result)
        XCTAssertTrue(FileManager.default.fileExists(atPath: run.out.appendingPathComponent("model.safetensors").path))
    }

    /// A tokenizer with more ids than the backbone's embedding table is refused when the folder loads.
    func testTokenizerLargerThanTheEmbeddingTable() throws {
        var config = TinyBert.config
        config["vocab_size"] = 1000
        let run = try setUpRun(config: config)
        let result = train(run)
        assertFailed(result, command: "train", mentioning: ["tokenizer.json", "30522 ids", "vocab_size", "is 1000"])
        XCTAssertFalse(FileManager.default.fileExists(atPath: run.out.path))
    }

    /// A reply of characters the tokenizer drops (control characters) leaves nothing to score.
    func testReplyWithoutTokens() throws {
        let run = try setUpRun()
        var rows = run.comparisons.map(JSONL.object)
        rows[2]["chosen"] = "\u{7}\u{7}"
        try JSONL.write(rows, to: run.data)
        let result = train(run)
        assertFailed(result, command: "train", mentioning: [run.data.path, "comparison 3", "'chosen' has no tokens"])
        XCTAssertFalse(FileManager.default.fileExists(atPath: run.out.path))
    }

    // MARK: - Settings

    func testEpochsThatOverflowTheStepCounter() throws {
        let run = try setUpRun()
        assertFailed(train(run, "--epochs", "\(Int.max / 2)"), command: "train", mentioning: ["--epochs", "overflows the step counter"])
    }

    func testWarmupOutsideZeroOne() throws {
        let run = try setUpRun()
        assertUsageError(train(run, "--warmup", "1.5"), command: "train", message: "--warmup must be a fraction of all steps in [0, 1], got 1.5")
    }

    func testNegativeWeightDecay() throws {
        let run = try setUpRun()
        assertUsageError(train(run, "--weight-decay", "-0.1"), command: "train", message: "--weight-decay must be non-negative, got -0.1")
    }

    func testNegativeGradientClip() throws {
        let run = try setUpRun()
        assertUsageError(train(run, "--grad-clip", "-1"), command: "train",
                         message: "--grad-clip must be non-negative (0: no clipping), got -1.0")
    }

    func testValidationFractionWithDev() throws {
        let run = try setUpRun()
        assertUsageError(train(run, "--val-fraction", "0.2", "--dev", run.data.path), command: "train",
                         message: "--val-fraction and --dev cannot be combined: choose one held-out set")
    }

    // MARK: - Config keys the code does not implement

    func testBertRelativePositions() throws {
        var config = TinyBert.config
        config["position_embedding_type"] = "relative_key"
        let run = try setUpRun(config: config)
        assertFailed(train(run), command: "train", mentioning: ["config.json", "position_embedding_type 'relative_key' is not implemented"])
    }

    func testBertDecoder() throws {
        var config = TinyBert.config
        config["is_decoder"] = true
        let run = try setUpRun(config: config)
        assertFailed(train(run), command: "train", mentioning: ["config.json", "is_decoder true is not implemented"])
    }

    func testGPT2ConfigKeys() throws {
        let folder = try TinyBackbones.gpt2()
        addTeardownBlock { try? FileManager.default.removeItem(at: folder) }
        let configURL = folder.appendingPathComponent("config.json")
        let original = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: configURL)) as? [String: Any])
        let data = try scratchFolder().appendingPathComponent("pairs.jsonl")
        try JSONL.write(SyntheticPreferences.twoGroups(users: 2, minorityShare: 0.5, comparisonsPerUser: 2, seed: 3).comparisons, to: data)
        for (key, value, message) in [("scale_attn_by_inverse_layer_idx", true as Any, "scale_attn_by_inverse_layer_idx true is not implemented"),
                                      ("reorder_and_upcast_attn", true, "reorder_and_upcast_attn true is not implemented"),
                                      ("scale_attn_weights", false, "scale_attn_weights false is not implemented")] {
            try JSONSerialization.data(withJSONObject: original.merging([key: value]) { $1 }).write(to: configURL)
            let out = try scratchFolder().appendingPathComponent("run")
            let result = PRM.run("train", "--backbone", folder.path, "--data", data.path, "--out", out.path, "--max-length", "64")
            assertFailed(result, command: "train", mentioning: [configURL.path, message])
        }
    }
}
