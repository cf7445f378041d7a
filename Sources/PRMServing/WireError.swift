import PRMCore

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

/// An error reply: a code, a message naming the field, and the request's id when it could be read.
public struct WireError: Error, Sendable, CustomStringConvertible {
    public let code: ErrorCode
    public let message: String
    public var id: JSONValue?

    public init(_ code: ErrorCode, _ message: String, id: JSONValue? = nil) {
        self.code = code
        self.message = message
        self.id = id
    }

    public var description: String { "\(code.rawValue): \(message)" }
}
