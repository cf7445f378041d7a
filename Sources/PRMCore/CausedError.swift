import Foundation

/// Each target's one error type (`ModelError`, `PolicyError`, `TrainingError`, `ServingError`,
/// `CLIError`): what went wrong, naming the file, field or option, and the failure underneath
/// when it wraps one (a parse, a decode, a server's reply), kept as a value rather than only
/// as text so callers can still inspect it.
public protocol CausedError: Error, CustomStringConvertible {
    var message: String { get }
    var cause: (any Error)? { get }
    init(_ message: String, cause: (any Error)?)
}

extension CausedError {
    /// The message, then the cause's own description: "runs/x/users.json: invalid JSON at byte 3: …".
    public var description: String { cause.map { "\(message): \($0)" } ?? message }

    public init(_ message: String) { self.init(message, cause: nil) }

    /// A problem with `file`, named first: "runs/x/config.json: field 'prm' missing".
    public init(file: URL, _ problem: String, cause: (any Error)? = nil) { self.init("\(file.path): \(problem)", cause: cause) }
}
