import PRMCore

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
