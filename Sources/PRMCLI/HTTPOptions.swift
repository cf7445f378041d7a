import Foundation
import PRMServing

/// The HTTP front door's options, which serve and proxy share, declared and read in one place.
enum HTTPOptions {
    static let defaults = HTTPSettings(address: "127.0.0.1:8080")

    static let all: [OptionSpec] = [
        .value("http", placeholder: "HOST:PORT", help: "Also answer HTTP there (protocols/PROTOCOL.md, \"HTTP front door\"): /v1/rank, /v1/score, "
               + "/v1/info, /v1/metrics, OpenRLHF's /get_reward, slime's /reward, /rerank, /health/live, /health/ready, /metrics. "
               + "A port alone listens on 127.0.0.1."),
        .value("http-token-file", placeholder: "FILE", help: "HTTP: bearer tokens, one a line, re-read on SIGHUP; requests without one are "
               + "refused 401 (/health/live stays open)."),
        .value("tls-cert", placeholder: "FILE", help: "HTTP: serve HTTPS with this PEM certificate (with --tls-key)."),
        .value("tls-key", placeholder: "FILE", help: "HTTP: the PEM private key of --tls-cert."),
        .value("http-timeout", placeholder: "SECONDS", help: "HTTP: close a connection idle this long (slow clients included; "
               + "a request waiting for its scores is not idle).", default: "\(defaults.connectionTimeout)"),
        .value("http-max-connections", placeholder: "N", help: "HTTP: connections open at once; more are refused.",
               default: "\(defaults.maxConnections)"),
    ]

    /// The settings, or nil without --http; files are checked here, before a model is loaded.
    static func settings(_ a: ParsedArguments) throws -> HTTPSettings? {
        guard let given = a.string("http") else {
            if let stray = ["http-token-file", "tls-cert", "tls-key"].first(where: a.isSet) { throw a.usageError("--\(stray) needs --http HOST:PORT") }
            return nil
        }
        let address = given.allSatisfy(\.isNumber) ? "127.0.0.1:" + given : given
        if let problem = Endpoints.problem("tcp://" + address) { throw a.usageError("--http '\(given)': \(problem)") }
        var s = HTTPSettings(address: address)
        s.tokenFile = try readableFile(a, "http-token-file")
        (s.tlsCertificate, s.tlsKey) = (try readableFile(a, "tls-cert"), try readableFile(a, "tls-key"))
        if (s.tlsCertificate == nil) != (s.tlsKey == nil) { throw a.usageError("TLS needs both --tls-cert and --tls-key") }
        s.connectionTimeout = try a.count("http-timeout")
        s.maxConnections = try a.count("http-max-connections")
        return s
    }

    private static func readableFile(_ a: ParsedArguments, _ name: String) throws -> URL? {
        guard let path = a.string(name) else { return nil }
        guard FileManager.default.isReadableFile(atPath: path) else { throw a.usageError("--\(name) \(path): no such readable file") }
        return URL(fileURLWithPath: path)
    }
}
