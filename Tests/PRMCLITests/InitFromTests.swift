import Foundation
import XCTest
import PRMCore
import PRMTestSupport
import PRMModel

/// An existing reward model (the tiny random Llama-, Qwen2-, Qwen3- and
/// MistralForSequenceClassification folders of Tests/Fixtures/llama-family, whose `transformers`
/// logits Tests/Reference/make_llama_family.py recorded) taken as it is by `prm score`, personalized by
/// `prm adapt`, and fine-tuned with users by `prm train --init-from`, which also starts from a prm
/// checkpoint keeping its users' vectors; bad sources are one clear error.
final class InitFromTests: XCTestCase {
    static let fixtures = TestSupport.repoRoot.appendingPathComponent("Tests/Fixtures/llama-family")
    static let llama = fixtures.appendingPathComponent("llama")

    /// The fixture's inputs as (prompt, reply) texts: the byte-level tokenizer has one id per byte
    /// (and 256 for <|endoftext|>), so the first token is the prompt and the rest the reply.
    static func inputTexts() throws -> [(prompt: String, reply: String)] {
        struct Inputs: Decodable { let ids: [[Int]] }
        let ids = try JSONDecoder().decode(Inputs.self, from: Data(contentsOf: fixtures.appendingPathComponent("inputs.json"))).ids
        func text(_ ids: ArraySlice<Int>) -> String {
            ids.map { $0 == 256 ? "<|endoftext|>" : String(decoding: [UInt8($0)], as: UTF8.self) }.joined()
        }
        return ids.map { (text($0.prefix(1)), text($0.dropFirst())) }
    }

    /// `transformers`' logit for each fixture input.
    static func referenceScores(_ name: String) throws -> [Float] {
        let reference = try SafetensorsFile(contentsOf: fixtures.appendingPathComponent("\(name)-reference.safetensors"))
        return try inputTexts().indices.map { b in
            var score: Float = 0
            try reference.read("score.\(b)", into: &score, shape: [1])
            return score
        }
    }

    /// `prm score --model model --input …` of every fixture input for `user`.
    func scores(_ model: URL, user: String, in folder: URL) throws -> (scores: [Double], known: Bool) {
        let requests = folder.appendingPathComponent("requests-\(user).jsonl")
        try JSONL.write(try Self.inputTexts().map { ["user_id": user, "prompt": $0.prompt, "candidates": [$0.reply]] }, to: requests)
        let result = PRM.run("score", "--model", model.path, "--input", requests.path)
        assertSucceeded(result)
        let lines = try JSONL.decodeLines(ScoreLine.self, result)
        return (lines.map { $0.ranking[0].score }, lines.allSatisfy(\.knownUser))
    }

    func assertEqualScores(_ got: [Double], _ expected: [Float], _ what: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(got.count, expected.count, what, file: file, line: line)
        for (g, e) in zip(got, expected) { XCTAssertEqual(g, Double(e), accuracy: 1e-4, what, file: file, line: line) }
    }

    /// Comparisons of two users with opposite tastes, in plain text short enough for the
    /// fixture's 64 positions: "brief" prefers the shorter reply, "wordy" the longer.
    static func tasteComparisons(users: [String] = ["brief", "wordy"]) -> [[String: Any]] {
        let pairs = [("Tea?", "Yes.", "Yes, with milk and a little honey."), ("Rain today?", "No.", "No, it stays dry until the evening."),
                     ("Best pet?", "A cat.", "A cat, since it keeps itself clean."), ("Walk or run?", "Walk.", "Walk, it is easier on the knees.")]
        return users.flatMap { user in
            pairs.map { prompt, short, long in
                ["user_id": user, "prompt": prompt, "chosen": user == "wordy" ? long : short, "rejected": user == "wordy" ? short : long]
            }
        }
    }

    // MARK: - As it is, and adapted

    func testSequenceClassificationFolderScoresAsTransformers() throws {
        let folder = try scratchFolder("prm-as-is")
        for name in ["llama", "qwen2-reward", "qwen3", "mistral-reward"] {
            let got = try scores(Self.fixtures.appendingPathComponent(name), user: "anyone", in: folder)
            XCTAssertFalse(got.known)
            assertEqualScores(got.scores, try Self.referenceScores(name), "\(name) served as it is")
        }
    }

    /// `prm adapt` adds users on top of the score head: the generic user still scores as
    /// `transformers`, and each added user orders their own comparisons better than it does (the
    /// MAP fit can only raise the likelihood it starts from, the generic user's).
    func testAdaptAddsUsersOnTopOfTheScoreHead() throws {
        let folder = try scratchFolder("prm-as-is-adapt")
        let (out, _) = try adapted(in: folder)
        let data = Self.tasteComparisons()
        let model = try Checkpoint.load(out)
        XCTAssertEqual(Set(model.users.indices.keys), ["brief", "wordy"])
        assertEqualScores(try scores(out, user: "anyone", in: folder).scores, try Self.referenceScores("llama"), "generic user after adapt")
        for user in ["brief", "wordy"] {
            let mine = data.filter { $0["user_id"] as? String == user }
            XCTAssertGreaterThan(try logLikelihood(mine, model: out, user: user, in: folder),
                                 try logLikelihood(mine, model: out, user: "anyone", in: folder), user)
        }
    }

    /// The llama fixture with the two taste users added by `prm adapt`, and their comparisons' file.
    func adapted(in folder: URL) throws -> (checkpoint: URL, data: URL) {
        let file = folder.appendingPathComponent("taste.jsonl"), out = folder.appendingPathComponent("adapted")
        try JSONL.write(Self.tasteComparisons(), to: file)
        let result = PRM.run("adapt", "--model", Self.llama.path, "--data", file.path, "--out", out.path)
        XCTAssertEqual(result.status, 0, "\(result)")
        return (out, file)
    }

    /// Σ log σ(r(chosen) − r(rejected)) of `comparisons` scored for `user`.
    func logLikelihood(_ comparisons: [[String: Any]], model: URL, user: String, in folder: URL) throws -> Double {
        let requests = folder.appendingPathComponent("pairs-\(user).jsonl")
        try JSONL.write(comparisons.map { ["user_id": user, "prompt": $0["prompt"]!, "candidates": [$0["chosen"]!, $0["rejected"]!]] }, to: requests)
        let result = PRM.run("score", "--model", model.path, "--input", requests.path)
        assertSucceeded(result)
        return try JSONL.decodeLines(ScoreLine.self, result).reduce(0) { total, line in
            let score = { (index: Int) in line.ranking.first { $0.index == index }?.score ?? .nan }
            return total - log1p(exp(-(score(0) - score(1))))
        }
    }

    // MARK: - prm train --init-from

    /// A run whose rates are 0 ends where it started: its generic user scores as `transformers`
    /// (the score head, reply counts muted); a run at the default rates trains, loads and scores.
    func testTrainInitFromSequenceClassificationStartsAtItsScores() throws {
        let folder = try scratchFolder("prm-init-seqcls")
        // The first comparisons of the built-in data, whose users are the fresh user table.
        let lines = try String(contentsOf: TestSupport.lengthprefDirectory.appendingPathComponent("train.jsonl"), encoding: .utf8)
            .split(separator: "\n").prefix(8)
        let data = folder.appendingPathComponent("eight.jsonl").path
        try Data((lines.joined(separator: "\n") + "\n").utf8).write(to: URL(fileURLWithPath: data))
        let common = ["train", "--init-from", Self.llama.path, "--data", data, "--epochs", "1", "--max-length", "48", "--batch-size", "4"]
        let frozen = folder.appendingPathComponent("frozen")
        assertSucceeded(PRM.run(common + ["--out", frozen.path, "--lr", "0", "--user-lr", "0", "--no-refit-seen"]))
        let expected = try Self.referenceScores("llama")
        assertEqualScores(try scores(frozen, user: "anyone", in: folder).scores, expected, "generic user at the start")
        let record = try XCTUnwrap(try Checkpoint.load(frozen).training["settings"] as? [String: Any])
        let source = try XCTUnwrap(record["init_from"] as? [String: Any])
        XCTAssertEqual(source["kind"] as? String, "sequence-classification")
        XCTAssertEqual(source["path"] as? String, Self.llama.standardizedFileURL.path)
        // Under a pooled scale the score head is divided by it, so the folder's scores stay.
        let scaled = folder.appendingPathComponent("scaled")
        assertSucceeded(PRM.run(common + ["--out", scaled.path, "--lr", "0", "--user-lr", "0", "--no-refit-seen", "--pooled-scale", "0.25"]))
        XCTAssertEqual(try Checkpoint.load(scaled).model.config.pooledScale, 0.25)
        assertEqualScores(try scores(scaled, user: "anyone", in: folder).scores, expected, "generic user at the start, scaled")

        let trained = folder.appendingPathComponent("trained")
        assertSucceeded(PRM.run(common + ["--out", trained.path]))
        let after = try scores(trained, user: "anyone", in: folder).scores
        XCTAssertTrue(after.allSatisfy(\.isFinite))
        XCTAssertTrue(zip(after, expected).contains { abs($0 - Double($1)) > 1e-4 }, "training moved nothing")
        assertSucceeded(PRM.run("eval", "--model", trained.path, "--data", data))
    }

    /// From a prm checkpoint: its structure, the generic user, and the row of every user of the
    /// new data it knows; its users absent from the data are dropped, new ones start fresh. Both
    /// per-user tables: individual vectors (the adapted folder) and cluster users' mixture logits,
    /// whose centres are kept whole.
    func testTrainInitFromCheckpointKeepsTheUsersItKnows() throws {
        let folder = try scratchFolder("prm-init-checkpoint")
        let (individual, taste) = try adapted(in: folder)
        let cluster = folder.appendingPathComponent("cluster")
        assertSucceeded(PRM.run("train", "--init-from", Self.llama.path, "--data", taste.path, "--out", cluster.path, "--epochs", "1",
                                "--batch-size", "4", "--max-length", "48", "--user-model", "cluster", "--clusters", "2"))
        for source in [individual, cluster] {
            let data = folder.appendingPathComponent("next.jsonl"), out = folder.appendingPathComponent("next-\(source.lastPathComponent)")
            try JSONL.write(Self.tasteComparisons(users: ["brief", "newcomer"]), to: data)
            assertSucceeded(PRM.run("train", "--init-from", source.path, "--data", data.path, "--out", out.path, "--epochs", "1",
                                    "--batch-size", "4", "--lr", "0", "--user-lr", "0", "--no-refit-seen"))
            let (before, after) = (try Checkpoint.load(source), try Checkpoint.load(out))
            var expected = before.model.config
            expected.userModel.users = 2
            XCTAssertEqual(after.model.config, expected)
            XCTAssertEqual(Set(after.users.indices.keys), ["brief", "newcomer"])
            let n = before.model.userModel.rowSize
            func row(_ model: RewardModel, _ index: Int) throws -> [Float] {
                let row = try XCTUnwrap(model.userModel.row(index))
                return Array(UnsafeBufferPointer(start: row.value, count: n))
            }
            let what = source.lastPathComponent
            XCTAssertEqual(try row(after.model, 0), try row(before.model, 0), "\(what): the generic user")
            XCTAssertEqual(try row(after.model, after.users.index(of: "brief")), try row(before.model, before.users.index(of: "brief")),
                           "\(what): a kept user")
            if before.model.config.userModel.kind == .individual {  // a fresh offset (--user-spread 0): the generic user
                XCTAssertEqual(try row(after.model, after.users.index(of: "newcomer")), [Float](repeating: 0, count: n), what)
            }
            for k in 0..<(before.model.config.userModel.kind == .cluster ? 2 : 0) {
                let C = before.model.userModel.size
                let centre = { (m: RewardModel) in Array(UnsafeBufferPointer(start: m.userModel.clusterCentre(k), count: C)) }
                XCTAssertEqual(centre(after.model), centre(before.model), "\(what): centre \(k)")
            }
            let settings = try XCTUnwrap(after.training["settings"] as? [String: Any])
            let record = try XCTUnwrap(settings["init_from"] as? [String: Any])
            XCTAssertEqual(record["kind"] as? String, "prm-checkpoint")
            XCTAssertEqual(record["kept_users"] as? Int, 1)
        }
    }

    // MARK: - Errors

    func testInitFromRefusesWhatItCannotStartFrom() throws {
        let folder = try scratchFolder("prm-init-bad")
        let data = folder.appendingPathComponent("taste.jsonl")
        try JSONL.write(Self.tasteComparisons(), to: data)
        func train(_ source: URL, _ extra: String...) -> CommandResult {
            PRM.run(["train", "--init-from", source.path, "--data", data.path, "--out", folder.appendingPathComponent("run").path,
                     "--epochs", "1", "--max-length", "48"] + extra)
        }
        // No weights.
        let empty = folder.appendingPathComponent("no-weights")
        try FileManager.default.createDirectory(at: empty, withIntermediateDirectories: true)
        for file in ["config.json", "tokenizer.json"] {
            try FileManager.default.copyItem(at: Self.llama.appendingPathComponent(file), to: empty.appendingPathComponent(file))
        }
        assertFailed(train(empty), command: "train", mentioning: [empty.path, "no model.safetensors"])
        // A causal LM: a backbone without a score head.
        let qwen2 = Self.fixtures.appendingPathComponent("qwen2")
        assertFailed(train(qwen2), command: "train", mentioning: [qwen2.appendingPathComponent("config.json").path, "score.weight", "--backbone"])
        // A BERT classifier: its head reads the pooler prm does not load.
        let bert = try folderWith(["classifier.weight": [2, 32]], config: ["model_type": "bert"], in: folder, named: "bert")
        assertFailed(train(bert), command: "train", mentioning: ["classifier.weight", "BertForSequenceClassification", "pooler"])
        // Two labels, and a head of another width.
        let twoLabels = try llamaWithScore(shape: [2, 24], in: folder, named: "two-labels")
        assertFailed(train(twoLabels), command: "train", mentioning: ["score.weight", "num_labels 2"])
        let wide = try llamaWithScore(shape: [1, 32], in: folder, named: "wide")
        assertFailed(train(wide), command: "train", mentioning: ["score.weight", "[1, 32]", "hidden size is 24"])
        // Served as it is, the same checks.
        assertFailed(PRM.run("score", "--model", twoLabels.path, "--prompt", "Hi", "Hello."), command: "score", mentioning: ["num_labels 2"])
        // Options it excludes.
        assertUsageError(train(Self.llama, "--backbone", Self.llama.path), command: "train",
                         message: "--init-from and --backbone cannot be combined: the model to start from has its backbone")
        let (checkpoint, _) = try adapted(in: folder)
        assertUsageError(PRM.run("train", "--init-from", checkpoint.path, "--data", data.path, "--out", folder.appendingPathComponent("run").path,
                                 "--aggregator", "soft-prompt"), command: "train",
                         message: "--aggregator cannot be given with --init-from of a prm checkpoint: its structure is the checkpoint's")
    }

    /// A folder with the llama fixture's config and tokenizer and only `tensors` (zeros) as weights.
    func folderWith(_ tensors: [String: [Int]], config: [String: Any], in parent: URL, named name: String) throws -> URL {
        let folder = parent.appendingPathComponent(name)
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        try JSONSerialization.data(withJSONObject: config).write(to: folder.appendingPathComponent("config.json"))
        try FileManager.default.copyItem(at: Self.llama.appendingPathComponent("tokenizer.json"), to: folder.appendingPathComponent("tokenizer.json"))
        let buffers = tensors.mapValues { Tensor(shape: $0) }
        try SafetensorsWriter.write(buffers.map { SafetensorsWriter.Entry(name: $0.key, shape: $0.value.shape, data: UnsafePointer($0.value.data)) },
                                    to: folder.appendingPathComponent("model.safetensors"))
        return folder
    }

    /// A copy of the llama fixture whose score head has `shape`.
    func llamaWithScore(shape: [Int], in parent: URL, named name: String) throws -> URL {
        let folder = parent.appendingPathComponent(name)
        try FileManager.default.copyItem(at: Self.llama, to: folder)
        let weights = folder.appendingPathComponent("model.safetensors")
        let file = try SafetensorsFile(contentsOf: weights)
        var tensors = try file.names.map { ($0, try file.tensor($0)) }
        tensors.removeAll { $0.0 == "score.weight" }
        tensors.append(("score.weight", Tensor(shape: shape)))
        try SafetensorsWriter.write(tensors.map { SafetensorsWriter.Entry(name: $0.0, shape: $0.1.shape, data: UnsafePointer($0.1.data)) }, to: weights)
        return folder
    }
}
