import PRMCore

/// ZeroMQ endpoints as users type them: whether one is well formed, and whether it is open to
/// the network.
public enum Endpoints {
    /// The transports prm's sockets use: tcp between hosts, ipc between processes of one host,
    /// inproc inside one process.
    public static let schemes = ["tcp", "ipc", "inproc"]

    /// What is wrong with `endpoint`, or nil when it is well formed. libzmq itself is lenient in
    /// ways that hide mistakes: it reads the port with `strtoul` and keeps the low 16 bits, so
    /// `tcp://127.0.0.1:99999` listens on 34463. Checked before anything binds or connects.
    public static func problem(_ endpoint: String) -> String? {
        guard let separator = endpoint.range(of: "://"), schemes.contains(String(endpoint[..<separator.lowerBound])) else {
            return "expected \(schemes.map { "\($0)://" }.joined(separator: ", ")) followed by an address"
        }
        let scheme = endpoint[..<separator.lowerBound], address = endpoint[separator.upperBound...]
        guard !address.isEmpty else { return "the address after \(scheme):// is empty" }
        return scheme == "tcp" ? tcpProblem(address) : nil
    }

    /// `host:port` (`[v6]:port` too), after an optional `source;` of a connecting socket; the
    /// port is 1-65535, or `*` for one the system chooses.
    private static func tcpProblem(_ address: Substring) -> String? {
        let target = address.split(separator: ";", omittingEmptySubsequences: false).last ?? address
        guard let colon = target.lastIndex(of: ":") else { return "expected HOST:PORT after tcp://" }
        let host = target[..<colon], port = target[target.index(after: colon)...]
        guard !host.isEmpty, host != "[]" else { return "the host is empty" }
        guard port == "*" || (port.allSatisfy { $0.isASCII && $0.isNumber } && Int(port).map { (1...65_535).contains($0) } == true) else {
            return "the port must be 1-65535 or *, got '\(port)'"
        }
        return nil
    }

    /// tcp to 127.x, localhost or ::1, and ipc/inproc, stay on this host; anything else
    /// (0.0.0.0, *, a public address, an interface name) is reachable from the network.
    public static func isLocal(_ endpoint: String) -> Bool {
        guard endpoint.hasPrefix("tcp://") else { return endpoint.hasPrefix("ipc://") || endpoint.hasPrefix("inproc://") }
        let address = endpoint.dropFirst("tcp://".count)
        let host = address.hasPrefix("[") ? String(address.dropFirst().prefix { $0 != "]" }) : String(address.prefix { $0 != ":" })
        return host.hasPrefix("127.") || host == "localhost" || host == "::1"
    }

    /// A loud warning for a listening endpoint open to the network without CURVE.
    public static func warnIfExposed(_ endpoint: String, curve: Bool, role: String) {
        guard !curve, !isLocal(endpoint) else { return }
        Log.warning("""
            ********************************************************************************
            \(role) listens on \(endpoint), reachable from the network, WITHOUT authentication or
            encryption: anyone who can reach it can use it and read the traffic. Use CURVE
            (prm keygen; --curve-secret-key and --allow-keys) or bind a loopback address.
            ********************************************************************************
            """)
    }
}
