import Foundation
import XCTest
import PRMTestSupport
import PRMTraining

/// Broken Hugging Face folders given to `prm embed --model` and `prm train --backbone`: each is
/// the real all-MiniLM-L6-v2 with one file altered or removed, and each must fail with exit 1
/// and one stderr line naming the file and the problem, never a crash.
final class ModelErrorTests: XCTestCase {
    static let modelFiles = ["config.json", "model.safetensors", "tokenizer.json"]

    /// A folder whose files link to the real MiniLM's, except `replaced`, which the caller writes
    /// (or leaves out).
    func modelFolder(without replaced: String) throws -> URL {
        let source = try TestSupport.miniLMDirectory()
        let folder = try scratchFolder("prm-broken-model")
        for name in Self.modelFiles where name != replaced {
            try FileManager.default.createSymbolicLink(at: folder.appendingPathComponent(name),
                                                       withDestinationURL: source.appendingPathComponent(name))
        }
        return folder
    }

    func miniLMJSON(_ name: String) throws -> [String: Any] {
        let data = try Data(contentsOf: TestSupport.miniLMDirectory().appendingPathComponent(name))
        return try XCTUnwrap(JSONSerialization.jsonObject(with: data) as? [String: Any])
    }

    func write(_ object: [String: Any], to url: URL) throws {
        try JSONSerialization.data(withJSONObject: object).write(to: url)
    }

    /// `prm embed` and `prm train` on the folder both fail naming `file` and the problem; train
    /// fails before creating its output folder.
    func assertBothCommandsFail(_ folder: URL, file: String, problem: [String],
                                sourceFile: StaticString = #filePath, line: UInt = #line) throws {
        let path = folder.appendingPathComponent(file).path
        let embed = PRM.run("embed", "--model", folder.path, "A sentence to embed.")
        assertFailed(embed, command: "embed", mentioning: [path] + problem, file: sourceFile, line: line)

        let scratch = try scratchFolder()
        let data = scratch.appendingPathComponent("pairs.jsonl"), out = scratch.appendingPathComponent("run")
        let synthetic = SyntheticPreferences.twoGroups(users: 2, minorityShare: 0.5, comparisonsPerUser: 2, seed: 3)
        try JSONL.write(synthetic.comparisons, to: data)
        let train = PRM.run("train", "--backbone", folder.path, "--data", data.path, "--out", out.path, "--max-length", "64")
        assertFailed(train, command: "train", mentioning: [path] + problem, file: sourceFile, line: line)
        XCTAssertFalse(FileManager.default.fileExists(atPath: out.path), "train created its output before failing", file: sourceFile, line: line)
    }

    func testTruncatedSafetensors() throws {
        let folder = try modelFolder(without: "model.safetensors")
        let whole = try Data(contentsOf: TestSupport.miniLMDirectory().appendingPathComponent("model.safetensors"))
        let headerLength = whole.prefix(8).enumerated().reduce(0) { $0 | Int($1.element) << (8 * $1.offset) }
        // The header survives, the tensor data is cut short.
        try whole.prefix(8 + headerLength + 4096).write(to: folder.appendingPathComponent("model.safetensors"))
        try assertBothCommandsFail(folder, file: "model.safetensors", problem: ["exceed the 4096-byte buffer", "truncated"])
    }

    func testSafetensorsTruncatedInsideTheHeader() throws {
        let folder = try modelFolder(without: "model.safetensors")
        let whole = try Data(contentsOf: TestSupport.miniLMDirectory().appendingPathComponent("model.safetensors"))
        try whole.prefix(1000).write(to: folder.appendingPathComponent("model.safetensors"))
        try assertBothCommandsFail(folder, file: "model.safetensors", problem: ["runs past the end of the 1000-byte file"])
    }

    func testConfigWithoutHiddenSize() throws {
        let folder = try modelFolder(without: "config.json")
        var config = try miniLMJSON("config.json")
        config["hidden_size"] = nil
        try write(config, to: folder.appendingPathComponent("config.json"))
        try assertBothCommandsFail(folder, file: "config.json", problem: ["missing field 'hidden_size'"])
    }

    func testUnknownModelType() throws {
        let folder = try modelFolder(without: "config.json")
        var config = try miniLMJSON("config.json")
        config["model_type"] = "falcon"
        try write(config, to: folder.appendingPathComponent("config.json"))
        try assertBothCommandsFail(folder, file: "config.json", problem: ["model_type 'falcon'", "supported: bert, gpt2, llama, mistral, qwen2, qwen3"])
    }

    func testUnigramTokenizer() throws {
        let folder = try modelFolder(without: "tokenizer.json")
        var tokenizer = try miniLMJSON("tokenizer.json")
        var model = try XCTUnwrap(tokenizer["model"] as? [String: Any])
        model["type"] = "Unigram"
        tokenizer["model"] = model
        try write(tokenizer, to: folder.appendingPathComponent("tokenizer.json"))
        try assertBothCommandsFail(folder, file: "tokenizer.json", problem: ["unsupported model type 'Unigram'", "supported: BPE, WordPiece"])
    }

    func testMissingConfig() throws {
        let folder = try modelFolder(without: "config.json")
        try assertBothCommandsFail(folder, file: "config.json", problem: ["file not found"])
    }

    func testConfigThatIsNotJSON() throws {
        let folder = try modelFolder(without: "config.json")
        try Data("model_type = bert\nhidden_size = 384\n".utf8).write(to: folder.appendingPathComponent("config.json"))
        try assertBothCommandsFail(folder, file: "config.json", problem: ["not valid JSON"])
    }

    func testModelFolderThatDoesNotExist() throws {
        let folder = try scratchFolder().appendingPathComponent("no-such-model")
        let result = PRM.run("embed", "--model", folder.path, "text")
        assertFailed(result, command: "embed", mentioning: [folder.appendingPathComponent("config.json").path, "file not found"])
    }
}
