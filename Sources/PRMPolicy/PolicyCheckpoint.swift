import Foundation
import PRMCore
import PRMModel

/// A policy checkpoint (`prm-policy-v1`): a `RunFolder` whose config.json has GPT-2's keys as a
/// GPT2LMHeadModel (the LM head is tied to wte) with eos_token_id = <|end|>, and whose "prm" section
/// holds the user model (`PolicyConfig`) and training record. Weights: GPT-2 names, user.*,
/// value_head.*; the tokenizer is the byte-level BPE with the role tokens (data/policy/README.md).
public enum PolicyCheckpoint {
    public static let format = "prm-policy-v1"

    public static func save(_ policy: Policy, users: UserTable, training: [String: Any] = [:],
                            metadata: [String: String] = [:], to directory: URL) throws {
        if let bad = policy.parameters.firstNonFinite() {
            throw PolicyError("parameter \(bad.name)[\(bad.index)] is \(bad.value); not writing a checkpoint with non-finite weights")
        }
        var backbone = policy.backbone.config
        backbone.eosTokenID = Int(policy.format.end)
        let p = policy.parameters
        let entries = p.entries.enumerated().map { index, entry in
            SafetensorsWriter.Entry(name: entry.name, shape: entry.shape, data: UnsafePointer(p.value(Parameters.Handle(index: index))))
        }
        try RunFolder.write(backbone: backbone, architectures: ["GPT2LMHeadModel"], prm: RunFolder.Section(format: format, fields: policy.config),
                            training: training, weights: entries, metadata: metadata, tokenizerJSON: policy.tokenizerJSON,
                            users: users, to: directory)
    }

    /// Loads a folder written by `save`; every failure names the file and what was wrong.
    public static func load(_ directory: URL) throws -> (policy: Policy, users: UserTable, training: [String: Any]) {
        let configURL = directory.appendingPathComponent("config.json")
        guard FileManager.default.fileExists(atPath: directory.path) else { throw PolicyError(file: directory, "policy folder not found") }
        let folder = try RunFolder.read(directory) {
            PolicyError(file: $0, "missing field 'prm': not a prm policy (make one with 'prm sft')")
        }
        guard folder.prm["format"] as? String == format else {
            let found = folder.prm["format"].map { "\($0)" } ?? "none"
            throw PolicyError(file: configURL, "field 'prm.format' is '\(found)', expected '\(format)'"
                              + (found == Checkpoint.format ? ": this is a reward model, not a policy" : ""))
        }
        let config = try RunFolder.fields(PolicyConfig.self, of: folder.prm) { PolicyError(file: configURL, "prm: " + $0) }
        let policy = try Policy(backboneConfig: configURL, tokenizerFile: directory.appendingPathComponent("tokenizer.json"), config: config)
        let eos = policy.backbone.config.eosTokenID
        guard eos == Int(policy.format.end) else {
            throw PolicyError(file: configURL, "eos_token_id is \(eos.map(String.init) ?? "missing"), "
                              + "expected \(policy.format.end), the tokenizer's \(DialogueFormat.endToken)")
        }
        try RunFolder.loadWeights(into: policy.parameters, from: directory)
        let users = try RunFolder.loadUsers(directory, expected: config.userModel.users)
        return (policy, users, folder.training)
    }
}
