import Foundation
import PRMCore
import PRMModel

/// A policy checkpoint (`prm-policy-v1`): a Hugging Face-style folder, as the reward model's.
///
///     config.json        GPT-2 config keys (architectures GPT2LMHeadModel, eos_token_id = <|end|>),
///                        plus "prm": {"format", "user_model", "training"}
///     model.safetensors  every weight by name: GPT-2 names (the LM head is tied to wte), user.*, value_head.*
///     tokenizer.json     the byte-level BPE with the role tokens (data/policy/README.md)
///     users.json         {"user id": index}; any other id is the generic user 0
///
/// Every file is written to a temporary name and renamed into place, config.json last, so a folder
/// with a config.json has all its other files.
public enum PolicyCheckpoint {
    public static let format = "prm-policy-v1"

    public static func save(_ policy: Policy, users: UserTable, training: [String: Any] = [:],
                            metadata: [String: String] = [:], to directory: URL) throws {
        if let bad = policy.parameters.firstNonFinite() {
            throw PolicyError("parameter \(bad.name)[\(bad.index)] is \(bad.value); not writing a checkpoint with non-finite weights")
        }
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        var config = policy.backbone.configObject
        config["architectures"] = ["GPT2LMHeadModel"]
        config["eos_token_id"] = Int(policy.format.end)
        config["prm"] = [
            "format": format,
            "user_model": try JSONSerialization.jsonObject(with: JSONEncoder().encode(policy.config.userModel)),
            "training": training,
        ] as [String: Any]
        let p = policy.parameters
        let entries = p.entries.enumerated().map { index, entry in
            SafetensorsWriter.Entry(name: entry.name, shape: entry.shape, data: UnsafePointer(p.value(Parameters.Handle(index: index))))
        }
        try SafetensorsWriter.write(entries, metadata: metadata.merging(["format": "pt", "prm": format]) { $1 },
                                    to: directory.appendingPathComponent("model.safetensors"))
        try AtomicFile.write(policy.tokenizerJSON, to: directory.appendingPathComponent("tokenizer.json"))
        try AtomicFile.write(JSONSerialization.data(withJSONObject: users.indices, options: [.prettyPrinted, .sortedKeys]),
                             to: directory.appendingPathComponent("users.json"))
        try AtomicFile.write(JSONSerialization.data(withJSONObject: config, options: [.prettyPrinted, .sortedKeys]),
                             to: directory.appendingPathComponent("config.json"))
    }

    /// Loads a folder written by `save`; every failure names the file and what was wrong.
    public static func load(_ directory: URL) throws -> (policy: Policy, users: UserTable, training: [String: Any]) {
        let configURL = directory.appendingPathComponent("config.json")
        guard FileManager.default.fileExists(atPath: directory.path) else { throw PolicyError(file: directory, "policy folder not found") }
        let object = try Checkpoint.jsonDictionary(configURL)
        guard let prm = object["prm"] as? [String: Any] else {
            throw PolicyError(file: configURL, "missing field 'prm': not a prm policy (make one with 'prm sft')")
        }
        guard prm["format"] as? String == format else {
            let found = prm["format"].map { "\($0)" } ?? "none"
            throw PolicyError(file: configURL, "field 'prm.format' is '\(found)', expected '\(format)'"
                              + (found == Checkpoint.format ? ": this is a reward model, not a policy" : ""))
        }
        guard let userObject = prm["user_model"] else { throw PolicyError(file: configURL, "missing field 'prm.user_model'") }
        let userModel: UserModelConfig
        do {
            userModel = try JSONDecoder().decode(UserModelConfig.self, from: JSONSerialization.data(withJSONObject: userObject))
        } catch let error as DecodingError {
            throw PolicyError(file: configURL, "prm.user_model: " + DecodingProblem(error).message)
        }
        let policy = try Policy(backboneConfig: configURL, tokenizerFile: directory.appendingPathComponent("tokenizer.json"),
                                config: PolicyConfig(userModel: userModel))
        guard object["eos_token_id"] as? Int == Int(policy.format.end) else {
            throw PolicyError(file: configURL, "eos_token_id is \(object["eos_token_id"].map { "\($0)" } ?? "missing"), "
                              + "expected \(policy.format.end), the tokenizer's \(DialogueFormat.endToken)")
        }
        let weights = directory.appendingPathComponent("model.safetensors")
        for group in Parameters.Group.allCases {
            try Backbones.loadWeights(into: policy.parameters, group: group, prefixes: [""], from: weights)
        }
        let users = try Checkpoint.loadUsers(directory.appendingPathComponent("users.json"), expected: userModel.users)
        return (policy, users, prm["training"] as? [String: Any] ?? [:])
    }
}
