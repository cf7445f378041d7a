import Foundation
import PRMServing

/// How a command that is a client of `prm serve` or `prm proxy` (`prm score --server`, `prm ppo
/// --reward-server`) waits and retries, declared and read in one place; CURVE keys come from
/// `CurveOptions`.
enum ClientOptions {
    struct Settings {
        var timeout = ScoringClient.defaultTimeout
        var retries = ScoringClient.defaultRetries
        var contactTimeout = ScoringClient.defaultContactTimeout
        var keys: Curve.ClientKeys?
    }

    /// The options, their help naming `endpointOption` (the option that makes the command a client).
    static func all(for endpointOption: String) -> [OptionSpec] {
        let defaults = Settings()
        return [
            .value("timeout", placeholder: "SECONDS", help: "--\(endpointOption): seconds to wait for each reply before retrying.",
                   default: "\(defaults.timeout)"),
            .value("retries", placeholder: "N", help: "--\(endpointOption): resends after a timeout, each on a fresh socket.",
                   default: "\(defaults.retries)"),
            .value("connect-timeout", placeholder: "SECONDS", help: "--\(endpointOption): seconds the first contact may take; "
                   + "a server silent that long is reported unreachable, without retries.", default: "\(defaults.contactTimeout)"),
        ]
    }

    static func settings(_ a: ParsedArguments) throws -> Settings {
        var s = Settings()
        s.timeout = try a.double("timeout") ?? s.timeout
        s.retries = try a.int("retries") ?? s.retries
        guard s.timeout > 0, s.timeout.isFinite else { throw a.usageError("--timeout must be a positive number of seconds") }
        guard s.retries >= 0 else { throw a.usageError("--retries must be at least 0") }
        s.contactTimeout = try a.double("connect-timeout") ?? s.contactTimeout
        guard s.contactTimeout > 0, s.contactTimeout.isFinite else { throw a.usageError("--connect-timeout must be a positive number of seconds") }
        s.keys = try CurveOptions.clientKeys(a)
        return s
    }
}
