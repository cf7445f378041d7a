import PRMCore

/// A failure of the service that is not a request's fault (start-up, sockets).
public struct ServingError: CausedError, Sendable {
    public let message: String
    public let cause: (any Error)?

    public init(_ message: String, cause: (any Error)?) {
        self.message = message
        self.cause = cause
    }
}
