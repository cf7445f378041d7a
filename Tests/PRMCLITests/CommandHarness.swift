import Foundation
import XCTest
import PRMBench
import PRMCLI
import PRMCore
import PRMModel
import PRMTestSupport
import PRMTraining

/// What one in-process `prm` invocation returned: the exit status and everything the command
/// wrote to the injected stdout and stderr streams. (Logs and progress bars go to the process's
/// own stderr through `Log`/`ProgressBar`; they are not part of a command's result.)
struct CommandResult: CustomStringConvertible {
    var arguments: [String]
    var status: Int32
    var stdout: String
    var stderr: String

    /// Lines of stdout, without the final newline.
    var stdoutLines: [String] { stdout.split(separator: "\n", omittingEmptySubsequences: false).dropLast().map(String.init) }

    var description: String {
        "prm \(arguments.joined(separator: " ")) -> \(status)\n--- stdout ---\n\(stdout.prefix(2000))\n--- stderr ---\n\(stderr)"
    }
}

/// Runs the real subcommands in-process, as `prm` would.
enum PRM {
    /// The commands the `prm` executable registers (Sources/prm/main.swift): the product's, then bench.
    static let commands: [any Subcommand.Type] = CLI.commands + [BenchCommand.self]

    static func run(_ arguments: [String]) -> CommandResult {
        var out = "", err = ""
        let status = CLI.run(arguments, commands: commands, stdout: &out, stderr: &err)
        return CommandResult(arguments: arguments, status: status, stdout: out, stderr: err)
    }

    static func run(_ arguments: String...) -> CommandResult { run(arguments) }
}

extension XCTestCase {
    /// A fresh temporary folder, removed when the test ends.
    func scratchFolder(_ tag: String = "prm-cli") throws -> URL {
        let url = try TestSupport.temporaryDirectory(tag)
        addTeardownBlock { try? FileManager.default.removeItem(at: url) }
        return url
    }

    /// A tiny policy trained for one step by the real `prm sft`.
    func tinyPolicy() throws -> URL {
        let out = try scratchFolder("prm-policy").appendingPathComponent("sft")
        let sft = PRM.run("sft", "--out", out.path, "--limit", "8", "--epochs", "1", "--batch-size", "16", "--layers", "1",
                          "--heads", "2", "--embedding", "16", "--positions", "96", "--user-tokens", "2",
                          "--data", TestSupport.repoRoot.appendingPathComponent("data/lengthpref/train.jsonl").path,
                          "--dev", TestSupport.repoRoot.appendingPathComponent("data/lengthpref/dev.jsonl").path,
                          "--tokenizer", TestSupport.repoRoot.appendingPathComponent("data/policy/tokenizer.json").path)
        assertSucceeded(sft)
        return out
    }

    /// A reward model trained for one epoch by the real `prm train` on a `TinyBert` and synthetic
    /// comparisons (4 users, the last preferring short replies), in `folder`.
    func trainTinyRewardModel(in folder: URL, comparisonsPerUser: Int) throws -> (checkpoint: URL, comparisons: [Comparison]) {
        let backbone = folder.appendingPathComponent("tiny-bert")
        try TinyBert.makeFolder(backbone)
        let comparisons = SyntheticPreferences.twoGroups(users: 4, minorityShare: 0.25, comparisonsPerUser: comparisonsPerUser, seed: 5).comparisons
        let data = folder.appendingPathComponent("pairs.jsonl"), checkpoint = folder.appendingPathComponent("run")
        try JSONL.write(comparisons, to: data)
        assertSucceeded(PRM.run("train", "--backbone", backbone.path, "--data", data.path, "--out", checkpoint.path,
                                "--epochs", "1", "--max-length", "64", "--batch-size", "8"))
        return (checkpoint, comparisons)
    }

    /// Asserts a command succeeded (exit 0) and wrote nothing to the injected stderr.
    func assertSucceeded(_ result: CommandResult, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(result.status, 0, "\(result)", file: file, line: line)
        XCTAssertEqual(result.stderr, "", "\(result)", file: file, line: line)
    }

    /// Asserts the documented failure shape: exit 1, nothing on stdout, and exactly one line on
    /// stderr, `prm <command>: error: ...`, containing every fragment (file paths, line numbers,
    /// the problem).
    func assertFailed(_ result: CommandResult, command: String, mentioning fragments: [String],
                      file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(result.status, 1, "\(result)", file: file, line: line)
        XCTAssertEqual(result.stdout, "", "a failed command printed results\n\(result)", file: file, line: line)
        XCTAssertTrue(result.stderr.hasPrefix("prm \(command): error: "), "\(result)", file: file, line: line)
        XCTAssertTrue(result.stderr.hasSuffix("\n"), "\(result)", file: file, line: line)
        XCTAssertEqual(result.stderr.filter { $0 == "\n" }.count, 1, "expected one line on stderr\n\(result)", file: file, line: line)
        for fragment in fragments {
            XCTAssertTrue(result.stderr.contains(fragment), "stderr does not mention \"\(fragment)\"\n\(result)", file: file, line: line)
        }
    }

    /// Asserts a command-line error: exit 2, nothing on stdout, the message naming the problem
    /// on the first stderr line and the command's usage line on the second.
    func assertUsageError(_ result: CommandResult, command: String, message: String,
                          file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(result.status, 2, "\(result)", file: file, line: line)
        XCTAssertEqual(result.stdout, "", "\(result)", file: file, line: line)
        let lines = result.stderr.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        XCTAssertEqual(lines.count, 3, "expected a message line and a usage line\n\(result)", file: file, line: line)
        XCTAssertEqual(lines.first, "prm \(command): \(message)", "\(result)", file: file, line: line)
        let usage = PRM.commands.first { $0.spec.name == command }?.spec.usage(program: "prm")
        XCTAssertNotNil(usage, "no command '\(command)'", file: file, line: line)
        XCTAssertEqual(lines.dropFirst().first, "usage: \(usage ?? "")", "\(result)", file: file, line: line)
    }
}

/// JSONL files for tests.
enum JSONL {
    /// One compact JSON value per line.
    static func write(_ values: [Any], to url: URL) throws {
        var data = Data()
        for value in values {
            data += try JSONSerialization.data(withJSONObject: value, options: [.fragmentsAllowed, .sortedKeys])
            data += Data("\n".utf8)
        }
        try data.write(to: url)
    }

    static func write(_ comparisons: [Comparison], to url: URL) throws {
        try write(comparisons.map(object), to: url)
    }

    static func object(_ c: Comparison) -> [String: Any] {
        ["user_id": c.userID, "prompt": c.prompt, "chosen": c.chosen, "rejected": c.rejected]
    }

    /// Decodes each line of a command's stdout.
    static func decodeLines<T: Decodable>(_ type: T.Type, _ result: CommandResult,
                                          file: StaticString = #filePath, line: UInt = #line) throws -> [T] {
        try result.stdoutLines.map { text in
            do {
                return try JSONDecoder().decode(T.self, from: Data(text.utf8))
            } catch {
                XCTFail("stdout line is not a \(T.self): \(text.prefix(300))\n\(error)", file: file, line: line)
                throw error
            }
        }
    }
}

/// A tiny randomly initialised BERT in a Hugging Face folder: config.json (hidden 32, 1 layer,
/// 4 heads, intermediate 64, BERT's vocabulary, 128 positions), all-MiniLM-L6-v2's
/// tokenizer.json, and a model.safetensors written from the layout the loader itself declares.
enum TinyBert {
    static var config: [String: Any] { [
        "model_type": "bert", "vocab_size": 30522, "hidden_size": 32, "num_hidden_layers": 1,
        "num_attention_heads": 4, "intermediate_size": 64, "max_position_embeddings": 128,
        "type_vocab_size": 2, "layer_norm_eps": 1e-12, "hidden_act": "gelu",
    ] }

    static func makeFolder(_ folder: URL, seed: UInt64 = 11) throws {
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let configURL = folder.appendingPathComponent("config.json")
        try JSONSerialization.data(withJSONObject: config, options: [.prettyPrinted, .sortedKeys]).write(to: configURL)
        try FileManager.default.copyItem(at: TestSupport.miniLMDirectory().appendingPathComponent("tokenizer.json"),
                                         to: folder.appendingPathComponent("tokenizer.json"))
        var layout = Parameters.Layout()
        let backbone = try Backbones.make(config: configURL, layout: &layout)
        let parameters = Parameters(layout)
        backbone.bind(parameters)
        Backbones.initializeRandomly(parameters, seed: seed)
        let entries = parameters.entries.enumerated().map { index, entry in
            SafetensorsWriter.Entry(name: entry.name, shape: entry.shape,
                                    data: UnsafePointer(parameters.value(Parameters.Handle(index: index))))
        }
        try SafetensorsWriter.write(entries, metadata: ["format": "pt"], to: folder.appendingPathComponent("model.safetensors"))
    }
}

/// Every regular file in a folder, by name, with its bytes: to show a command changed nothing.
func folderSnapshot(_ folder: URL) throws -> [String: Data] {
    var files: [String: Data] = [:]
    for name in try FileManager.default.contentsOfDirectory(atPath: folder.path) {
        files[name] = try Data(contentsOf: folder.appendingPathComponent(name))
    }
    return files
}
