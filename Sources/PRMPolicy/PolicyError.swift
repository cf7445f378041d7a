import PRMCore

/// Everything that can go wrong loading, training or running a policy; the message names the
/// file, field or option involved.
public struct PolicyError: CausedError, Sendable {
    public let message: String
    public let cause: (any Error)?

    public init(_ message: String, cause: (any Error)?) {
        self.message = message
        self.cause = cause
    }
}
