/// What `prm train --init-from` started from, recorded in the training settings ("init_from"), so
/// a checkpoint says which reward model it was fine-tuned from (`InitialModel` builds that start).
public struct InitSource: Codable, Sendable, Equatable {
    public enum Kind: String, Codable, Sendable {
        /// A Hugging Face `…ForSequenceClassification` folder: backbone and score head.
        case sequenceClassification = "sequence-classification"
        /// A prm reward-model checkpoint: everything but the users the new data does not share.
        case checkpoint = "prm-checkpoint"
    }

    /// The folder, as an absolute path.
    public var path: String
    public var kind: Kind
    /// Users of the new data whose rows were the checkpoint's (0 from a sequence-classification folder).
    public var keptUsers: Int

    enum CodingKeys: String, CodingKey { case path, kind, keptUsers = "kept_users" }

    public init(path: String, kind: Kind, keptUsers: Int) {
        self.path = path
        self.kind = kind
        self.keptUsers = keptUsers
    }
}
