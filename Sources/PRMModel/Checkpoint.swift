import Foundation
import PRMCore

/// A reward-model checkpoint: a Hugging Face-style folder anyone with Python can open.
///
///     config.json        the backbone's own config keys, plus "prm": aggregator, user model, window, training settings
///     model.safetensors  every weight by name (backbone names as in Hugging Face, user.*, head.*)
///     tokenizer.json     the backbone's tokenizer, unchanged
///     users.json         {"user id": index}; unknown ids score as index 0, the generic user
///
/// Every file is written to a temporary name and renamed into place, so a crash never leaves a
/// half-written file.
public enum Checkpoint {
    public static let format = "prm-reward-model-v1"

    /// Writes the model into `directory` (created if needed). Each file is written to a temporary
    /// name and renamed into place; `metadata` (e.g. the training step) goes into the safetensors
    /// header so training state saved beside it can be checked against it.
    public static func save(_ model: RewardModel, users: UserTable, training: [String: Any] = [:],
                            metadata: [String: String] = [:], to directory: URL) throws {
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        var config = model.backbone.configObject
        var userModel = model.config.userModel
        userModel.users = model.userModel.users
        config["prm"] = [
            "format": format,
            "aggregator": model.config.aggregator.rawValue,
            "user_model": try jsonObject(userModel),
            "max_length": model.config.maxLength,
            "training": training,
        ] as [String: Any]
        let p = model.parameters
        // Users added after training go after the trained rows of their table.
        let perUser = model.userModel.config.kind == .cluster ? model.userModel.weights : model.userModel.table
        let added = model.userModel.added
        let grown = UnsafeMutablePointer<Float>.allocate(capacity: (perUser.map { p.entry($0).count } ?? 0) + (added?.count ?? 0))
        defer { grown.deallocate() }
        let entries = p.entries.enumerated().map { index, entry in
            let handle = Parameters.Handle(index: index)
            guard handle == perUser, let added else {
                return SafetensorsWriter.Entry(name: entry.name, shape: entry.shape, data: UnsafePointer(p.value(handle)))
            }
            grown.update(from: p.value(handle), count: entry.count)
            (grown + entry.count).update(from: added.values.data, count: added.count)
            return SafetensorsWriter.Entry(name: entry.name, shape: [entry.shape[0] + model.userModel.addedUsers] + entry.shape.dropFirst(),
                                           data: UnsafePointer(grown))
        }
        try SafetensorsWriter.write(entries, metadata: metadata.merging(["format": "pt", "prm": format]) { $1 },
                                    to: directory.appendingPathComponent("model.safetensors"))
        try AtomicFile.write(model.tokenizerJSON, to: directory.appendingPathComponent("tokenizer.json"))
        try AtomicFile.write(JSONSerialization.data(withJSONObject: users.indices, options: [.prettyPrinted, .sortedKeys]),
                             to: directory.appendingPathComponent("users.json"))
        // config.json last: a folder with a config.json has all its other files.
        try AtomicFile.write(JSONSerialization.data(withJSONObject: config, options: [.prettyPrinted, .sortedKeys]),
                             to: directory.appendingPathComponent("config.json"))
    }

    /// Loads a checkpoint folder written by `save`.
    public static func load(_ directory: URL) throws -> (model: RewardModel, users: UserTable, training: [String: Any]) {
        let configURL = directory.appendingPathComponent("config.json")
        let object = try jsonDictionary(configURL)
        guard let prm = object["prm"] as? [String: Any] else {
            throw ModelError(file: configURL, "missing field 'prm': not a prm reward-model checkpoint (a plain backbone folder goes to --backbone)")
        }
        guard let aggregatorName = prm["aggregator"] as? String, let aggregator = Aggregator(rawValue: aggregatorName) else {
            throw ModelError(file: configURL, "field 'prm.aggregator' must be one of \(Aggregator.allCases.map(\.rawValue))")
        }
        guard let maxLength = prm["max_length"] as? Int else { throw ModelError(file: configURL, "missing field 'prm.max_length'") }
        guard let userObject = prm["user_model"] else { throw ModelError(file: configURL, "missing field 'prm.user_model'") }
        let userModel: UserModelConfig
        do {
            userModel = try JSONDecoder().decode(UserModelConfig.self, from: JSONSerialization.data(withJSONObject: userObject))
        } catch let error as DecodingError {
            throw ModelError(file: configURL, "prm.user_model: " + DecodingProblem(error).message)
        }
        let model = try RewardModel(backboneConfig: configURL, tokenizerFile: directory.appendingPathComponent("tokenizer.json"),
                                    config: RewardModelConfig(aggregator: aggregator, userModel: userModel, maxLength: maxLength))
        let weights = directory.appendingPathComponent("model.safetensors")
        for group in Parameters.Group.allCases { try Backbones.loadWeights(into: model.parameters, group: group, prefixes: [""], from: weights) }
        let users = try loadUsers(directory.appendingPathComponent("users.json"), expected: userModel.users)
        return (model, users, prm["training"] as? [String: Any] ?? [:])
    }

    /// Reads users.json, checking it names exactly `expected` users with indices 1...expected
    /// (also the policy checkpoint's users file).
    public static func loadUsers(_ url: URL, expected: Int) throws -> UserTable {
        // prm's strict reader, not JSONSerialization: its NSNumber answers `as? Int` for `true`
        // and for 1.0, so a corrupt users.json would pass as indices.
        let parsed: JSONValue
        do { parsed = try JSONReader.parse(HFConfig.readFile(url)) } catch let error as JSONParseError {
            throw ModelError(file: url, "\(error)")
        }
        guard let object = parsed.object else { throw ModelError(file: url, "not a JSON object") }
        var indices: [String: Int] = [:]
        for (id, value) in object.members {
            guard let index = value.number.flatMap({ Int($0.text) }), (1...max(expected, 1)).contains(index) else {
                let shown = value.number?.text ?? value.kind.withArticle
                throw ModelError(file: url, "user '\(id)' has index \(shown); expected an integer in 1...\(expected)")
            }
            indices[id] = index
        }
        guard indices.count == expected else { throw ModelError(file: url, "\(indices.count) users, but the model has \(expected)") }
        return UserTable(indices: indices)
    }

    /// A JSON object file, or an error naming the file.
    public static func jsonDictionary(_ url: URL) throws -> [String: Any] {
        let data = try HFConfig.readFile(url)
        guard let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw ModelError(file: url, "not a JSON object")
        }
        return object
    }

    static func jsonObject<T: Encodable>(_ value: T) throws -> Any {
        try JSONSerialization.jsonObject(with: JSONEncoder().encode(value))
    }
}

