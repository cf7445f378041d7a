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

    /// --metrics-http: a listener for Prometheus alone.
    static let metricsHTTP = OptionSpec.value(
        "metrics-http", placeholder: "HOST:PORT",
        help: "Answer GET /metrics in Prometheus's text format there (e.g. 127.0.0.1:9464), and nothing else: "
            + "a scrape port exposes no scoring (--http serves /metrics too).")

    /// --max-candidates and --max-message-bytes: the request limits server and proxy both check.
    static let maxCandidates = OptionSpec.value("max-candidates", placeholder: "N", help: "Candidates per rank, items per score.",
                                                default: "\(ServerLimits().maxCandidates)")
    static let maxMessageBytes = OptionSpec.value("max-message-bytes", placeholder: "N", help: "Largest request body.",
                                                  default: "\(ServerLimits().maxMessageBytes)")

    /// --max-adapt-comparisons: checked by the proxy too, which parses every request.
    static let maxAdaptComparisons = OptionSpec.value("max-adapt-comparisons", placeholder: "N", help: "Comparisons per adapt.",
                                                      default: "\(ServerLimits().maxAdaptComparisons)")

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
