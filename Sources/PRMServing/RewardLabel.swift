import PRMCore

/// The user of an RL framework's sample, read from its label (OpenRLHF's `labels[i]`, slime's
/// `label`): a user id string, or an object with `user_id`; absent or null is the generic user.
enum RewardLabel {
    static func user(_ label: JSONValue?, field: String) throws(WireError) -> String? {
        switch label {
        case nil, .null?: return nil
        case .string(let user)?: return user
        case .object(let object)?:
            switch object["user_id"] {
            case nil, .null?: return nil
            case .string(let user)?: return user
            case let other?: throw WireError(.badRequest, "\(field).user_id must be a string or null, got \(other.kind.withArticle)")
            }
        case let other?:
            throw WireError(.badRequest, "\(field) must be a user id string, an object with user_id, or null; got \(other.kind.withArticle)")
        }
    }
}
