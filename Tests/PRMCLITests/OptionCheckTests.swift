import Foundation
import XCTest
import PRMCore
import PRMTestSupport
import PRMTraining

/// Option values that used to be taken as given and fail later, far from the mistake: each is
/// now a usage error naming the option before any model is loaded or socket bound, and
/// output-folder failures name the folder and the cause. (`--model` need not exist: the check
/// comes first, so a missing model would show as exit 1, not 2.)
final class OptionCheckTests: XCTestCase {
    /// `--cache-entries 99999999999` aborted the server (exit 134) allocating 4.8 TB at start.
    func testAbsurdCacheEntriesIsAUsageError() {
        assertUsageError(PRM.run("serve", "--model", "no-such-model", "--cache-entries", "99999999999"), command: "serve",
                         message: "--cache-entries must be at most 100000000, got 99999999999")
        assertUsageError(PRM.run("serve", "--model", "no-such-model", "--cache-entries", "-1"), command: "serve",
                         message: "--cache-entries must be at least 0, got -1")
    }

    func testCacheMemoryMustBeASizeWithinTheMachinesMemory() {
        for garbage in ["lots", "-5MiB", "12XB", "1e3", "MiB", ""] {
            assertUsageError(PRM.run("serve", "--model", "no-such-model", "--cache-memory=\(garbage)"), command: "serve",
                             message: "--cache-memory expects a size such as 512MiB, 2GiB or a number of bytes, got '\(garbage)'")
        }
        let result = PRM.run("serve", "--model", "no-such-model", "--cache-memory", "100000TiB")
        XCTAssertEqual(result.status, 2, "\(result)")
        XCTAssertTrue(result.stderr.hasPrefix("prm serve: --cache-memory 100000TiB is more than this machine's memory"), "\(result)")
    }

    /// `--threads 100000` started, then died on the first rank (`libgomp: Thread creation failed`).
    func testThreadsFarBeyondTheCoresIsAUsageError() {
        let limit = min(4 * Parallel.cores, 256)
        for threads in ["100000", "\(limit + 1)"] {
            assertUsageError(PRM.run("serve", "--model", "no-such-model", "--threads", threads), command: "serve",
                             message: "--threads must be at most \(limit), got \(threads)")
        }
        assertUsageError(PRM.run("serve", "--model", "no-such-model", "--threads", "0"), command: "serve",
                         message: "--threads must be at least 1, got 0")
    }

    /// `--bind tcp://127.0.0.1:99999` listened on port 34463 (libzmq keeps the low 16 bits).
    func testMalformedEndpointsAreUsageErrors() {
        let cases: [(arguments: [String], message: String)] = [
            (["serve", "--model", "m", "--bind", "tcp://127.0.0.1:99999"], "--bind 'tcp://127.0.0.1:99999': the port must be 1-65535 or *, got '99999'"),
            (["serve", "--model", "m", "--bind", "tcp://127.0.0.1:0"], "--bind 'tcp://127.0.0.1:0': the port must be 1-65535 or *, got '0'"),
            (["serve", "--model", "m", "--bind", "tcp://:5555"], "--bind 'tcp://:5555': the host is empty"),
            (["serve", "--model", "m", "--bind", "127.0.0.1:5555"], "--bind '127.0.0.1:5555': expected tcp://, ipc://, inproc:// followed by an address"),
            (["serve", "--model", "m", "--connect", "tcp://10.0.0.5:70000"], "--connect 'tcp://10.0.0.5:70000': the port must be 1-65535 or *, got '70000'"),
            (["serve", "--model", "m", "--metrics-http", "127.0.0.1:http"], "--metrics-http '127.0.0.1:http': the port must be 1-65535 or *, got 'http'"),
            (["serve", "--model", "m", "--http", "127.0.0.1:http"], "--http '127.0.0.1:http': the port must be 1-65535 or *, got 'http'"),
            (["serve", "--model", "m", "--http", "8080", "--tls-cert", "/nonexistent/cert.pem", "--tls-key", "/nonexistent/key.pem"],
             "--tls-cert /nonexistent/cert.pem: no such readable file"),
            (["proxy", "--http-token-file", "/nonexistent/tokens"], "--http-token-file needs --http HOST:PORT"),
            (["proxy", "--http", "8080", "--http-token-file", "/nonexistent/tokens"], "--http-token-file /nonexistent/tokens: no such readable file"),
            (["score", "--server", "tcp://127.0.0.1", "--prompt", "p", "c"], "--server 'tcp://127.0.0.1': expected HOST:PORT after tcp://"),
            (["score", "--server", "ipc://", "--prompt", "p", "c"], "--server 'ipc://': the address after ipc:// is empty"),
        ]
        for (arguments, message) in cases {
            assertUsageError(PRM.run(arguments), command: arguments[0], message: message)
        }
    }

    /// `--limit -3` trained on one comparison without a word; the check comes before the data is read.
    func testNonPositiveLimitIsAUsageError() {
        for limit in ["-3", "0"] {
            assertUsageError(PRM.run("train", "--data", "no-such-file.jsonl", "--out", "unused", "--limit", limit), command: "train",
                             message: "--limit must be at least 1, got \(limit)")
            assertUsageError(PRM.run("sft", "--data", "no-such-file.jsonl", "--out", "unused", "--limit", limit), command: "sft",
                             message: "--limit must be at least 1, got \(limit)")
        }
    }

    /// Silent reply counts are some of the reply counts; the choices of the new options are named.
    func testPoolingChoicesAndSilentCountsAreChecked() {
        assertUsageError(PRM.run("train", "--data", "no-such-file.jsonl", "--out", "unused", "--reply-counts", "4", "--silent-counts", "5"),
                         command: "train", message: "--silent-counts must be between 0 and --reply-counts (4), got 5")
        assertUsageError(PRM.run("train", "--data", "no-such-file.jsonl", "--out", "unused", "--pooling", "cls"),
                         command: "train", message: "--pooling must be one of window, reply; got 'cls'")
        assertUsageError(PRM.run("train", "--data", "no-such-file.jsonl", "--out", "unused", "--val-by", "users"),
                         command: "train", message: "--val-by must be one of comparisons, prompts; got 'users'")
    }

    /// Foundation said only "The operation could not be completed. The file doesn't exist."
    func testOutputFolderErrorsNameTheFolderAndTheCause() throws {
        let folder = try scratchFolder("prm-out")
        let backbone = folder.appendingPathComponent("tiny-bert")
        try TinyBert.makeFolder(backbone)
        let data = folder.appendingPathComponent("pairs.jsonl")
        try JSONL.write(SyntheticPreferences.twoGroups(users: 2, minorityShare: 0.5, comparisonsPerUser: 2, seed: 5).comparisons, to: data)
        let file = folder.appendingPathComponent("a-file")
        try Data("x".utf8).write(to: file)
        let cases = [("/proc/prm-out", "No such file or directory"), (file.path, "\(file.path) exists and is not a folder"),
                     (file.path + "/run", "\(file.path) exists and is not a folder")]
        for (out, cause) in cases {
            let train = PRM.run("train", "--backbone", backbone.path, "--data", data.path, "--out", out, "--epochs", "1",
                                "--max-length", "32", "--batch-size", "4", "--no-refit-seen")
            assertFailed(train, command: "train", mentioning: ["cannot create output folder \(out): \(cause)"])
        }
        assertFailed(PRM.run("keygen", "/proc/prm-keys/server"), command: "keygen",
                     mentioning: ["cannot create output folder /proc/prm-keys: No such file or directory"])
    }
}
