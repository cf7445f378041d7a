import Foundation
import XCTest
import PRMCore
import PRMModel
import PRMTestSupport
@testable import PRMPolicy

/// prm-policy-v1 folders: what is written, that loading gives the same model, adding users, and
/// the error for each kind of bad folder.
final class PolicyCheckpointTests: XCTestCase {
    func scratch() throws -> URL {
        let url = try TestSupport.temporaryDirectory("policy-checkpoint")
        addTeardownBlock { try? FileManager.default.removeItem(at: url) }
        return url
    }

    func outputs(_ policy: Policy, _ sequences: [PolicySequence]) -> [Float] {
        let out = policy.forward(sequences, training: false)
        return Array(UnsafeBufferPointer(start: out.logits, count: out.rows * policy.vocabularySize))
            + Array(UnsafeBufferPointer(start: out.values, count: out.rows))
    }

    let sequences = [PolicySequence(user: 1, tokens: [0, 40, 41, 42, 1, 50, 51], scored: [5, 6]),
                     PolicySequence(user: 0, tokens: [0, 43, 1, 52], scored: [3]),
                     PolicySequence(user: 2, tokens: [0, 44, 45, 1, 53, 2], scored: [4, 5])]

    func testSaveLoadGivesTheSameModel() throws {
        let (policy, users) = try TinyPolicies.policy(users: 2)
        TinyPolicies.randomize(policy, seed: 8)
        let folder = try scratch()
        try PolicyCheckpoint.save(policy, users: users, training: ["stage": "test"], to: folder)
        XCTAssertEqual(Set(try FileManager.default.contentsOfDirectory(atPath: folder.path)),
                       ["config.json", "model.safetensors", "tokenizer.json", "users.json"])
        let config = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: folder.appendingPathComponent("config.json"))) as? [String: Any])
        XCTAssertEqual(config["model_type"] as? String, "gpt2")
        XCTAssertEqual(config["eos_token_id"] as? Int, 2)
        XCTAssertEqual((config["prm"] as? [String: Any])?["format"] as? String, "prm-policy-v1")
        // Anyone with Python can read the weights by name.
        let names = try SafetensorsFile(contentsOf: folder.appendingPathComponent("model.safetensors")).names
        XCTAssertTrue(Set(names).isSuperset(of: ["wte.weight", "h.0.attn.c_attn.weight", "user.embeddings", "value_head.weight", "value_head.bias"]))

        let (loaded, loadedUsers, training) = try PolicyCheckpoint.load(folder)
        XCTAssertEqual(loadedUsers, users)
        XCTAssertEqual(training["stage"] as? String, "test")
        XCTAssertEqual(outputs(loaded, sequences), outputs(policy, sequences))
    }

    /// New users start as the generic user; known ones keep their vectors; nothing else changes.
    func testAddingUsers() throws {
        let (policy, users) = try TinyPolicies.policy(users: 2)
        TinyPolicies.randomize(policy, seed: 9)
        let grown = try policy.withUsers(UserTable(ids: ["user-1", "user-2", "user-3"]), known: users)
        XCTAssertEqual(grown.config.userModel.users, 3)
        let generic3 = PolicySequence(user: 0, tokens: sequences[2].tokens, scored: sequences[2].scored)
        XCTAssertEqual(outputs(grown, [sequences[0], sequences[1], sequences[2]]), outputs(policy, sequences))
        XCTAssertEqual(outputs(grown, [PolicySequence(user: 3, tokens: generic3.tokens, scored: generic3.scored)]), outputs(policy, [generic3]))
    }

    func testBadFoldersNameTheProblem() throws {
        let (policy, users) = try TinyPolicies.policy(users: 1)
        let folder = try scratch()
        try PolicyCheckpoint.save(policy, users: users, to: folder)
        func expectFailure(_ folder: URL, _ fragments: [String], line: UInt = #line) {
            XCTAssertThrowsError(try PolicyCheckpoint.load(folder), line: line) { error in
                let message = String(describing: error)
                for fragment in fragments { XCTAssertTrue(message.contains(fragment), "\(message) lacks '\(fragment)'", line: line) }
            }
        }
        expectFailure(folder.appendingPathComponent("nowhere"), ["nowhere", "not found"])

        func copy(_ edit: (URL) throws -> Void) throws -> URL {
            let other = try scratch().appendingPathComponent("policy")
            try FileManager.default.copyItem(at: folder, to: other)
            try edit(other)
            return other
        }
        let config = folder.appendingPathComponent("config.json")
        let object = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: config)) as? [String: Any])
        func rewrite(_ change: @escaping (inout [String: Any]) -> Void) throws -> URL {
            try copy { other in
                var o = object
                change(&o)
                try JSONSerialization.data(withJSONObject: o).write(to: other.appendingPathComponent("config.json"))
            }
        }
        expectFailure(try rewrite { $0["prm"] = nil }, ["config.json", "missing field 'prm'"])
        expectFailure(try rewrite { o in o["prm"] = ["format": "prm-reward-model-v1"] }, ["config.json", "this is a reward model, not a policy"])
        expectFailure(try rewrite { $0["eos_token_id"] = 7 }, ["config.json", "eos_token_id is 7", "<|end|>"])
        expectFailure(try rewrite { $0["n_embd"] = 15 }, ["config.json", "not divisible"])
        expectFailure(try copy { try FileManager.default.removeItem(at: $0.appendingPathComponent("model.safetensors")) }, ["model.safetensors"])
        expectFailure(try copy { try Data("{\"user-9\": 4}".utf8).write(to: $0.appendingPathComponent("users.json")) }, ["users.json", "user-9"])
        // JSONSerialization's NSNumber would read `true` and 1.0 as the index 1.
        for index in ["true", "1.0"] {
            let users = (1...4).map { "\"user-\($0)\": \($0 == 1 ? index : String($0))" }.joined(separator: ", ")
            expectFailure(try copy { try Data("{\(users)}".utf8).write(to: $0.appendingPathComponent("users.json")) },
                          ["users.json", "user 'user-1' has index"])
        }
        expectFailure(try copy { try Data("{}".utf8).write(to: $0.appendingPathComponent("tokenizer.json")) }, ["tokenizer.json"])
    }
}
