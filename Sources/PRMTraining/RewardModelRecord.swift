import Foundation
import PRMModel

/// A reward model's training record, config.json's "prm.training": what trained it (`prm train`'s
/// settings and step), the final refit of its seen users, the users `prm adapt` added, and the
/// per-user statistics of the final model's scores on their training comparisons. Every
/// field is optional: a folder records only the stages it went through.
public struct RewardModelRecord: Codable {
    /// A user `prm adapt` added, with the comparisons it was fitted on.
    public struct AddedUser: Codable {
        public var userID: String
        public var index: Int
        public var comparisons: Int

        enum CodingKeys: String, CodingKey { case userID = "user_id", index, comparisons }

        public init(userID: String, index: Int, comparisons: Int) {
            self.userID = userID
            self.index = index
            self.comparisons = comparisons
        }
    }

    public var settings: TrainingSettings?
    public var step: Int?
    /// `Trainer.refitSeenUsers` or `prm adapt --refit-seen`.
    public var refitSeen: SeenUserRefit?
    public var adapted: [AddedUser]?
    /// What a server's drift check compares its served scores with (`ScoreStatistics`).
    public var scoreStatistics: ScoreStatistics?

    enum CodingKeys: String, CodingKey {
        case settings, step, refitSeen = "refit_seen", adapted
        case scoreStatistics = "score_statistics"
    }

    public init(settings: TrainingSettings? = nil, step: Int? = nil, refitSeen: SeenUserRefit? = nil, scoreStatistics: ScoreStatistics? = nil) {
        self.settings = settings
        self.step = step
        self.refitSeen = refitSeen
        self.scoreStatistics = scoreStatistics
    }

    /// The record of a loaded checkpoint (`Checkpoint.load`'s training object).
    public init(_ record: [String: Any], in directory: URL) throws {
        self = try RunFolder.fields(Self.self, of: record) {
            TrainingError("\(directory.appendingPathComponent("config.json").path): prm.training: \($0)")
        }
    }

    /// The record written over `record`: fields this type does not know (other stages, older
    /// writers) are kept as they were.
    public func merged(into record: [String: Any] = [:]) throws -> [String: Any] {
        record.merging(try RunFolder.jsonDictionary(encoding: self)) { $1 }
    }
}
