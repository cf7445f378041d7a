import Foundation
import PRMCore

/// A reward-model checkpoint: a `RunFolder` whose "prm" section holds the aggregator, user model,
/// window (`RewardModelConfig`) and training record, and whose weights are the backbone's under
/// Hugging Face names, then user.* and head.*.
public enum Checkpoint {
    public static let format = "prm-reward-model-v1"

    /// Writes the model into `directory` (created if needed); `metadata` (e.g. the training step)
    /// goes into the safetensors header so training state saved beside it can be checked against it.
    public static func save(_ model: RewardModel, users: UserTable, training: [String: Any] = [:],
                            metadata: [String: String] = [:], to directory: URL) throws {
        var config = model.config
        config.userModel.users = model.userModel.users
        let p = model.parameters
        // Users added after training go after the trained rows of their table.
        let perUser = model.userModel.perUserTable
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
        try RunFolder.write(backbone: model.backbone.encodableConfig, prm: RunFolder.Section(format: format, fields: config),
                            training: training, weights: entries, metadata: metadata, tokenizerJSON: model.tokenizerJSON,
                            users: users, to: directory)
    }

    /// Loads a checkpoint folder written by `save`, or a Hugging Face `…ForSequenceClassification`
    /// folder as it is (`ClassificationHead.servedAsIs`: no users yet, no training record), its
    /// text written in `template` when given (`--template`), else in its own chat template. A
    /// checkpoint's template is the one it was trained with: `template` is refused for it.
    public static func load(_ directory: URL, template: TextTemplate? = nil) throws -> (model: RewardModel, users: UserTable, training: [String: Any]) {
        guard let folder = try RunFolder.readIfWritten(directory) else {
            return (try ClassificationHead.servedAsIs(directory, template: template), UserTable(indices: [:]), [:])
        }
        if let template {
            throw ModelError(file: directory, "--template \(template.rawValue) applies to a …ForSequenceClassification folder served as it is; "
                             + "a prm checkpoint writes text in the template it was trained with (config.json, prm.template)")
        }
        let configURL = directory.appendingPathComponent("config.json")
        let config = try RunFolder.fields(RewardModelConfig.self, of: folder.prm) { ModelError(file: configURL, "prm: " + $0) }
        let model = try RewardModel(backboneConfig: configURL, tokenizerFile: directory.appendingPathComponent("tokenizer.json"), config: config)
        try RunFolder.loadWeights(into: model.parameters, from: directory)
        let users = try RunFolder.loadUsers(directory, expected: config.userModel.users)
        return (model, users, folder.training)
    }
}
