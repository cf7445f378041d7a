import Foundation
import XCTest
import PRMTestSupport
import PRMTraining

/// `prm probe` end to end: the real all-MiniLM-L6-v2 on real lengthpref replies, a checkpoint
/// from the real `prm train`, and the inputs it must refuse with one clear line.
final class ProbeCommandTests: XCTestCase {
    /// The frozen MiniLM's mean-pooled h (`--reply-counts 0`) carries reply length, though less than the reply's own sentence
    /// embedding: h pools the prompt's rows too (the window is [CLS] prompt-tail reply [SEP]), so
    /// on lengthpref the word-count probe reaches R² ≈ 0.38 on 1,200 replies, where the reply-only
    /// embedding of the issue reaches ≈ 0.8 (bench/results/probe: prm and an independent numpy
    /// forward pass agree). On 150 replies (75 to fit 384 dimensions) seeds 1, 2, 3 and 7 gave
    /// R² 0.29–0.45, so the bar is 0.2, well above the 0 of a representation without length. The
    /// JSON must hold every property with its numbers.
    func testFrozenMiniLMCarriesWordCount() throws {
        let folder = try scratchFolder()
        let json = folder.appendingPathComponent("probe.json")
        let data = TestSupport.lengthprefDirectory.appendingPathComponent("train.jsonl")
        let model = try TestSupport.miniLMDirectory()
        let result = PRM.run("probe", "--model", model.path, "--data", data.path, "--max-replies", "150", "--seed", "7", "--json", json.path,
                             "--reply-counts", "0")
        assertSucceeded(result)
        let report = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: json)) as? [String: Any])
        XCTAssertEqual(report["model_kind"] as? String, "backbone")
        XCTAssertEqual(report["replies"] as? Int, 150)
        XCTAssertEqual(report["width"] as? Int, 384)
        let properties = try XCTUnwrap(report["properties"] as? [[String: Any]])
        XCTAssertEqual(properties.compactMap { $0["property"] as? String }, ReplyProperties.Property.allCases.map(\.rawValue))
        for p in properties {
            XCTAssertEqual((p["n_fit"] as? Int ?? 0) + (p["n_test"] as? Int ?? 0), 150, "\(p)")
            XCTAssertNotNil(p["lambda"] as? Double, "\(p)")
            if p["kind"] as? String == "binary" {
                let accuracy = try XCTUnwrap(p["accuracy"] as? Double, "\(p)"), base = try XCTUnwrap(p["base_rate"] as? Double, "\(p)")
                XCTAssertTrue((0...1).contains(accuracy) && (0...1).contains(base), "\(p)")
                XCTAssertTrue(p.keys.contains("balanced_accuracy") && p.keys.contains("auc"), "\(p)")
            }
        }
        let r2 = try XCTUnwrap(properties.first?["r2"] as? Double)
        XCTAssertGreaterThan(r2, 0.2, "log word count R² from frozen MiniLM's h")
        let ordering = try XCTUnwrap(report["pair_ordering"] as? [String: Any])
        XCTAssertGreaterThan(ordering["pairs"] as? Int ?? 0, 20)
        XCTAssertGreaterThan(ordering["fraction"] as? Double ?? 0, 0.6)
        // The table on stdout: a header and one row per property, R² as in the JSON.
        XCTAssertTrue(result.stdout.hasPrefix("property"), "\(result)")
        XCTAssertTrue(result.stdout.contains(String(format: "R2 %.3f", r2)), "\(result)")
        for p in ReplyProperties.Property.allCases { XCTAssertTrue(result.stdout.contains(p.rawValue), "\(result)") }
        XCTAssertTrue(result.stdout.contains("pair ordering:"), "\(result)")
    }

    /// With prm train's default reply counts, untrained, h already carries log length almost
    /// linearly (each detector starts near softplus(0) on every reply token): R² 0.95 on 1,200
    /// replies (bench/results/probe), far above mean pooling's on the same 150 replies.
    func testDefaultReplyCountsCarryLengthBeforeTraining() throws {
        let folder = try scratchFolder()
        let data = TestSupport.lengthprefDirectory.appendingPathComponent("train.jsonl")
        let model = try TestSupport.miniLMDirectory()
        func r2(_ extra: String...) throws -> Double {
            let json = folder.appendingPathComponent("probe\(extra.joined()).json")
            assertSucceeded(PRM.run(["probe", "--model", model.path, "--data", data.path, "--max-replies", "150", "--seed", "7",
                                     "--json", json.path] + extra))
            let report = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: json)) as? [String: Any])
            let properties = try XCTUnwrap(report["properties"] as? [[String: Any]])
            return try XCTUnwrap(properties.first?["r2"] as? Double)
        }
        let counted = try r2(), meanOnly = try r2("--reply-counts", "0")
        XCTAssertGreaterThan(counted, 0.8, "log word count R² with untrained reply counts")
        XCTAssertGreaterThan(counted, meanOnly + 0.3)
    }

    /// A checkpoint loads as `prm eval` loads it (its own window and head), and the same seed gives
    /// the same report.
    func testTrainedCheckpointAndDeterminism() throws {
        let folder = try scratchFolder()
        let (checkpoint, comparisons) = try trainTinyRewardModel(in: folder, comparisonsPerUser: 12)
        let data = folder.appendingPathComponent("pairs.jsonl")
        let first = folder.appendingPathComponent("a.json"), second = folder.appendingPathComponent("b.json")
        assertSucceeded(PRM.run("probe", "--model", checkpoint.path, "--data", data.path, "--json", first.path, "--threads", "1"))
        assertSucceeded(PRM.run("probe", "--model", checkpoint.path, "--data", data.path, "--json", second.path))
        XCTAssertEqual(try Data(contentsOf: first), try Data(contentsOf: second), "same seed, same report")
        let report = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: first)) as? [String: Any])
        XCTAssertEqual(report["model_kind"] as? String, "checkpoint")
        XCTAssertEqual(report["width"] as? Int, 32)
        let distinct = Set(comparisons.flatMap { [$0.prompt + "\u{0}" + $0.chosen, $0.prompt + "\u{0}" + $0.rejected] }).count
        XCTAssertEqual(report["replies"] as? Int, min(distinct, 1200))
        assertUsageError(PRM.run("probe", "--model", checkpoint.path, "--data", data.path, "--reply-counts", "4"), command: "probe",
                         message: "--reply-counts applies to a backbone folder; the checkpoint \(checkpoint.path) has its own (8)")
    }

    func testMissingDataFile() throws {
        let missing = try scratchFolder().appendingPathComponent("nope.jsonl")
        let result = PRM.run("probe", "--model", try TestSupport.miniLMDirectory().path, "--data", missing.path)
        assertFailed(result, command: "probe", mentioning: [missing.path])
    }

    func testMalformedJSONLine() throws {
        let folder = try scratchFolder()
        let data = folder.appendingPathComponent("bad.jsonl")
        let good = #"{"user_id": "a", "prompt": "Human: hi\n\nAssistant:", "chosen": "Hello there.", "rejected": "Hi."}"#
        try Data((good + "\n" + #"{"user_id": "a", "prompt": "#  + "\n").utf8).write(to: data)
        let result = PRM.run("probe", "--model", try TestSupport.miniLMDirectory().path, "--data", data.path)
        assertFailed(result, command: "probe", mentioning: [data.path, "2"])
    }

    /// A folder with no config.json (a data folder), and one whose config.json is not a model's.
    func testFolderThatIsNotAModel() throws {
        let data = TestSupport.lengthprefDirectory.appendingPathComponent("train.jsonl")
        let notModel = TestSupport.lengthprefDirectory
        let result = PRM.run("probe", "--model", notModel.path, "--data", data.path)
        assertFailed(result, command: "probe", mentioning: [notModel.appendingPathComponent("config.json").path, "file not found"])

        let folder = try scratchFolder()
        try Data(#"{"name": "not a model"}"#.utf8).write(to: folder.appendingPathComponent("config.json"))
        let other = PRM.run("probe", "--model", folder.path, "--data", data.path)
        XCTAssertEqual(other.status, 1, "\(other)")
        XCTAssertTrue(other.stderr.hasPrefix("prm probe: error: ") && other.stderr.contains(folder.path), "\(other)")
    }

    func testUsageErrors() throws {
        let model = try TestSupport.miniLMDirectory().path
        assertUsageError(PRM.run("probe", "--model", model), command: "probe", message: "missing required option --data")
        assertUsageError(PRM.run("probe", "--model", model, "--data", "x.jsonl", "--max-replies", "2"), command: "probe",
                         message: "--max-replies must be at least 4, got 2")
    }
}
