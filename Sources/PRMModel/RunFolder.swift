import Foundation
import PRMCore

/// A checkpoint folder, the reward model's (`Checkpoint`) and the policy's (`PolicyCheckpoint`)
/// alike: a Hugging Face-style folder anyone with Python can open.
///
///     config.json        the backbone's own config keys, plus "prm": {"format", the kind's own fields, "training"}
///     model.safetensors  every weight by name (backbone names as in Hugging Face, then prm's own)
///     tokenizer.json     the backbone's tokenizer, unchanged
///     users.json         {"user id": index}; unknown ids are index 0, the generic user
///
/// Every file is written to a temporary name and renamed into place, config.json last, so a crash
/// never leaves a half-written file and a folder with a config.json has all its other files.
public enum RunFolder {
    /// config.json's "prm" section without its training record: the folder's format, then the
    /// fields of its kind (`RewardModelConfig`, `PolicyConfig`) at the same level.
    public struct Section<Fields: Codable>: Codable {
        public var format: String
        public var fields: Fields

        enum CodingKeys: String, CodingKey { case format }

        public init(format: String, fields: Fields) {
            self.format = format
            self.fields = fields
        }

        public init(from decoder: Decoder) throws {
            format = try decoder.container(keyedBy: CodingKeys.self).decode(String.self, forKey: .format)
            fields = try Fields(from: decoder)
        }

        public func encode(to encoder: Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(format, forKey: .format)
            try fields.encode(to: encoder)
        }
    }

    /// config.json: the backbone's keys, `architectures` when the folder's kind names another
    /// head than the backbone's (a policy is a GPT2LMHeadModel), and "prm".
    struct Config<Fields: Codable>: Encodable {
        var backbone: any Encodable
        var architectures: [String]?
        var prm: Section<Fields>

        enum CodingKeys: String, CodingKey { case architectures, prm }

        func encode(to encoder: Encoder) throws {
            try backbone.encode(to: encoder)
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encodeIfPresent(architectures, forKey: .architectures)
            try c.encode(prm, forKey: .prm)
        }
    }

    /// Writes a folder: weights (with `metadata` in their header), tokenizer, users, then
    /// config.json. The training record stays a plain JSON object: its contents are each
    /// command's own (settings, perplexities, refits) and only readers look inside it.
    public static func write<Fields: Codable>(backbone: any Encodable, architectures: [String]? = nil, prm: Section<Fields>,
                                              training: [String: Any], weights: [SafetensorsWriter.Entry], metadata: [String: String],
                                              tokenizerJSON: Data, users: UserTable, to directory: URL) throws {
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        var config = try jsonDictionary(encoding: Config(backbone: backbone, architectures: architectures, prm: prm))
        config["prm"] = (config["prm"] as? [String: Any] ?? [:]).merging(["training": training]) { $1 }
        try SafetensorsWriter.write(weights, metadata: metadata.merging(["format": "pt", "prm": prm.format]) { $1 },
                                    to: directory.appendingPathComponent("model.safetensors"))
        try AtomicFile.write(tokenizerJSON, to: directory.appendingPathComponent("tokenizer.json"))
        try AtomicFile.writeJSON(users.indices, to: directory.appendingPathComponent("users.json"))
        // config.json last: a folder with a config.json has all its other files.
        try AtomicFile.write(JSONSerialization.data(withJSONObject: config, options: [.prettyPrinted, .sortedKeys]),
                             to: directory.appendingPathComponent("config.json"))
    }

    /// A folder's config.json "prm" section as read back, and its training record. (The backbone's
    /// keys are read by its own `Codable` config.)
    public struct Read {
        public var prm: [String: Any]
        public var training: [String: Any]
    }

    /// Reads config.json; `missingSection` is the error for a JSON object without "prm" (each
    /// kind tells the user where such a folder belongs).
    public static func read(_ directory: URL, missingSection: (URL) -> any Error) throws -> Read {
        guard let read = try readIfWritten(directory) else { throw missingSection(directory.appendingPathComponent("config.json")) }
        return read
    }

    /// Reads config.json; nil when it is a JSON object without "prm" (a folder prm did not write).
    public static func readIfWritten(_ directory: URL) throws -> Read? {
        let config = try jsonDictionary(directory.appendingPathComponent("config.json"))
        guard let prm = config["prm"] as? [String: Any] else { return nil }
        return Read(prm: prm, training: prm["training"] as? [String: Any] ?? [:])
    }

    /// The kind's fields of a "prm" section read by `read`; a decoding failure is described as
    /// `error(problem)` in the caller's error type.
    public static func fields<Fields: Codable>(_ type: Fields.Type, of prm: [String: Any], error: (String) -> any Error) throws -> Fields {
        do {
            return try JSONDecoder().decode(Fields.self, from: JSONSerialization.data(withJSONObject: prm))
        } catch let problem as DecodingError {
            throw error(DecodingProblem(problem).message)
        }
    }

    /// Fills every parameter group from the folder's model.safetensors, checking names and shapes.
    public static func loadWeights(into parameters: Parameters, from directory: URL) throws {
        let weights = directory.appendingPathComponent("model.safetensors")
        for group in Parameters.Group.allCases { try Backbones.loadWeights(into: parameters, group: group, prefixes: [""], from: weights) }
    }

    /// Reads users.json, checking it names exactly `expected` users with indices 1...expected.
    public static func loadUsers(_ directory: URL, expected: Int) throws -> UserTable {
        let url = directory.appendingPathComponent("users.json")
        // The strict reader: a corrupt users.json must not pass `true` or 1.0 as indices.
        let object = try HFConfig.jsonObject(url)
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

    /// A value as the JSON object a training record holds (the one Encodable → `[String: Any]`
    /// conversion: records mix typed settings with each command's own numbers).
    public static func jsonDictionary<T: Encodable>(encoding value: T) throws -> [String: Any] {
        try JSONSerialization.jsonObject(with: JSONEncoder().encode(value)) as? [String: Any] ?? [:]
    }
}
