import Foundation
import PRMCore

/// The HTTP front door of `prm serve` and `prm proxy` (`--http`; protocols/PROTOCOL.md, "HTTP
/// front door").
public struct HTTPSettings: Sendable {
    /// host:port to listen on (`127.0.0.1:8080`, `[::1]:8080`, `0.0.0.0:8080`; port 0: any free one).
    public var address: String
    /// Bearer tokens, one a line, re-read on SIGHUP (nil: no authentication).
    public var tokenFile: URL?
    /// TLS through libmicrohttpd's GnuTLS: a PEM certificate and its PEM key, both or neither.
    public var tlsCertificate: URL?
    public var tlsKey: URL?
    /// Seconds a connection may stay idle (a slow client's headers or body included) before it is
    /// closed; a request waiting for its scores is not idle.
    public var connectionTimeout = 30
    /// Connections open at once; more are refused at accept.
    public var maxConnections = 512

    public init(address: String) { self.address = address }

    /// Whether the listener is reachable from other hosts.
    public var isLocal: Bool { Endpoints.isLocal("tcp://" + address) }

    /// The loud warning for a listener open to the network that takes requests without a token.
    public func warnIfExposed(role: String) {
        guard tokenFile == nil, !isLocal else { return }
        Log.warning("""
            ********************************************************************************
            \(role) answers HTTP on \(address), reachable from the network, WITHOUT
            authentication: anyone who can reach it can score with this model. Give
            --http-token-file FILE (clients send Authorization: Bearer TOKEN), add TLS with
            --tls-cert/--tls-key, or bind a loopback address.
            ********************************************************************************
            """)
    }
}
