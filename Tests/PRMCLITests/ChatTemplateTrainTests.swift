import Foundation
import XCTest
import PRMTestSupport
import PRMTraining

/// `prm train` on data whose prompts are chat messages: the template is detected (or given by
/// --template), recorded in the checkpoint, and `prm score` writes messages the same way.
final class ChatTemplateTrainTests: XCTestCase {
    /// Synthetic comparisons whose prompts are messages: a system turn (left out) and the question.
    func messageData(_ folder: URL) throws -> URL {
        let comparisons = SyntheticPreferences.twoGroups(users: 4, minorityShare: 0.25, comparisonsPerUser: 10, seed: 5).comparisons
        let rows: [Any] = comparisons.map { c in
            var row = JSONL.object(c)
            let question = c.prompt.replacingOccurrences(of: "Human: ", with: "").replacingOccurrences(of: "\n\nAssistant:", with: "")
            row["prompt"] = [["role": "system", "content": "Answer as you like."], ["role": "user", "content": question]]
            return row
        }
        let data = folder.appendingPathComponent("messages.jsonl")
        try JSONL.write(rows, to: data)
        return data
    }

    func train(_ data: URL, _ folder: URL, _ extra: String...) throws -> URL {
        let backbone = folder.appendingPathComponent("tiny-bert")
        if !FileManager.default.fileExists(atPath: backbone.path) { try TinyBert.makeFolder(backbone) }
        let out = folder.appendingPathComponent("run-\(extra.joined())")
        assertSucceeded(PRM.run(["train", "--backbone", backbone.path, "--data", data.path, "--out", out.path,
                                 "--epochs", "1", "--max-length", "64", "--batch-size", "8"] + extra))
        return out
    }

    func prmSection(_ run: URL) throws -> [String: Any] {
        let config = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: run.appendingPathComponent("config.json"))) as? [String: Any])
        return try XCTUnwrap(config["prm"] as? [String: Any])
    }

    func testMessagePromptsTrainAnHHModelThatScoresMessagesAsText() throws {
        let folder = try scratchFolder()
        let run = try train(try messageData(folder), folder)
        XCTAssertNil(try prmSection(run)["template"], "hh, the default, is written as before: no key")

        let question = "Do you have any advice about cooking?"
        let requests = folder.appendingPathComponent("requests.jsonl")
        try JSONL.write([["user_id": "user-1", "prompt": [["role": "user", "content": question]],
                          "candidates": ["Yes.", ["role": "assistant", "content": "Start with simple recipes."]]],
                         ["user_id": "user-1", "prompt": "Human: \(question)\n\nAssistant:",
                          "candidates": ["Yes.", "Start with simple recipes."]]], to: requests)
        let scored = PRM.run("score", "--model", run.path, "--input", requests.path)
        assertSucceeded(scored)
        let lines = try scored.stdout.split(separator: "\n").map {
            try XCTUnwrap(JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])
        }
        let scores = try lines.map { line in
            try XCTUnwrap(line["ranking"] as? [[String: Any]]).sorted { ($0["index"] as? Int ?? 0) < ($1["index"] as? Int ?? 0) }
                .map { try XCTUnwrap($0["score"] as? Double) }
        }
        XCTAssertEqual(scores.count, 2)
        for (a, b) in zip(scores[0], scores[1]) { XCTAssertEqual(a, b, accuracy: 1e-6, "messages are the hh text they stand for") }
    }

    func testTemplateOptionIsRecordedAndChecked() throws {
        let folder = try scratchFolder()
        let data = try messageData(folder)
        XCTAssertEqual(try prmSection(try train(data, folder, "--template", "plain"))["template"] as? String, "plain")
        let bad = PRM.run("train", "--data", data.path, "--out", folder.appendingPathComponent("x").path, "--template", "chatml")
        XCTAssertNotEqual(bad.status, 0)
        XCTAssertTrue(bad.stderr.contains("--template must be one of hh, plain; got 'chatml'"), bad.stderr)
    }
}
