import Foundation
import PRMCLI

/// One HTTP/1.1 keep-alive connection on a blocking POSIX socket: the load generator of
/// `prm bench serve`'s HTTP cases, one per client thread, one request at a time.
///
/// Why not URLSession: FoundationNetworking drives a session's tasks through one libcurl multi
/// handle on one serial queue, so 64 clients would queue behind it and the bench could end up
/// measuring that queue; a socket per thread costs one `send` and one or two `recv` per request, which the
/// bench checks by recording these threads' CPU time. The response is read by its
/// `Content-Length`, which libmicrohttpd sends for every answer the front door gives; anything
/// else (chunked encoding, a closed connection) is reported as an error rather than guessed at.
final class HTTPKeepAliveClient {
    struct Response {
        var status: Int
        var body: [UInt8]
    }

    private let socket: Int32
    private let host: String
    /// Bytes received past the end of the last response.
    private var pending: [UInt8] = []

    /// Connects to `address` ("127.0.0.1:PORT", IPv4), with Nagle off: a request goes out in one
    /// `send`, and waiting for the previous segment's ACK would add delayed-ACK stalls to it.
    init(address: String) throws {
        guard let colon = address.lastIndex(of: ":"), let port = UInt16(address[address.index(after: colon)...]) else {
            throw CLIError("bench serve: HTTP address \(address) is not HOST:PORT")
        }
        host = address
        socket = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard socket >= 0 else { throw CLIError("bench serve: cannot create a socket for HTTP") }
        var noDelay: Int32 = 1
        setsockopt(socket, Int32(IPPROTO_TCP), TCP_NODELAY, &noDelay, socklen_t(MemoryLayout<Int32>.size))
        var peer = sockaddr_in()
        peer.sin_family = sa_family_t(AF_INET)
        peer.sin_port = port.bigEndian
        peer.sin_addr.s_addr = inet_addr(String(address[..<colon]))
        let connected = withUnsafePointer(to: &peer) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(socket, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
        }
        guard connected else {
            close(socket)
            throw CLIError("bench serve: cannot connect to http://\(address): \(String(cString: strerror(errno)))")
        }
    }

    deinit { close(socket) }

    /// POSTs a JSON body to `path` and waits for the whole response.
    func post(_ path: String, json body: [UInt8]) throws -> Response {
        let head = "POST \(path) HTTP/1.1\r\nHost: \(host)\r\nContent-Type: application/json\r\nContent-Length: \(body.count)\r\n\r\n"
        try sendAll(Array(head.utf8) + body)
        return try receiveResponse()
    }

    private func sendAll(_ bytes: [UInt8]) throws {
        var sent = 0
        while sent < bytes.count {
            let n = bytes.withUnsafeBytes { send(socket, $0.baseAddress! + sent, bytes.count - sent, Int32(MSG_NOSIGNAL)) }
            guard n > 0 else { throw CLIError("bench serve: HTTP send to \(host) failed: \(String(cString: strerror(errno)))") }
            sent += n
        }
    }

    /// Reads the status line and headers, then exactly `Content-Length` bytes of body.
    private func receiveResponse() throws -> Response {
        let separator: [UInt8] = Array("\r\n\r\n".utf8)
        var headEnd: Int?
        while true {
            headEnd = pending.firstRange(of: separator)?.upperBound
            if headEnd != nil { break }
            try receiveMore()
        }
        guard let headEnd else { throw CLIError("bench serve: no HTTP header from \(host)") }
        let lines = String(decoding: pending[..<headEnd], as: UTF8.self).split(separator: "\r\n")
        let statusWords = lines.first?.split(separator: " ") ?? []
        guard statusWords.count >= 2, let status = Int(statusWords[1]) else {
            throw CLIError("bench serve: \(host) sent a malformed HTTP status line: \(lines.first ?? "")")
        }
        let lengthLine = lines.dropFirst().first { $0.lowercased().hasPrefix("content-length:") }
        guard let length = lengthLine.flatMap({ Int($0.split(separator: ":")[1].trimmingCharacters(in: .whitespaces)) }) else {
            throw CLIError("bench serve: \(host) answered without Content-Length")
        }
        while pending.count < headEnd + length { try receiveMore() }
        let body = Array(pending[headEnd..<headEnd + length])
        pending.removeFirst(headEnd + length)
        return Response(status: status, body: body)
    }

    private func receiveMore() throws {
        var chunk = [UInt8](repeating: 0, count: 64 << 10)
        let n = chunk.withUnsafeMutableBytes { recv(socket, $0.baseAddress, $0.count, 0) }
        guard n > 0 else { throw CLIError("bench serve: \(host) closed the HTTP connection or failed: \(String(cString: strerror(errno)))") }
        pending += chunk[..<n]
    }
}
