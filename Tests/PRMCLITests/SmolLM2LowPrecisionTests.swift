import Foundation
import XCTest
import PRMCore
import PRMModel
import PRMScoring
import PRMScoringTestSupport
import PRMTestSupport

/// A SmolLM2 reward model (the real GGUF weights of models/, trained for two steps by the real
/// `prm train`) scoring real dev comparisons at bf16 and int8 against fp32 through the checkpoint
/// loader every scoring command uses (`Scorer(checkpoint:precision:)`), and `prm score`,
/// `prm eval` and `prm bench reward` taking `--precision` for it.
///
/// Bounds are the measured worst values with a margin (measured in the test's comment): 30
/// layers compound each product's rounding through norms, residuals and softmax as in
/// `DecoderLowPrecisionTests`; a wrong scale, layout or row offset gives cosines far below them.
final class SmolLM2LowPrecisionTests: XCTestCase {
    /// The first 12 comparisons of data/lengthpref/dev.jsonl, chosen and rejected, for the generic user.
    static func devItems() throws -> [ScoringItem] {
        let url = TestSupport.repoRoot.appendingPathComponent("data/lengthpref/dev.jsonl")
        let lines = try String(contentsOf: url, encoding: .utf8).split(separator: "\n").prefix(12)
        return try lines.flatMap { line -> [ScoringItem] in
            let row = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
            let prompt = try XCTUnwrap(row["prompt"] as? String)
            return try ["chosen", "rejected"].map { ScoringItem(userID: nil, prompt: prompt, response: try XCTUnwrap(row[$0] as? String)) }
        }
    }

    /// Measured (two training steps leave the scores' spread at 13.8): bf16 worst pooled cosine
    /// 0.9998, max |Δscore| 0.011 of fp32's spread, 12/12 pairs ordered as fp32, shared prompts
    /// against one reply at a time 0.003 of the spread; int8 0.992, 0.13, 12/12, 0.09 (on 24
    /// comparisons int8 ordered 23 of 24). The sharing bound is the precision's score bound (`LowPrecisionAgreement`
    /// says why the two paths differ by quantization steps, not rounding).
    func testTrainedSmolLM2RewardModelAtLowPrecision() throws {
        let folder = try scratchFolder("prm-smollm2-low-precision")
        let checkpoint = folder.appendingPathComponent("run")
        assertSucceeded(PRM.run("train", "--backbone", try TestSupport.smolLM2File().path, "--limit", "16", "--epochs", "1",
                                "--batch-size", "8", "--max-length", "128", "--reply-counts", "0", "--val-fraction", "0",
                                "--no-refit-seen", "--out", checkpoint.path))
        let items = try Self.devItems()
        let reference = try Scorer(checkpoint: checkpoint)
        XCTAssertEqual(reference.model.backbone.modelType, "llama")
        for (precision, cosine, scoreError, ordered) in [(Precision.bf16, 0.999, 0.04, 1.0), (.int8, 0.98, 0.25, 0.9)] {
            let low = try Scorer(checkpoint: checkpoint, precision: precision)
            XCTAssertEqual(low.model.backbone.inferencePrecision, precision)
            let agreement = LowPrecisionAgreement(low: low, reference: reference, items: items)
            print("SmolLM2 reward model \(precision): \(agreement)")
            XCTAssertEqual(agreement.failures(cosine: cosine, scoreError: scoreError, ordered: ordered, sharing: scoreError), [], "\(precision): \(agreement)")
            try assertReleasedFP32Matrices(low, reference: reference)
        }

        let prompt = "Human: Any tips for sleeping better?\n\nAssistant:"
        let score = PRM.run("score", "--model", checkpoint.path, "--precision", "int8", "--int8-products", "qkv,ffn-up", "--prompt", prompt,
                            "Keep a regular schedule.", "Go to bed at the same time every night.")
        assertSucceeded(score)
        XCTAssertTrue(score.stdout.contains("\"ranking\""), score.description)
        let data = folder.appendingPathComponent("dev.jsonl")
        let dev = try String(contentsOf: TestSupport.repoRoot.appendingPathComponent("data/lengthpref/dev.jsonl"), encoding: .utf8)
        try dev.split(separator: "\n").prefix(8).joined(separator: "\n").write(to: data, atomically: true, encoding: .utf8)
        let evalReport = folder.appendingPathComponent("eval.json")
        assertSucceeded(PRM.run("eval", "--model", checkpoint.path, "--data", data.path, "--precision", "bf16", "--json", evalReport.path))
        XCTAssertEqual(try JSONDecoder().decode(EvalReportFile.self, from: Data(contentsOf: evalReport)).overall.n, 8)
        let inputs = folder.appendingPathComponent("inputs.json")
        let body: [String: Any] = ["cases": [["name": "two replies", "items": [["prompt": [1, 2, 3], "reply": [4, 5]], ["prompt": [1, 2, 3], "reply": [6]]]]]]
        try JSONSerialization.data(withJSONObject: body).write(to: inputs)
        let benchReport = folder.appendingPathComponent("reward.json")
        assertSucceeded(PRM.run("bench", "reward", "--reward-model", checkpoint.path, "--inputs", inputs.path, "--repeats", "1",
                                "--precision", "int8", "--json", benchReport.path))
        let recorded = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: benchReport)) as? [String: Any])
        XCTAssertEqual(recorded["precision"] as? String, "int8")
    }

    /// Preparing bf16 or int8 released the layers' fp32 matrices (they read zeros now) but kept
    /// the embeddings, and the fingerprint still names the weights as loaded.
    func assertReleasedFP32Matrices(_ low: Scorer, reference: Scorer, file: StaticString = #filePath, line: UInt = #line) throws {
        let (p, q) = (low.model.parameters, reference.model.parameters)
        for name in ["layers.0.self_attn.q_proj.weight", "layers.12.mlp.down_proj.weight", "layers.29.mlp.up_proj.weight"] {
            let handle = try XCTUnwrap(p.handle(named: name), name, file: file, line: line)
            let middle = p.entry(handle).count / 2
            XCTAssertEqual(p.value(handle)[middle], 0, "\(name) still held", file: file, line: line)
            XCTAssertNotEqual(q.value(handle)[middle], 0, name, file: file, line: line)
        }
        let embeddings = low.model.backbone.wordEmbeddings
        XCTAssertEqual(p.value(embeddings)[4096], q.value(embeddings)[4096], file: file, line: line)
        XCTAssertEqual(ModelFingerprint.of(low.model, users: low.users), ModelFingerprint.of(reference.model, users: reference.users),
                       file: file, line: line)
    }
}
