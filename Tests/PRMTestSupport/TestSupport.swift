import Foundation
import PRMCore

/// Locations and helpers shared by every test target. Tests use the real resources
/// (pretrained weights, Python references); a missing resource is a failure, never a skip.
public enum TestSupport {
    public struct Failure: Error, CustomStringConvertible {
        public let description: String
        public init(_ description: String) { self.description = description }
    }

    /// The repository root, found from this file's path (Tests/PRMTestSupport/TestSupport.swift).
    public static let repoRoot: URL = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// Python reference scripts live in Tests/Reference.
    public static func referenceScript(_ name: String) -> URL {
        repoRoot.appendingPathComponent("Tests/Reference").appendingPathComponent(name)
    }

    /// The real-dialogue preference data: the project's copy (data/lengthpref), else the shared
    /// folder (shared/data/lengthpref) in the nearest directory above the checkout that has one.
    public static var lengthprefDirectory: URL {
        let shipped = repoRoot.appendingPathComponent("data/lengthpref")
        var candidates = [shipped]
        var folder = repoRoot
        while folder.path != "/" {
            folder = folder.deletingLastPathComponent()
            candidates.append(folder.appendingPathComponent("shared/data/lengthpref"))
        }
        return candidates.first { FileManager.default.fileExists(atPath: $0.appendingPathComponent("train.jsonl").path) } ?? shipped
    }

    /// The pretrained all-MiniLM-L6-v2 folder that scripts/setup.sh links into models/.
    public static func miniLMDirectory() throws -> URL {
        let url = repoRoot.appendingPathComponent("models/all-MiniLM-L6-v2")
        guard FileManager.default.fileExists(atPath: url.appendingPathComponent("model.safetensors").path) else {
            throw Failure("pretrained MiniLM not found at \(url.path): run scripts/setup.sh")
        }
        return url
    }

    /// The SmolLM2-135M-Instruct GGUF file that scripts/setup.sh links into models/.
    public static func smolLM2File() throws -> URL {
        let url = repoRoot.appendingPathComponent("models/SmolLM2-135M-Instruct.Q4_1.gguf")
        guard FileManager.default.fileExists(atPath: url.path) else {
            throw Failure("SmolLM2 GGUF not found at \(url.path): run scripts/setup.sh")
        }
        return url
    }

    /// The GGUF fixtures written by Tests/Reference/gguf_*.py and smollm2_reference.py.
    public static let ggufFixtures = repoRoot.appendingPathComponent("Tests/Fixtures/gguf")

    /// Runs `body` once per sgemm backend (oneDNN, OpenBLAS), selected process-wide for the call,
    /// so every numerical check holds on both against the same reference. Tests run one at a
    /// time (scripts/test.sh does not pass --parallel), so switching the global is safe.
    public static func eachBackend(_ body: (Compute.Backend) throws -> Void) rethrows {
        for backend in Compute.Backend.allCases {
            try Compute.with(backend: backend) { try body(backend) }
        }
    }

    /// A fresh temporary directory, removed by the caller when done.
    public static func temporaryDirectory(_ tag: String = "prm-test") throws -> URL {
        let url = FileManager.default.temporaryDirectory
            .appendingPathComponent("\(tag)-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    /// Runs `python3 script args...`, feeding `input` on stdin; returns stdout.
    /// Throws with the script's stderr when it exits non-zero.
    @discardableResult
    public static func runPython(_ script: URL, _ arguments: [String] = [], input: Data? = nil) throws -> Data {
        try run(["python3", script.path] + arguments, input: input)
    }

    /// Runs a command found on PATH; returns stdout, throws with stderr on a non-zero exit.
    @discardableResult
    public static func run(_ command: [String], input: Data? = nil, environment: [String: String]? = nil) throws -> Data {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = command
        if let environment { process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 } }
        let stdout = Pipe(), stderr = Pipe(), stdin = Pipe()
        process.standardOutput = stdout
        process.standardError = stderr
        process.standardInput = stdin
        try process.run()
        // Read both pipes concurrently so a chatty child cannot block on a full pipe.
        let errBox = DataBox()
        let group = DispatchGroup()
        group.enter()
        DispatchQueue.global().async {
            errBox.data = stderr.fileHandleForReading.readDataToEndOfFile()
            group.leave()
        }
        if let input { stdin.fileHandleForWriting.write(input) }
        try? stdin.fileHandleForWriting.close()
        let out = stdout.fileHandleForReading.readDataToEndOfFile()
        group.wait()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            let message = String(decoding: errBox.data, as: UTF8.self)
            throw Failure("\(command.joined(separator: " ")) exited \(process.terminationStatus): \(message)")
        }
        return out
    }
}

private final class DataBox: @unchecked Sendable { var data = Data() }
