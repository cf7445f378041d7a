import Foundation
import PRMCore

/// The existing reward model a training run starts from (`prm train --init-from`), and the model
/// that run trains, built from it for the run's users:
///
/// - a Hugging Face `…ForSequenceClassification` folder: its backbone, its score head as the
///   generic user's (`ClassificationHead.adopt`), everything else fresh, in the run's own structure
///   (aggregator, user model, window);
/// - a prm checkpoint: its structure, and every weight whose shape does not depend on the users
///   (backbone, soft-prompt head, reply counts, interactions, cluster centres, a uniform model's
///   one row); of the per-user rows the generic user's and those of the run's users the
///   checkpoint knows by id; the run's other users start fresh.
public enum InitialModel {
    case sequenceClassification(URL)
    case checkpoint(URL, model: RewardModel, users: UserTable)

    /// Reads the folder: a checkpoint in full (its structure decides the run's), a
    /// sequence-classification folder only checked (its backbone is loaded in the run's structure).
    public init(_ folder: URL) throws {
        if try RunFolder.readIfWritten(folder) != nil {
            let (model, users, _) = try Checkpoint.load(folder)
            self = .checkpoint(folder, model: model, users: users)
        } else {
            try ClassificationHead.requireScoreHead(in: folder, for: "--init-from")
            self = .sequenceClassification(folder)
        }
    }

    /// The text template a run from a `…ForSequenceClassification` folder writes its data in: the
    /// folder's own chat template, so the run starts scoring as the folder does (nil: it has none,
    /// or this is a checkpoint, whose `structure` carries its template).
    public func chatTemplate() throws -> TextTemplate? {
        guard case .sequenceClassification(let folder) = self else { return nil }
        return try ClassificationHead.chatTemplate(of: folder)
    }

    /// The structure a run from this model trains: a checkpoint's own (nil: the run's options decide).
    public var structure: RewardModelConfig? {
        guard case .checkpoint(_, let model, _) = self else { return nil }
        return model.config
    }

    /// The model to train on `users`, in `config` (for a checkpoint: its `structure` with the run's
    /// user count), and the record of where it started.
    public func model(config: RewardModelConfig, users: UserTable, seed: UInt64,
                      initialization: FreshInitialization) throws -> (model: RewardModel, source: InitSource) {
        switch self {
        case .sequenceClassification(let folder):
            let model = try RewardModel.pretrained(backbone: folder, config: config, seed: seed, initialization: initialization)
            return (model, InitSource(path: folder.standardizedFileURL.path, kind: .sequenceClassification, keptUsers: 0))
        case .checkpoint(let folder, let source, let sourceUsers):
            let model = try RewardModel(backboneConfig: folder.appendingPathComponent("config.json"),
                                        tokenizerFile: folder.appendingPathComponent("tokenizer.json"), config: config)
            model.initializeUserModelAndHead(seed: seed, initialization: initialization)
            let kept = Self.copy(from: source, users: sourceUsers, into: model, users: users)
            return (model, InitSource(path: folder.standardizedFileURL.path, kind: .checkpoint, keptUsers: kept))
        }
    }

    /// Copies `source`'s weights into `model` (same structure, other users): every tensor but the
    /// per-user table whole, then the generic row and the rows of the users both tables name.
    /// Returns how many users kept their row.
    static func copy(from source: RewardModel, users sourceUsers: UserTable, into model: RewardModel, users: UserTable) -> Int {
        let (p, q) = (model.parameters, source.parameters)
        let perUser = model.userModel.perUserTable
        for (index, entry) in p.entries.enumerated() where Parameters.Handle(index: index) != perUser {
            guard let from = q.handle(named: entry.name) else { continue }
            p.value(Parameters.Handle(index: index)).update(from: q.value(from), count: entry.count)
        }
        let shared = users.indices.compactMap { id, index in sourceUsers.indices[id].map { (to: index, from: $0) } }
        for (to, from) in [(to: 0, from: 0)] + shared {
            guard let row = model.userModel.row(to), let sourceRow = source.userModel.row(from) else { continue }
            row.value.update(from: sourceRow.value, count: model.userModel.rowSize)
        }
        p.markChanged()
        return shared.count
    }
}
