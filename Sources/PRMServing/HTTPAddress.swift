import Foundation

/// A listening address for libmicrohttpd: `host:port` (`[v6]:port` too; `*` or port 0: one the
/// system picks) resolved to the socket address it binds.
struct HTTPAddress {
    /// A `sockaddr_in` or `sockaddr_in6`, as bytes.
    let socketAddress: [UInt8]
    let isIPv6: Bool

    init(_ address: String) throws {
        guard let colon = address.lastIndex(of: ":") else { throw ServingError("HTTP address '\(address)': expected HOST:PORT") }
        var host = String(address[..<colon])
        let port = address[address.index(after: colon)...]
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        guard let number = port == "*" ? 0 : UInt16(port) else { throw ServingError("HTTP address '\(address)': the port must be 0-65535 or *") }
        var hints = addrinfo()
        hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var found: UnsafeMutablePointer<addrinfo>?
        let status = getaddrinfo(host == "*" ? nil : host, String(number), &hints, &found)
        guard status == 0, let first = found else {
            throw ServingError("HTTP address '\(address)': cannot resolve '\(host)': \(String(cString: gai_strerror(status)))")
        }
        defer { freeaddrinfo(found) }
        let info = first.pointee
        socketAddress = Array(UnsafeRawBufferPointer(start: info.ai_addr, count: Int(info.ai_addrlen)))
        isIPv6 = info.ai_family == AF_INET6
    }
}
