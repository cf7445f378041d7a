/// A failure of MPI: the library could not be loaded, or a call returned an error (a rank lost,
/// a message truncated). The run stops with it; `Ranks.leave` then aborts the whole job.
public struct MPIError: CausedError, Sendable {
    public let message: String
    public var cause: (any Error)? { nil }

    public init(_ message: String, cause _: (any Error)?) { self.message = message }
}
