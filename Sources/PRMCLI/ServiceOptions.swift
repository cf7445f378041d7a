import Foundation
import PRMServing

/// Options `prm serve` and `prm proxy` share, declared and read in one place.
enum ServiceOptions {
    /// --drain-timeout.
    static let drainTimeout = OptionSpec.value(
        "drain-timeout", placeholder: "SECONDS",
        help: "After SIGTERM/SIGINT: seconds to finish accepted work; what still waits then is answered shutting_down. "
            + "The default outlasts the bundled clients' \(ScoringClient.defaultTimeout) s reply timeout.",
        default: "\(ServerSettings.defaultDrainTimeout)")

    static func drainTimeout(_ a: ParsedArguments) throws -> Double {
        guard let seconds = try a.double("drain-timeout"), seconds >= 0, seconds.isFinite else {
            throw a.usageError("--drain-timeout must be a number of seconds, 0 or more")
        }
        return seconds
    }

    /// --heartbeat-ms and --liveness (their help differs: a worker's view or the proxy's).
    static func heartbeat(_ a: ParsedArguments) throws -> Heartbeat {
        var h = Heartbeat()
        h.intervalMs = try a.double("heartbeat-ms") ?? h.intervalMs
        guard h.intervalMs >= 10 else { throw a.usageError("--heartbeat-ms must be at least 10") }
        h.liveness = try a.count("liveness")
        return h
    }
}
