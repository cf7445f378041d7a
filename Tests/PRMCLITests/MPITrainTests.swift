import Foundation
import XCTest
import PRMCore
import PRMTestSupport
import PRMTraining

/// `mpirun -np N prm train`: real Open MPI jobs of the release `prm` binary on loopback, against
/// the same binary run as one process. Open MPI (openmpi-bin, scripts/setup.sh) must be
/// installed; a missing `mpirun` fails these tests.
final class MPITrainTests: XCTestCase {
    /// The release binary `swift test -c release` has just built beside the tests.
    static var prm: URL { TestSupport.repoRoot.appendingPathComponent(".build/release/prm") }
    /// What Open MPI needs to run as root in CI and to start more ranks than cores.
    static let mpirunFlags = ["--allow-run-as-root", "--oversubscribe", "--bind-to", "none"]

    /// A tiny BERT, 160 training and 40 held-out comparisons (every fifth, so every user has
    /// both): 16 a step, 10 steps an epoch.
    func tinyRun() throws -> (folder: URL, common: [String]) {
        let folder = try scratchFolder("prm-mpi")
        let backbone = folder.appendingPathComponent("tiny-bert")
        try TinyBert.makeFolder(backbone)
        let comparisons = SyntheticPreferences.twoGroups(users: 4, minorityShare: 0.25, comparisonsPerUser: 50, seed: 5).comparisons
        let train = folder.appendingPathComponent("train.jsonl"), dev = folder.appendingPathComponent("dev.jsonl")
        let held = comparisons.indices.filter { $0 % 5 == 4 }, kept = comparisons.indices.filter { $0 % 5 != 4 }
        try JSONL.write(kept.map { comparisons[$0] }, to: train)
        try JSONL.write(held.map { comparisons[$0] }, to: dev)
        return (folder, ["train", "--backbone", backbone.path, "--data", train.path, "--dev", dev.path, "--max-length", "48",
                         "--batch-size", "16", "--micro-batch", "8", "--no-refit-seen", "--log-every", "5", "--threads", "1"])
    }

    /// Two ranks take the single process's 20 steps (dropout on: each micro-batch's mask is
    /// seeded by its place in the global batch): the same weights within float32 summation
    /// order, the same held-out accuracy, and only rank 0 wrote the folder.
    func testTwoRanksTrainTheSingleProcessWeights() throws {
        let (folder, common) = try tinyRun()
        let single = folder.appendingPathComponent("single"), ranks = folder.appendingPathComponent("ranks")
        try runToEnd(common + ["--epochs", "2", "--out", single.path])
        let job = try runToEnd(common + ["--epochs", "2", "--out", ranks.path], ranks: 2)
        XCTAssertTrue(job.contains("2 data-parallel ranks (this is rank 0)"), job)
        try assertSameWeights(ranks, single)
        let a = try log(single), b = try log(ranks)
        XCTAssertEqual(a.last?.step, 20)
        XCTAssertEqual(b.map(\.step), a.map(\.step))
        XCTAssertEqual(b.compactMap(\.devAccuracy), a.compactMap(\.devAccuracy))
        XCTAssertEqual(b.compactMap(\.devAccuracy).count, 2, "dev accuracy at both epoch ends")
        XCTAssertGreaterThan(a.last?.devAccuracy ?? 0, 0.5, "the tiny model learned something to compare")
        for (x, y) in zip(a, b) { XCTAssertEqual(x.loss, y.loss, accuracy: 1e-4 * max(1, abs(x.loss))) }
        XCTAssertNotNil(b.last?.allreduceSeconds)
        XCTAssertNil(a.last?.allreduceSeconds)
        // One log line per log point: the second rank wrote nothing into the folder.
        XCTAssertEqual(try String(contentsOf: ranks.appendingPathComponent("train_log.jsonl"), encoding: .utf8)
                        .split(separator: "\n").count, a.count)
    }

    /// A rank killed mid-run stops the whole job with a non-zero status within the bound, and
    /// Open MPI names the rank and the signal; the run resumes from its last checkpoint with
    /// one rank (2 → 1), and a run killed as one process resumes with two (1 → 2): both end
    /// with the weights of an uninterrupted single process.
    func testAKilledRankStopsTheJobAndTheRunResumesWithAnotherRankCount() throws {
        let (folder, common) = try tinyRun()
        let reference = folder.appendingPathComponent("reference")
        let long = common + ["--epochs", "12"]
        try runToEnd(long + ["--out", reference.path])

        let twoToOne = folder.appendingPathComponent("two-to-one")
        let job = try start(long + ["--out", twoToOne.path], ranks: 2)
        try waitForCheckpoint(twoToOne, job: job)
        let children = try childProcesses(of: job.process.processIdentifier)
        XCTAssertEqual(children.count, 2, "mpirun's ranks: \(children)")
        let killed = Date()
        kill(children.last ?? 0, SIGKILL)
        let output = try job.wait(timeout: 60)
        XCTAssertNotEqual(job.process.terminationStatus, 0, output)
        XCTAssertLessThan(Date().timeIntervalSince(killed), 60)
        XCTAssertTrue(output.contains("signal 9"), output)
        try runToEnd(["train", "--resume", "--out", twoToOne.path, "--threads", "1"])
        try assertSameWeights(twoToOne, reference)

        let oneToTwo = folder.appendingPathComponent("one-to-two")
        let alone = try start(long + ["--out", oneToTwo.path], ranks: nil)
        try waitForCheckpoint(oneToTwo, job: alone)
        alone.process.interrupt()
        _ = try alone.wait(timeout: 60)
        try runToEnd(["train", "--resume", "--out", oneToTwo.path, "--threads", "1"], ranks: 2)
        try assertSameWeights(oneToTwo, reference)
    }

    /// `prm sft` on 2 ranks takes the single process's 20 steps of a tiny policy (dropout off:
    /// ranks draw other masks than one process): the same weights, the same validation loss.
    func testTwoRanksTrainTheSingleProcessPolicy() throws {
        let folder = try scratchFolder("prm-mpi-sft")
        let data = TestSupport.repoRoot.appendingPathComponent("data/lengthpref")
        let common = ["sft", "--limit", "80", "--epochs", "2", "--batch-size", "8", "--layers", "1", "--heads", "2", "--embedding", "16",
                      "--positions", "96", "--user-tokens", "2", "--dropout", "0", "--threads", "1",
                      "--data", data.appendingPathComponent("train.jsonl").path, "--dev", data.appendingPathComponent("dev.jsonl").path,
                      "--tokenizer", TestSupport.repoRoot.appendingPathComponent("data/policy/tokenizer.json").path]
        let single = folder.appendingPathComponent("single"), ranks = folder.appendingPathComponent("ranks")
        try runToEnd(common + ["--out", single.path])
        try runToEnd(common + ["--out", ranks.path], ranks: 2)
        try assertSameWeights(ranks, single)
        func devLosses(_ out: URL) throws -> [Double] {
            try String(contentsOf: out.appendingPathComponent("sft_log.jsonl"), encoding: .utf8).split(separator: "\n").compactMap {
                (try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])?["dev_loss"] as? Double
            }
        }
        let a = try devLosses(single), b = try devLosses(ranks)
        XCTAssertEqual(a.count, 2)
        XCTAssertEqual(b.count, a.count)
        for (x, y) in zip(a, b) { XCTAssertEqual(x, y, accuracy: 1e-5 * x) }
    }

    // MARK: - helpers

    /// A started `prm` (alone, or under `mpirun -np ranks`) with its merged output in a file.
    final class Job {
        let process = Process()
        let output: URL

        init(_ arguments: [String], ranks: Int?, output: URL) throws {
            self.output = output
            process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            process.arguments = ranks.map { ["mpirun"] + MPITrainTests.mpirunFlags + ["-np", "\($0)", MPITrainTests.prm.path] }
                ?? [MPITrainTests.prm.path]
            process.arguments! += arguments
            _ = FileManager.default.createFile(atPath: output.path, contents: nil)
            let handle = try FileHandle(forWritingTo: output)
            process.standardOutput = handle
            process.standardError = handle
            process.standardInput = FileHandle.nullDevice
            try process.run()
        }

        /// Waits for the exit (killing the job after `timeout` seconds); returns its output.
        func wait(timeout: TimeInterval) throws -> String {
            let deadline = Date().addingTimeInterval(timeout)
            while process.isRunning && Date() < deadline { usleep(50_000) }
            if process.isRunning {
                process.terminate()
                process.waitUntilExit()
                throw TestSupport.Failure("\(process.arguments ?? []) still ran after \(timeout) s:\n\(try text())")
            }
            return try text()
        }

        func text() throws -> String { try String(contentsOf: output, encoding: .utf8) }
    }

    func start(_ arguments: [String], ranks: Int?) throws -> Job {
        guard FileManager.default.isExecutableFile(atPath: Self.prm.path) else {
            throw TestSupport.Failure("\(Self.prm.path) is missing: build with swift build -c release")
        }
        let job = try Job(arguments, ranks: ranks, output: try scratchFolder("prm-mpi-log").appendingPathComponent("output.txt"))
        addTeardownBlock { if job.process.isRunning { job.process.terminate() } }
        return job
    }

    /// Runs to the end and requires exit 0; returns the output.
    @discardableResult
    func runToEnd(_ arguments: [String], ranks: Int? = nil) throws -> String {
        let job = try start(arguments, ranks: ranks)
        let output = try job.wait(timeout: 600)
        guard job.process.terminationStatus == 0 else {
            throw TestSupport.Failure("\(job.process.arguments ?? []) exited \(job.process.terminationStatus):\n\(output)")
        }
        return output
    }

    /// Waits until the run's first checkpoint (epoch 1) is complete: its resume state is written last.
    func waitForCheckpoint(_ out: URL, job: Job) throws {
        let state = out.appendingPathComponent("trainer_state.json")
        let deadline = Date().addingTimeInterval(300)
        while !FileManager.default.fileExists(atPath: state.path) {
            guard job.process.isRunning, Date() < deadline else {
                throw TestSupport.Failure("no checkpoint in \(out.path) before the job ended:\n\(try job.text())")
            }
            usleep(20_000)
        }
    }

    /// The processes whose parent is `pid` (mpirun's ranks), from /proc.
    func childProcesses(of pid: Int32) throws -> [Int32] {
        try FileManager.default.contentsOfDirectory(atPath: "/proc").compactMap(Int32.init).filter { child in
            guard let stat = try? String(contentsOfFile: "/proc/\(child)/stat", encoding: .utf8),
                  let close = stat.lastIndex(of: ")") else { return false }
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            return fields.count > 1 && Int32(fields[1]) == pid
        }.sorted()
    }

    func log(_ out: URL) throws -> [TrainingLogEntry] {
        try String(contentsOf: out.appendingPathComponent("train_log.jsonl"), encoding: .utf8).split(separator: "\n")
            .map { try JSONDecoder().decode(TrainingLogEntry.self, from: Data($0.utf8)) }
    }

    /// Every tensor of `a`'s model.safetensors within 1e-5 of `b`'s, relative to the largest
    /// magnitude in that tensor of `b`. Elements below 1e-5 in both runs are float residue
    /// around zero and are compared absolutely, within 1e-5: the attention key bias (BERT's
    /// key.bias, the middle third of GPT-2's c_attn.bias) has an exact gradient of 0, since it
    /// shifts all of a query's scores alike and the softmax cancels the shift, so its values are
    /// rounding noise that AdamW normalises into steps, different for any other summation order.
    func assertSameWeights(_ a: URL, _ b: URL, file: StaticString = #filePath, line: UInt = #line) throws {
        let x = try SafetensorsFile(contentsOf: a.appendingPathComponent("model.safetensors"))
        let y = try SafetensorsFile(contentsOf: b.appendingPathComponent("model.safetensors"))
        XCTAssertEqual(x.names, y.names, file: file, line: line)
        let residue: Float = 1e-5
        for name in y.names {
            let u = try x.tensor(name), v = try y.tensor(name)
            XCTAssertEqual(u.count, v.count, name, file: file, line: line)
            let count = min(u.count, v.count)
            let scale = (0..<count).reduce(Float(0)) { max($0, abs(v.data[$1])) }
            var relative: Float = 0
            for i in 0..<count {
                let difference = abs(u.data[i] - v.data[i])
                if max(abs(u.data[i]), abs(v.data[i])) < residue {
                    XCTAssertLessThanOrEqual(difference, residue, "\(name)[\(i)]", file: file, line: line)
                } else {
                    relative = max(relative, difference / scale)
                }
            }
            XCTAssertLessThanOrEqual(relative, 1e-5, "\(name): largest difference relative to the largest value \(scale)", file: file, line: line)
        }
    }
}
