import PRMCore

/// PRMCLI's one error type. A failed command (`failure`) prints `prm CMD: error: <message>` and
/// exits 1; a command line that does not match the command's spec (`usage`, thrown by the
/// parser, the typed getters and the commands' own checks) prints `prm CMD: <message>` then
/// `usage: <usage line>` and exits 2. Public for the benchmarks (PRMBench).
public struct CLIError: CausedError, Equatable, Sendable {
    public enum Kind: Sendable, Equatable { case failure, usage }

    public let kind: Kind
    /// What is wrong, naming the file, option or argument: "--epochs expects an integer, got 'x'".
    public let message: String
    public let cause: (any Error)?
    /// A usage error's command line summary ("prm train [options] <data>"), when known. Commands
    /// that throw their own may leave it nil; `CLI.run` fills in the command's usage line.
    public var usage: String?

    /// A failed command.
    public init(_ message: String, cause: (any Error)?) {
        kind = .failure
        self.message = message
        self.cause = cause
    }

    private init(usageMessage: String, usage: String?) {
        kind = .usage
        message = usageMessage
        cause = nil
        self.usage = usage
    }

    /// A command line that does not match the command's spec.
    public static func usageError(_ message: String, usage: String? = nil) -> CLIError {
        CLIError(usageMessage: message, usage: usage)
    }

    public var description: String {
        switch kind {
        case .failure: return cause.map { "\(message): \($0)" } ?? message
        case .usage: return usage.map { "\(message)\nusage: \($0)" } ?? message
        }
    }

    /// Equal kinds, messages and usage lines, and causes that describe themselves alike.
    public static func == (a: CLIError, b: CLIError) -> Bool {
        a.kind == b.kind && a.message == b.message && a.usage == b.usage && a.cause.map { "\($0)" } == b.cause.map { "\($0)" }
    }
}
