import CZeroMQ
import Foundation
import PRMCore

/// `GET /metrics` for Prometheus over a ZMQ_STREAM socket: ZeroMQ hands over the raw TCP bytes
/// of each connection, so a few lines of HTTP/1.x are all it takes, without an HTTP library.
/// Polled by the owner's I/O thread; each answer closes its connection (HTTP/1.0 style).
final class MetricsHTTP {
    let socket: ZMQSocket
    let endpoint: String
    /// Bytes of requests whose headers have not ended yet, per connection.
    private var partial: [[UInt8]: [UInt8]] = [:]
    static let maxRequestBytes = 8_192

    /// `address` is host:port (`127.0.0.1:9464`).
    init(_ context: ZMQContext, address: String) throws {
        socket = try ZMQSocket(context, kind: ZMQ_STREAM)
        try socket.set(ZMQ_LINGER, Int32(1_000))
        try socket.bind("tcp://" + address)
        endpoint = try socket.string(ZMQ_LAST_ENDPOINT)
    }

    /// Answers every complete request waiting; `render` makes the exposition text.
    func answer(_ render: () -> String) throws {
        while let frames = try socket.receive(dontWait: true) {
            guard frames.count == 2 else { continue }
            let (connection, data) = (frames[0], frames[1])
            // An empty frame announces a connection opening or closing.
            guard !data.isEmpty else {
                partial[connection] = nil
                continue
            }
            var request = partial.removeValue(forKey: connection) ?? []
            request += data
            guard let end = Self.headersEnd(request) else {
                if request.count > Self.maxRequestBytes {
                    respond(connection, status: "431 Request Header Fields Too Large", body: "request headers too large\n")
                } else {
                    partial[connection] = request
                }
                continue
            }
            let line = String(decoding: request[..<end].prefix { $0 != 0x0D && $0 != 0x0A }, as: UTF8.self)
            let parts = line.split(separator: " ")
            if parts.count < 2 || !parts.last!.hasPrefix("HTTP/") {
                respond(connection, status: "400 Bad Request", body: "malformed request line\n")
            } else if parts[0] != "GET" && parts[0] != "HEAD" {
                respond(connection, status: "405 Method Not Allowed", body: "only GET\n", extra: "Allow: GET, HEAD\r\n")
            } else if parts[1] != "/metrics" && !parts[1].hasPrefix("/metrics?") {
                respond(connection, status: "404 Not Found", body: "try /metrics\n")
            } else {
                respond(connection, status: "200 OK", body: render(), head: parts[0] == "HEAD",
                        type: "text/plain; version=0.0.4; charset=utf-8")
            }
        }
    }

    private static func headersEnd(_ bytes: [UInt8]) -> Int? {
        guard bytes.count >= 4 else { return nil }
        for i in 0...(bytes.count - 4) where bytes[i] == 0x0D && bytes[i + 1] == 0x0A && bytes[i + 2] == 0x0D && bytes[i + 3] == 0x0A {
            return i
        }
        return nil
    }

    private func respond(_ connection: [UInt8], status: String, body: String, head: Bool = false,
                         type: String = "text/plain; charset=utf-8", extra: String = "") {
        let payload = Array(body.utf8)
        let header = "HTTP/1.0 \(status)\r\nContent-Type: \(type)\r\nContent-Length: \(payload.count)\r\n\(extra)Connection: close\r\n\r\n"
        // Data, then an empty frame: ZMQ_STREAM closes the connection once the data is sent.
        _ = try? socket.send([connection, Array(header.utf8) + (head ? [] : payload)], dontWait: true)
        _ = try? socket.send([connection, []], dontWait: true)
    }

    func close() { socket.close() }
}
