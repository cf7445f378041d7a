import Foundation
import XCTest
import PRMTestSupport
import PRMModel
import PRMScoring
import PRMServing
import PRMTraining

/// `prm eval --json`'s report, with the keys the README documents.
struct EvalReportFile: Decodable {
    struct Cell: Decodable {
        let n: Int
        let correct: Int
        let accuracy: Double
        let genericAccuracy: Double
        enum CodingKeys: String, CodingKey { case n, correct, accuracy, genericAccuracy = "generic_accuracy" }
    }

    struct User: Decodable {
        let n: Int
        let correct: Int
        let accuracy: Double
        let genericAccuracy: Double
        let seen: Bool
        enum CodingKeys: String, CodingKey { case n, correct, accuracy, genericAccuracy = "generic_accuracy", seen }
    }

    let overall: Cell
    let seen: Cell
    let unseen: Cell
    let byUser: [String: User]
    enum CodingKeys: String, CodingKey { case overall, seen, unseen, byUser = "by_user" }
}

/// One line of `prm score`'s output.
struct ScoreLine: Decodable {
    struct Ranked: Decodable {
        let index: Int
        let score: Double
        let text: String
    }

    let userID: String
    let knownUser: Bool
    let ranking: [Ranked]
    enum CodingKeys: String, CodingKey { case userID = "user_id", knownUser = "known_user", ranking }
}

/// A tiny end-to-end: `prm train` a tiny BERT on synthetic comparisons, then `prm eval`,
/// `prm score` and `prm train --resume` on its checkpoint; plus the data and usage errors of
/// `prm train`. The training run is shared by the tests of this class (made on first use).
final class TrainEvalScoreTests: XCTestCase {
    struct TrainedRun {
        let root: URL
        let backbone: URL
        let data: URL
        let out: URL
        let train: CommandResult
        let comparisons: [Comparison]
    }

    nonisolated(unsafe) static var shared: Result<TrainedRun, any Error>?

    override class func tearDown() {
        if case .success(let run)? = shared { try? FileManager.default.removeItem(at: run.root) }
        shared = nil
        super.tearDown()
    }

    /// 4 users (user-1 … user-4, the last prefers short replies), 10 comparisons each, trained for
    /// one epoch of 5 steps of 8.
    func trainedRun() throws -> TrainedRun {
        if let shared = Self.shared { return try shared.get() }
        let made = Result { () throws -> TrainedRun in
            let root = try TestSupport.temporaryDirectory("prm-cli-e2e")
            let backbone = root.appendingPathComponent("tiny-bert")
            try TinyBert.makeFolder(backbone)
            let comparisons = SyntheticPreferences.twoGroups(users: 4, minorityShare: 0.25, comparisonsPerUser: 10, seed: 5).comparisons
            let data = root.appendingPathComponent("small.jsonl")
            try JSONL.write(comparisons, to: data)
            let out = root.appendingPathComponent("run")
            let train = PRM.run("train", "--backbone", backbone.path, "--data", data.path, "--out", out.path,
                                "--epochs", "1", "--max-length", "64", "--batch-size", "8")
            return TrainedRun(root: root, backbone: backbone, data: data, out: out, train: train, comparisons: comparisons)
        }
        Self.shared = made
        return try made.get()
    }

    func jsonObject(_ url: URL) throws -> [String: Any] {
        try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any], url.path)
    }

    // MARK: - train

    func testTrainWritesACompleteCheckpoint() throws {
        let run = try trainedRun()
        assertSucceeded(run.train)
        XCTAssertEqual(run.train.stdout, "", "train reports through the log, not stdout")

        for name in ["config.json", "model.safetensors", "tokenizer.json", "users.json", "optimizer.safetensors",
                     "trainer_state.json", "train_log.jsonl"] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: run.out.appendingPathComponent(name).path), "missing \(name)")
        }
        let config = try jsonObject(run.out.appendingPathComponent("config.json"))
        XCTAssertEqual(config["hidden_size"] as? Int, 32, "the backbone's own keys are kept")
        let prm = try XCTUnwrap(config["prm"] as? [String: Any])
        XCTAssertEqual(prm["aggregator"] as? String, "linear-head", "the default aggregator")
        XCTAssertEqual(prm["max_length"] as? Int, 64)

        let users = try jsonObject(run.out.appendingPathComponent("users.json"))
        XCTAssertEqual(users.keys.sorted(), ["user-1", "user-2", "user-3", "user-4"])
        XCTAssertEqual(Set(users.values.compactMap { $0 as? Int }), [1, 2, 3, 4])

        let state = try jsonObject(run.out.appendingPathComponent("trainer_state.json"))
        XCTAssertEqual(state["step"] as? Int, 5, "40 comparisons in batches of 8 for one epoch")
        XCTAssertEqual((state["data"] as? [String: Any])?["count"] as? Int, 40)
        XCTAssertEqual(state["data_file"] as? String, run.data.path)
        let settings = try XCTUnwrap(state["settings"] as? [String: Any])
        XCTAssertEqual(settings["epochs"] as? Int, 1)
        XCTAssertEqual(settings["batch_size"] as? Int, 8)

        let log = try String(contentsOf: run.out.appendingPathComponent("train_log.jsonl"), encoding: .utf8)
        let entries = try log.split(separator: "\n").map { try XCTUnwrap(JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]) }
        XCTAssertEqual(entries.last?["step"] as? Int, 5)
        XCTAssertTrue(entries.allSatisfy { ($0["loss"] as? Double)?.isFinite == true }, log)
    }

    func testBadTrainingDataNamesEveryBadLineBeforeTraining() throws {
        let run = try trainedRun()
        let folder = try scratchFolder()
        let data = folder.appendingPathComponent("bad.jsonl"), out = folder.appendingPathComponent("run")
        let good = try run.comparisons.prefix(4).map {
            String(decoding: try JSONSerialization.data(withJSONObject: JSONL.object($0), options: .sortedKeys), as: UTF8.self)
        }
        let lines = [
            good[0], good[1],
            #"{"user_id": "user-1", "prompt": "Human: hi\n\nAssistant:", "chosen": 42, "rejected": "No."}"#,
            good[2],
            #"{"user_id": "user-2", "prompt": "Human: hi\n\nAssistant:", "chosen": "Yes."#,
            good[3],
        ]
        try Data((lines.joined(separator: "\n") + "\n").utf8).write(to: data)

        let failed = PRM.run("train", "--backbone", run.backbone.path, "--data", data.path, "--out", out.path,
                             "--epochs", "1", "--max-length", "64", "--batch-size", "8")
        assertFailed(failed, command: "train", mentioning: ["2 bad rows", "\(data.path):3: field 'chosen': expected a string",
                                                              "\(data.path):5: invalid JSON"])
        XCTAssertFalse(FileManager.default.fileExists(atPath: out.path), "nothing may be written before the data is valid")

        let skipped = PRM.run("train", "--backbone", run.backbone.path, "--data", data.path, "--out", out.path,
                              "--epochs", "1", "--max-length", "64", "--batch-size", "8", "--skip-invalid")
        assertSucceeded(skipped)
        let state = try jsonObject(out.appendingPathComponent("trainer_state.json"))
        XCTAssertEqual((state["data"] as? [String: Any])?["count"] as? Int, 4, "trained on the 4 valid rows")
    }

    func testUnknownUserModelIsAUsageError() throws {
        let out = try scratchFolder().appendingPathComponent("run")
        let result = PRM.run("train", "--data", "unused.jsonl", "--out", out.path, "--user-model", "foo")
        assertUsageError(result, command: "train", message: "--user-model must be one of uniform, individual, cluster; got 'foo'")
        XCTAssertFalse(FileManager.default.fileExists(atPath: out.path))
    }

    func testAlphaOutsideZeroOneIsAUsageError() throws {
        let out = try scratchFolder().appendingPathComponent("run")
        let result = PRM.run("train", "--data", "unused.jsonl", "--out", out.path, "--alpha", "2")
        assertUsageError(result, command: "train", message: "--alpha must be in [0, 1], got 2.0")
        XCTAssertFalse(FileManager.default.fileExists(atPath: out.path))
    }

    func testTrainWithoutOutIsAUsageError() {
        assertUsageError(PRM.run("train", "--data", "unused.jsonl"), command: "train", message: "missing required option --out")
    }

    // MARK: - resume

    /// The finished run resumed, with and without --data: exit 0 and not one byte changed.
    func testResumingAFinishedRunChangesNothing() throws {
        let run = try trainedRun()
        assertSucceeded(run.train)
        let copy = try scratchFolder().appendingPathComponent("run")
        try FileManager.default.copyItem(at: run.out, to: copy)
        let before = try folderSnapshot(copy)

        let resumed = PRM.run("train", "--resume", "--out", copy.path)
        assertSucceeded(resumed)
        XCTAssertEqual(resumed.stdout, "")
        XCTAssertEqual(try folderSnapshot(copy), before, "resuming a finished run rewrote its files")

        let sameData = PRM.run("train", "--resume", "--out", copy.path, "--data", run.data.path)
        assertSucceeded(sameData)
        XCTAssertEqual(try folderSnapshot(copy), before)

        // Other data cannot continue this run: refused before anything is written.
        let other = try scratchFolder().appendingPathComponent("other.jsonl")
        try JSONL.write(Array(run.comparisons.prefix(16)), to: other)
        let wrongData = PRM.run("train", "--resume", "--out", copy.path, "--data", other.path)
        assertFailed(wrongData, command: "train", mentioning: [copy.path, "training data differ", "16 comparisons vs 40"])
        XCTAssertEqual(try folderSnapshot(copy), before)
    }

    func testResumeWithoutAPreviousRunIsAClearError() throws {
        let empty = try scratchFolder()
        let result = PRM.run("train", "--resume", "--out", empty.path)
        assertFailed(result, command: "train", mentioning: [empty.appendingPathComponent("trainer_state.json").path, "not found", "--resume"])
    }

    // MARK: - eval

    func testEvalReportsOverallAndPerUser() throws {
        let run = try trainedRun()
        assertSucceeded(run.train)
        let json = try scratchFolder().appendingPathComponent("report.json")
        let result = PRM.run("eval", "--model", run.out.path, "--data", run.data.path, "--json", json.path)
        assertSucceeded(result)
        XCTAssertTrue(result.stdout.contains("overall"), result.stdout)
        XCTAssertTrue(result.stdout.contains("user-4"), result.stdout)

        let report = try JSONDecoder().decode(EvalReportFile.self, from: Data(contentsOf: json))
        XCTAssertEqual(report.overall.n, 40)
        XCTAssertTrue((0...1).contains(report.overall.accuracy))
        XCTAssertEqual(report.overall.accuracy, Double(report.overall.correct) / 40, accuracy: 1e-12)
        XCTAssertEqual(report.seen.n, 40)
        XCTAssertEqual(report.unseen.n, 0)
        XCTAssertEqual(report.byUser.keys.sorted(), ["user-1", "user-2", "user-3", "user-4"])
        for (id, user) in report.byUser {
            XCTAssertEqual(user.n, 10, id)
            XCTAssertTrue((0...user.n).contains(user.correct), id)
            XCTAssertEqual(user.accuracy, Double(user.correct) / Double(user.n), accuracy: 1e-12, id)
            XCTAssertTrue((0...1).contains(user.genericAccuracy), id)
            XCTAssertTrue(user.seen, id)
        }
        XCTAssertEqual(report.byUser.values.map(\.correct).reduce(0, +), report.overall.correct)
    }

    func testEvalMarksUnseenUsers() throws {
        let run = try trainedRun()
        assertSucceeded(run.train)
        let folder = try scratchFolder()
        let data = folder.appendingPathComponent("mixed.jsonl"), json = folder.appendingPathComponent("report.json")
        var newcomer = Array(run.comparisons.prefix(3))
        for i in newcomer.indices { newcomer[i].userID = "newcomer" }
        try JSONL.write(Array(run.comparisons.prefix(2)) + newcomer, to: data)
        let result = PRM.run("eval", "--model", run.out.path, "--data", data.path, "--json", json.path)
        assertSucceeded(result)
        let report = try JSONDecoder().decode(EvalReportFile.self, from: Data(contentsOf: json))
        XCTAssertEqual(report.overall.n, 5)
        XCTAssertEqual(report.seen.n, 2)
        XCTAssertEqual(report.unseen.n, 3)
        XCTAssertEqual(report.byUser["newcomer"]?.seen, false)
        XCTAssertEqual(report.byUser["user-1"]?.seen, true)
        // An unseen user is scored as the generic user: both accuracies agree.
        XCTAssertEqual(report.byUser["newcomer"]?.accuracy, report.byUser["newcomer"]?.genericAccuracy)
    }

    func testEvalOfAPlainBackboneFolderIsAClearError() throws {
        let run = try trainedRun()
        let result = PRM.run("eval", "--model", run.backbone.path, "--data", run.data.path)
        assertFailed(result, command: "eval", mentioning: [run.backbone.appendingPathComponent("config.json").path,
                                                            "missing field 'prm'", "--backbone"])
    }

    /// A zero batch size used to trap in `stride(by: 0)`; a negative one evaluated nothing.
    func testEvalBatchSizeBelowOneIsAUsageError() throws {
        let run = try trainedRun()
        for value in ["0", "-4"] {
            let result = PRM.run("eval", "--model", run.out.path, "--data", run.data.path, "--batch-size", value)
            assertUsageError(result, command: "eval", message: "--batch-size must be at least 1, got \(value)")
        }
    }

    // MARK: - adapt and few-shot

    func testAdaptAddsNewUsersToACopyOfTheModel() throws {
        let run = try trainedRun()
        assertSucceeded(run.train)
        let folder = try scratchFolder()
        let data = folder.appendingPathComponent("newcomer.jsonl"), out = folder.appendingPathComponent("adapted")
        var newcomer = Array(run.comparisons.suffix(10))
        for i in newcomer.indices { newcomer[i].userID = "newcomer" }
        try JSONL.write(newcomer, to: data)
        let before = try folderSnapshot(run.out)

        let result = PRM.run("adapt", "--model", run.out.path, "--data", data.path, "--out", out.path)
        assertSucceeded(result)
        XCTAssertEqual(result.stdout, "newcomer\t5\t10 comparisons\n")
        XCTAssertEqual(try folderSnapshot(run.out), before, "the trained run is left as it was")
        let users = try jsonObject(out.appendingPathComponent("users.json"))
        XCTAssertEqual(users["newcomer"] as? Int, 5)
        XCTAssertEqual(users.count, 5)
        let prm = try XCTUnwrap(try jsonObject(out.appendingPathComponent("config.json"))["prm"] as? [String: Any])
        XCTAssertEqual((prm["user_model"] as? [String: Any])?["users"] as? Int, 5)
        // The newcomer's score statistics join the trained users' (the drift reference of prm serve).
        let trainedStatistics = try XCTUnwrap(ScoreStatistics.recorded(in: run.out))
        let statistics = try XCTUnwrap(ScoreStatistics.recorded(in: out))
        XCTAssertEqual(statistics.users["newcomer"]?.comparisons, 10)
        XCTAssertEqual(Set(statistics.users.keys), Set(trainedStatistics.users.keys).union(["newcomer"]))
        for (id, trained) in trainedStatistics.users {
            XCTAssertEqual(statistics.users[id]?.meanScore ?? .nan, trained.meanScore, accuracy: 1e-9, "the trained users' scores did not move")
        }
        let adapted = TrainedRun(root: run.root, backbone: run.backbone, data: run.data, out: out, train: run.train, comparisons: run.comparisons)
        XCTAssertTrue(try score(adapted, user: "newcomer").knownUser)

        assertFailed(PRM.run("adapt", "--model", out.path, "--data", data.path, "--out", folder.appendingPathComponent("again").path),
                     command: "adapt", mentioning: [data.path, "already in the model (newcomer)"])
        assertUsageError(PRM.run("adapt", "--model", run.out.path, "--data", data.path, "--out", run.out.path), command: "adapt",
                         message: "--out must be another folder than --model (the trained run stays as it was)")
    }

    /// `prm train`'s last stage and `prm adapt --refit-seen` on a run trained without it give the
    /// same weights; both record what the refit did; the written folder holds exactly the
    /// checkpoint's files (each written to a temporary name and renamed: none is left behind).
    func testTrainRefitsSeenUsersAsAdaptRefitSeenDoes() throws {
        let run = try trainedRun()
        assertSucceeded(run.train)
        let folder = try scratchFolder()
        let plain = folder.appendingPathComponent("plain"), refitted = folder.appendingPathComponent("refitted")
        assertSucceeded(PRM.run("train", "--backbone", run.backbone.path, "--data", run.data.path, "--out", plain.path,
                                "--epochs", "1", "--max-length", "64", "--batch-size", "8", "--no-refit-seen"))
        let before = try folderSnapshot(plain)
        let result = PRM.run("adapt", "--refit-seen", "--model", plain.path, "--data", run.data.path, "--out", refitted.path)
        assertSucceeded(result)
        XCTAssertEqual(result.stdout, "refitted 4 seen users on 40 comparisons\n")
        XCTAssertEqual(try folderSnapshot(plain), before, "the trained run is left as it was")
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: refitted.path).sorted(),
                       ["config.json", "model.safetensors", "tokenizer.json", "users.json"])

        let (trainStage, _, trainRecord) = try Checkpoint.load(run.out)
        let (adaptStage, _, adaptRecord) = try Checkpoint.load(refitted)
        let (unrefitted, _, plainRecord) = try Checkpoint.load(plain)
        XCTAssertEqual(adaptStage.parameters.values.array, trainStage.parameters.values.array, "the same refit, in train and in adapt")
        XCTAssertNotEqual(unrefitted.parameters.values.array, trainStage.parameters.values.array)
        XCTAssertNil(plainRecord["refit_seen"], "--no-refit-seen skips the stage")
        for record in [trainRecord, adaptRecord] {
            let refit = try XCTUnwrap(record["refit_seen"] as? [String: Any], "\(record)")
            XCTAssertEqual(refit["users"] as? Int, 4)
            XCTAssertEqual(refit["prior_scale"] as? Double, TrainingSettings().refitPriorScale)
            let fit = try ["before", "after"].map { try XCTUnwrap((refit[$0] as? [String: Any])?["mean_loss"] as? Double) }
            XCTAssertLessThan(fit[1], fit[0], "the refit fits the training comparisons better: \(refit)")
        }

        assertUsageError(PRM.run("adapt", "--refit-seen", "--refit-prior-scale", "0", "--model", plain.path, "--data", run.data.path,
                                 "--out", folder.appendingPathComponent("zero").path),
                         command: "adapt", message: "--refit-prior-scale must be a positive number, got 0.0")
        assertUsageError(PRM.run("train", "--data", run.data.path, "--out", folder.appendingPathComponent("zero").path, "--refit-prior-scale", "-1"),
                         command: "train", message: "--refit-prior-scale must be a positive number, got -1.0")
    }

    func testEvalFewShotAdaptsEachUnseenUser() throws {
        let run = try trainedRun()
        assertSucceeded(run.train)
        let folder = try scratchFolder()
        let data = folder.appendingPathComponent("mixed.jsonl"), json = folder.appendingPathComponent("report.json")
        var newcomer = Array(run.comparisons.suffix(10))
        for i in newcomer.indices { newcomer[i].userID = "newcomer" }
        try JSONL.write(Array(run.comparisons.prefix(4)) + newcomer, to: data)
        let result = PRM.run("eval", "--model", run.out.path, "--data", data.path, "--json", json.path, "--few-shot", "5,1")
        assertSucceeded(result)
        XCTAssertTrue(result.stdout.contains("few-shot"), result.stdout)
        let report = try jsonObject(json)
        let rows = try XCTUnwrap(report["few_shot"] as? [[String: Any]])
        XCTAssertEqual(rows.map { $0["k"] as? Int }, [1, 5])
        XCTAssertEqual(rows.map { $0["users"] as? Int }, [1, 1])
        XCTAssertEqual(rows.map { ($0["scored"] as? [String: Any])?["n"] as? Int }, [9, 5], "the first K adapt, the rest are scored")
        assertUsageError(PRM.run("eval", "--model", run.out.path, "--data", data.path, "--few-shot", "0,2"), command: "eval",
                         message: "--few-shot expects positive integers separated by commas (e.g. 1,2,5,10), got '0,2'")
    }

    // MARK: - score

    static let prompt = "Human: Do you have any advice about chess?\n\nAssistant:"
    static let candidates = ["Yes, read one good book on the subject.",
                             "Sure, here are a few ideas about chess. You could start small and keep at it every day. You could ask someone who has done it before.",
                             "Play."]

    func score(_ run: TrainedRun, user: String?) throws -> ScoreLine {
        var arguments = ["score", "--model", run.out.path, "--prompt", Self.prompt]
        if let user { arguments += ["--user", user] }
        let result = PRM.run(arguments + Self.candidates)
        assertSucceeded(result)
        let lines = try JSONL.decodeLines(ScoreLine.self, result)
        XCTAssertEqual(lines.count, 1, "\(result)")
        return try XCTUnwrap(lines.first)
    }

    func assertRanked(_ line: ScoreLine, file: StaticString = #filePath, line sourceLine: UInt = #line) {
        XCTAssertEqual(line.ranking.map(\.index).sorted(), [0, 1, 2], "each candidate once", file: file, line: sourceLine)
        XCTAssertEqual(line.ranking.map(\.score), line.ranking.map(\.score).sorted(by: >), "best first", file: file, line: sourceLine)
        XCTAssertTrue(line.ranking.allSatisfy(\.score.isFinite), file: file, line: sourceLine)
        for entry in line.ranking where Self.candidates.indices.contains(entry.index) {
            XCTAssertEqual(entry.text, Self.candidates[entry.index], file: file, line: sourceLine)
        }
    }

    func testScoreRanksCandidatesForKnownAndUnknownUsers() throws {
        let run = try trainedRun()
        assertSucceeded(run.train)
        let known = try score(run, user: "user-1")
        XCTAssertEqual(known.userID, "user-1")
        XCTAssertTrue(known.knownUser)
        assertRanked(known)

        let stranger = try score(run, user: "someone-new")
        XCTAssertEqual(stranger.userID, "someone-new")
        XCTAssertFalse(stranger.knownUser)
        assertRanked(stranger)

        // An unknown id is the generic user 0, exactly as when no user is given.
        let generic = try score(run, user: nil)
        XCTAssertFalse(generic.knownUser)
        XCTAssertEqual(generic.ranking.map(\.index), stranger.ranking.map(\.index))
        XCTAssertEqual(generic.ranking.map(\.score), stranger.ranking.map(\.score))
    }

    func testScoreInputFile() throws {
        let run = try trainedRun()
        assertSucceeded(run.train)
        let folder = try scratchFolder()
        let requests: [[String: Any]] = [
            ["user_id": "user-1", "prompt": Self.prompt, "candidates": Self.candidates],
            ["user_id": "someone-new", "prompt": Self.prompt, "candidates": Array(Self.candidates.prefix(2)), "user_info": "likes brevity"],
        ]
        let good = folder.appendingPathComponent("requests.jsonl")
        try JSONL.write(requests, to: good)
        let result = PRM.run("score", "--model", run.out.path, "--input", good.path)
        assertSucceeded(result)
        let lines = try JSONL.decodeLines(ScoreLine.self, result)
        XCTAssertEqual(lines.map(\.userID), ["user-1", "someone-new"], "one line per request, in order")
        XCTAssertEqual(lines.map(\.knownUser), [true, false])
        XCTAssertEqual(lines.map(\.ranking.count), [3, 2])
        if let first = lines.first {
            assertRanked(first)
            // The same request on the command line scores the same.
            let direct = try score(run, user: "user-1")
            XCTAssertEqual(first.ranking.map(\.index), direct.ranking.map(\.index))
            for (a, b) in zip(first.ranking, direct.ranking) { XCTAssertEqual(a.score, b.score, accuracy: 1e-6) }
        }

        let bad = folder.appendingPathComponent("bad-requests.jsonl")
        try JSONL.write(requests + [["user_id": "user-2", "prompt": Self.prompt, "candidates": [String]()]], to: bad)
        let failed = PRM.run("score", "--model", run.out.path, "--input", bad.path)
        assertFailed(failed, command: "score", mentioning: ["\(bad.path):3:", "'candidates' must be a non-empty list"])
    }

    /// `prm score --server` prints exactly what in-process `prm score` prints.
    func testScoreThroughAServerPrintsTheSameAsInProcess() throws {
        let run = try trainedRun()
        assertSucceeded(run.train)
        var settings = ServerSettings()
        settings.bind = "tcp://127.0.0.1:0"
        let server = try BackgroundServer(try ScoringServer(scorer: try Scorer(checkpoint: run.out), settings: settings))
        defer { XCTAssertNoThrow(try server.stop()) }
        let folder = try scratchFolder()
        let requests = folder.appendingPathComponent("requests.jsonl")
        try JSONL.write([
            ["user_id": "user-1", "prompt": Self.prompt, "candidates": Self.candidates],
            ["user_id": "someone-new", "prompt": Self.prompt, "candidates": Array(Self.candidates.prefix(2)), "user_info": "likes brevity"],
            ["prompt": String(repeating: "a long prompt ", count: 200), "candidates": ["cut to the window"]],
        ], to: requests)
        let local = PRM.run("score", "--model", run.out.path, "--input", requests.path)
        let remote = PRM.run("score", "--server", server.endpoint, "--input", requests.path, "--timeout", "20")
        assertSucceeded(local)
        assertSucceeded(remote)
        XCTAssertEqual(remote.stdout, local.stdout)
        XCTAssertTrue(local.stdout.contains(#""truncated":[0]"#), local.stdout)
        let neither = PRM.run("score", "--prompt", "p", "c")
        assertUsageError(neither, command: "score", message: "give --model DIR (in process) or --server ENDPOINT")
    }

    /// `prm bench serve` runs every case against a server it starts, and records them.
    func testBenchServeRecordsEveryCase() throws {
        let run = try trainedRun()
        assertSucceeded(run.train)
        let json = try scratchFolder().appendingPathComponent("serve.json")
        let result = PRM.run("bench", "serve", "--model", run.out.path, "--requests", "4", "--clients", "2", "--candidates", "3",
                             "--users", "3", "--no-deployments", "--json", json.path)
        assertSucceeded(result)
        let report = try jsonObject(json)
        let latency = try XCTUnwrap(report["latency"] as? [String: Any])
        XCTAssertEqual(latency["requests"] as? Int, 3, "the first request warms up")
        let throughput = try XCTUnwrap(report["throughput"] as? [String: Any])
        XCTAssertEqual(throughput["items"] as? Int, 12)
        XCTAssertGreaterThan(throughput["fractionOfInProcess"] as? Double ?? 0, 0)
        XCTAssertNotNil(report["cache"] as? [String: Any])
        let http = try XCTUnwrap(report["http"] as? [String: Any], "the HTTP front door cases")
        let httpLatency = try XCTUnwrap(http["latency"] as? [String: Any])
        XCTAssertEqual(httpLatency["requests"] as? Int, 3, "the first request warms up both transports")
        XCTAssertGreaterThan((httpLatency["httpRoundTripMs"] as? [String: Any])?["p50"] as? Double ?? 0, 0)
        XCTAssertGreaterThan((httpLatency["zeromqRoundTripMs"] as? [String: Any])?["p50"] as? Double ?? 0, 0)
        XCTAssertNotNil(httpLatency["overheadP50"] as? Double)
        let single = try XCTUnwrap(http["singleSamples"] as? [String: Any])
        XCTAssertEqual(single["samples"] as? Int, 12)
        XCTAssertEqual(single["httpClients"] as? Int, 6, "64 clients at most, one per sample of a half (the halves go ABBA)")
        XCTAssertGreaterThan(single["fractionOfZeromq"] as? Double ?? 0, 0)
        XCTAssertGreaterThanOrEqual(single["httpMeanRequestsPerBatch"] as? Double ?? 0, 1)
        XCTAssertGreaterThan(single["httpClientCPUSeconds"] as? Double ?? 0, 0)
        XCTAssertGreaterThan(http["peakRSSMB"] as? Double ?? 0, 0)
        XCTAssertTrue(result.stdout.contains("wire + JSON + queueing"), result.stdout)
        XCTAssertTrue(result.stdout.contains("HTTP over ZeroMQ"), result.stdout)
        XCTAssertTrue(FileManager.default.fileExists(atPath: json.deletingPathExtension().appendingPathExtension("md").path))
        assertUsageError(PRM.run("bench", "serve"), command: "bench", message: "bench serve needs --model DIR, a checkpoint from prm train")
    }

    func testScoreWithoutCandidatesIsAUsageError() throws {
        let run = try trainedRun()
        assertSucceeded(run.train)
        let result = PRM.run("score", "--model", run.out.path, "--prompt", "Human: hi\n\nAssistant:")
        assertUsageError(result, command: "score", message: "give at least one candidate reply")
    }
}
