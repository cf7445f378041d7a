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
    case `internal`
}
