import PRMCore

/// Everything that can go wrong loading or using a model, with the file and key involved.
public struct ModelError: CausedError, Sendable {
    public let message: String
    public let cause: (any Error)?

    public init(_ message: String, cause: (any Error)?) {
        self.message = message
        self.cause = cause
    }
}
