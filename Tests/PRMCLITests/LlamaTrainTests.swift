import Foundation
import XCTest
import PRMTestSupport
import PRMModel
import PRMTraining

/// `prm train --backbone` on a Llama-family Hugging Face folder (the tiny random
/// LlamaForSequenceClassification of Tests/Fixtures/llama-family): both aggregators train, write
/// a checkpoint that names the architecture, and `prm eval` reloads it; a folder of an unknown
/// architecture fails with one line naming config.json and model_type.
final class LlamaTrainTests: XCTestCase {
    static let llama = TestSupport.repoRoot.appendingPathComponent("Tests/Fixtures/llama-family/llama")

    func testTrainOnALlamaFolderWithEitherAggregator() throws {
        let folder = try scratchFolder("prm-llama-train")
        let comparisons = SyntheticPreferences.twoGroups(users: 4, minorityShare: 0.25, comparisonsPerUser: 6, seed: 5).comparisons
        let data = folder.appendingPathComponent("pairs.jsonl")
        try JSONL.write(comparisons, to: data)
        for aggregator in ["linear-head", "soft-prompt"] {
            let out = folder.appendingPathComponent(aggregator)
            assertSucceeded(PRM.run("train", "--backbone", Self.llama.path, "--data", data.path, "--out", out.path, "--aggregator", aggregator,
                                    "--epochs", "1", "--max-length", "48", "--batch-size", "8"))
            let config = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: out.appendingPathComponent("config.json"))) as? [String: Any])
            XCTAssertEqual(config["model_type"] as? String, "llama")
            XCTAssertEqual((config["prm"] as? [String: Any])?["aggregator"] as? String, aggregator)
            let json = folder.appendingPathComponent("\(aggregator)-eval.json")
            assertSucceeded(PRM.run("eval", "--model", out.path, "--data", data.path, "--json", json.path))
            let report = try JSONDecoder().decode(EvalReportFile.self, from: Data(contentsOf: json))
            XCTAssertEqual(report.overall.n, comparisons.count)
        }
    }

    func testUnknownArchitectureIsOneClearError() throws {
        let folder = try scratchFolder("prm-llama-bad")
        let copy = folder.appendingPathComponent("falcon")
        try FileManager.default.copyItem(at: Self.llama, to: copy)
        let config = copy.appendingPathComponent("config.json")
        let text = try String(contentsOf: config, encoding: .utf8).replacingOccurrences(of: "\"model_type\": \"llama\"", with: "\"model_type\": \"falcon\"")
        try text.write(to: config, atomically: true, encoding: .utf8)
        let data = folder.appendingPathComponent("pairs.jsonl")
        try JSONL.write(SyntheticPreferences.twoGroups(users: 2, minorityShare: 0.5, comparisonsPerUser: 2, seed: 1).comparisons, to: data)
        assertFailed(PRM.run("train", "--backbone", copy.path, "--data", data.path, "--out", folder.appendingPathComponent("run").path),
                     command: "train", mentioning: [config.path, "model_type 'falcon'"])
    }
}

extension XCTestCase {
    /// A reward model on the tiny random llama of Tests/Fixtures/llama-family, trained one epoch by
    /// the real `prm train` on 16 synthetic comparisons (4 users; `seed`) with `options` added:
    /// the checkpoint folder, inside `folder`.
    func tinyLlamaCheckpoint(in folder: URL, seed: UInt64, options: [String] = [], file: StaticString = #filePath, line: UInt = #line) throws -> URL {
        let data = folder.appendingPathComponent("pairs.jsonl")
        try JSONL.write(SyntheticPreferences.twoGroups(users: 4, minorityShare: 0.25, comparisonsPerUser: 4, seed: seed).comparisons, to: data)
        let checkpoint = folder.appendingPathComponent("run")
        assertSucceeded(PRM.run(["train", "--backbone", LlamaTrainTests.llama.path, "--data", data.path, "--out", checkpoint.path,
                                 "--epochs", "1", "--max-length", "48", "--batch-size", "8"] + options), file: file, line: line)
        return checkpoint
    }
}
