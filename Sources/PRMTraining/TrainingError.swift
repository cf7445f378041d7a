import PRMCore

/// Why training, evaluation or adaptation could not go on (bad settings, data, or a diverged run).
public struct TrainingError: CausedError, Sendable {
    public let message: String
    public let cause: (any Error)?

    public init(_ message: String, cause: (any Error)?) {
        self.message = message
        self.cause = cause
    }
}
