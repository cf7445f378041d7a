import Foundation
import XCTest
import PRMCore
import PRMModel
import PRMPolicy
import PRMTestSupport

/// Checkpoint folders written by an earlier prm (Tests/Fixtures/run-folders) still load and give
/// the outputs recorded when they were written, and saving them again writes the same config.json
/// and users.json: the on-disk format is a promise to every folder already on disk, so a change
/// to the writers must keep both.
///
/// `PRM_WRITE_FIXTURES=1 swift test --filter RunFolderFixtureTests` rewrites the fixtures (tiny,
/// randomly initialised models, so the folders stay small); do that only on purpose.
final class RunFolderFixtureTests: XCTestCase {
    static let root = TestSupport.repoRoot.appendingPathComponent("Tests/Fixtures/run-folders")
    static var rewardModelFolder: URL { root.appendingPathComponent("reward-model") }
    static var policyFolder: URL { root.appendingPathComponent("policy") }
    static var expectedFile: URL { root.appendingPathComponent("expected.json") }
    static var writing: Bool { ProcessInfo.processInfo.environment["PRM_WRITE_FIXTURES"] == "1" }

    /// Fixed inputs: raw token ids, so the numbers do not depend on a tokenizer's behaviour.
    static let rewardInputs = [
        RewardInput(user: 0, prompt: [2054, 2003, 1037, 4937], reply: [1037, 2235, 4937, 1012]),
        RewardInput(user: 1, explicit: [1045, 2066], prompt: [2129, 2079], reply: [2200, 2146, 3437, 2182]),
        RewardInput(user: 2, prompt: [7592], reply: [2748, 1012]),
    ]
    static let policySequences = [
        PolicySequence(user: 0, tokens: [5, 17, 230, 99, 1000, 2], scored: [3, 4, 5]),
        PolicySequence(user: 2, tokens: [7, 300, 301, 4000, 12], scored: [1, 4]),
    ]
    /// Logit columns recorded per scored row: a spread over the vocabulary, not all 4096.
    static let logitColumns = [0, 1, 2, 17, 230, 1000, 2047, 4095]

    /// The numbers recorded with the fixture.
    struct Expected: Codable, Equatable {
        var rewards: [Float]
        var logits: [[Float]]
        var values: [Float]
    }

    func testFixturesLoadAndGiveTheRecordedOutputs() throws {
        if Self.writing { try writeFixtures() }
        let expected = try JSONDecoder().decode(Expected.self, from: Data(contentsOf: Self.expectedFile))
        let (model, users, training) = try Checkpoint.load(Self.rewardModelFolder)
        XCTAssertEqual(users.indices, ["alice": 1, "bob": 2])
        XCTAssertEqual(training["stage"] as? String, "fixture")
        assertClose(model.forward(Self.rewardInputs), expected.rewards, "rewards")
        let (policy, policyUsers, policyTraining) = try PolicyCheckpoint.load(Self.policyFolder)
        XCTAssertEqual(policyUsers.indices, ["carol": 1, "dave": 2])
        XCTAssertEqual(policyTraining["stage"] as? String, "fixture")
        let outputs = Self.outputs(policy)
        for (row, (got, want)) in zip(outputs.logits, expected.logits).enumerated() { assertClose(got, want, "logits row \(row)") }
        XCTAssertEqual(outputs.logits.count, expected.logits.count)
        assertClose(outputs.values, expected.values, "values")
    }

    /// Saving a loaded fixture again gives the same config.json and users.json key/value sets
    /// and the same tokenizer.json bytes as the writer that made it.
    func testSavingAgainWritesTheSameFolder() throws {
        let scratch = try scratchFolder("prm-fixture")
        let (model, users, training) = try Checkpoint.load(Self.rewardModelFolder)
        try Checkpoint.save(model, users: users, training: training, to: scratch.appendingPathComponent("rm"))
        try assertSameFiles(Self.rewardModelFolder, scratch.appendingPathComponent("rm"))
        let (policy, policyUsers, policyTraining) = try PolicyCheckpoint.load(Self.policyFolder)
        try PolicyCheckpoint.save(policy, users: policyUsers, training: policyTraining, to: scratch.appendingPathComponent("policy"))
        try assertSameFiles(Self.policyFolder, scratch.appendingPathComponent("policy"))
    }

    // MARK: - Helpers

    func assertSameFiles(_ old: URL, _ new: URL, file: StaticString = #filePath, line: UInt = #line) throws {
        for name in ["config.json", "users.json"] {
            let parse = { (folder: URL) in try JSONSerialization.jsonObject(with: Data(contentsOf: folder.appendingPathComponent(name))) as? NSDictionary }
            let (was, now) = (try parse(old), try parse(new))
            XCTAssertNotNil(was, "\(old.path)/\(name)", file: file, line: line)
            XCTAssertEqual(was, now, "\(name) differs from \(old.path)/\(name)", file: file, line: line)
        }
        XCTAssertEqual(try Data(contentsOf: old.appendingPathComponent("tokenizer.json")),
                       try Data(contentsOf: new.appendingPathComponent("tokenizer.json")), file: file, line: line)
    }

    func assertClose(_ got: [Float], _ want: [Float], _ what: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(got.count, want.count, what, file: file, line: line)
        for (i, (g, w)) in zip(got, want).enumerated() where !(abs(g - w) <= 1e-6) {
            XCTFail("\(what)[\(i)] is \(g), recorded \(w)", file: file, line: line)
        }
    }

    static func outputs(_ policy: Policy) -> (logits: [[Float]], values: [Float]) {
        let out = policy.forward(policySequences, training: false)
        let V = policy.vocabularySize
        let logits = (0..<out.rows).map { row in logitColumns.map { out.logits[row * V + $0] } }
        return (logits, (0..<out.rows).map { out.values[$0] })
    }

    /// Every value drawn afresh (LayerNorm gains near 1, everything else 0.3·N(0, 1)), so every
    /// path, user rows and heads included, changes the recorded outputs.
    static func randomize(_ parameters: Parameters, seed: UInt64) {
        var rng = RandomSource(seed: seed)
        for entry in parameters.entries {
            let gain = entry.name.contains("LayerNorm.weight") || (entry.name.contains("ln_") && entry.name.hasSuffix(".weight"))
            for i in 0..<entry.count { parameters.values[entry.offset + i] = gain ? 1 + 0.1 * rng.nextNormal() : 0.3 * rng.nextNormal() }
        }
    }

    /// Writes both folders and expected.json with the current writers.
    func writeFixtures() throws {
        let scratch = try scratchFolder("prm-fixture-backbone")
        // A 4-wide BERT on MiniLM's tokenizer: the 30522-row embedding table is most of the folder.
        let config: [String: Any] = ["model_type": "bert", "vocab_size": 30522, "hidden_size": 4, "num_hidden_layers": 1,
                                     "num_attention_heads": 2, "intermediate_size": 8, "max_position_embeddings": 32,
                                     "type_vocab_size": 2, "layer_norm_eps": 1e-12, "hidden_act": "gelu"]
        try JSONSerialization.data(withJSONObject: config).write(to: scratch.appendingPathComponent("config.json"))
        try FileManager.default.copyItem(at: TestSupport.miniLMDirectory().appendingPathComponent("tokenizer.json"),
                                         to: scratch.appendingPathComponent("tokenizer.json"))
        let model = try RewardModel(backboneConfig: scratch.appendingPathComponent("config.json"),
                                    tokenizerFile: scratch.appendingPathComponent("tokenizer.json"),
                                    config: RewardModelConfig(aggregator: .softPrompt,
                                                              userModel: UserModelConfig(kind: .individual, tokens: 2, users: 2),
                                                              maxLength: 32))
        Self.randomize(model.parameters, seed: 21)
        try? FileManager.default.removeItem(at: Self.root)
        try Checkpoint.save(model, users: UserTable(ids: ["alice", "bob"]), training: ["stage": "fixture", "steps": 1],
                            metadata: ["step": "1"], to: Self.rewardModelFolder)

        var settings = SFTSettings()
        (settings.embedding, settings.layers, settings.heads, settings.positions, settings.userTokens, settings.dropout) = (8, 1, 2, 32, 2, 0)
        let table = UserTable(ids: ["carol", "dave"])
        let policy = try settings.makePolicy(tokenizerFile: TestSupport.repoRoot.appendingPathComponent("data/policy/tokenizer.json"))
            .withUsers(table, known: UserTable(indices: [:]))
        Self.randomize(policy.parameters, seed: 22)
        try PolicyCheckpoint.save(policy, users: table, training: ["stage": "fixture", "steps": 1], metadata: ["step": "1"],
                                  to: Self.policyFolder)
        let outputs = Self.outputs(policy)
        let expected = Expected(rewards: model.forward(Self.rewardInputs), logits: outputs.logits, values: outputs.values)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try encoder.encode(expected).write(to: Self.expectedFile)
    }
}
