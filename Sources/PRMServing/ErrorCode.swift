/// The stable error codes of protocol v1 (protocols/PROTOCOL.md, "Errors"); the schema lists the
/// same set. Every failure a request can meet maps to exactly one of these, here and nowhere else.
public enum ErrorCode: String, Sendable, CaseIterable {
    case badJSON = "bad_json"
    case badUTF8 = "bad_utf8"
    case badRequest = "bad_request"
    case unsupportedVersion = "unsupported_version"
    case unknownOp = "unknown_op"
    case tooManyCandidates = "too_many_candidates"
    case tooManyTokens = "too_many_tokens"
    case tooLarge = "too_large"
    case overloaded
    case deadlineExceeded = "deadline_exceeded"
    case shuttingDown = "shutting_down"
    /// `adapt`: the model's users cannot be fitted (not individual linear-head users), or the id is a trained user.
    case notAdaptable = "not_adaptable"
    /// `adapt`: more adapts in the last minute than the server allows.
    case rateLimited = "rate_limited"
    /// `adapt`: the server holds as many adapted users as it allows.
    case tooManyUsers = "too_many_users"
    /// `reload`: the checkpoint could not be loaded or failed the smoke test; the old model serves on.
    case reloadFailed = "reload_failed"
    case `internal`
}

extension ErrorCode {
    /// The HTTP status of an error reply at the HTTP front door (protocols/PROTOCOL.md, "HTTP
    /// front door"): the request's fault is 4xx, the server's state 429/503/504, a bug 500.
    var httpStatus: Int {
        switch self {
        case .badJSON, .badUTF8, .badRequest, .unsupportedVersion, .unknownOp, .tooManyCandidates, .tooManyTokens, .notAdaptable: 400
        case .tooManyUsers, .reloadFailed: 409
        case .tooLarge: 413
        case .overloaded, .rateLimited: 429
        case .shuttingDown: 503
        case .deadlineExceeded: 504
        case .internal: 500
        }
    }
}
