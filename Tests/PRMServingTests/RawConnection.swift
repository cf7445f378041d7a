import Foundation

/// A plain TCP connection for the HTTP tests whose client must misbehave (a body far over the
/// limit, headers that never end), which URLSession will not do.
final class RawConnection {
    private let fd: Int32

    /// `base` is `http://HOST:PORT`.
    init(_ base: String) throws {
        let address = base.replacingOccurrences(of: "http://", with: "")
        guard let colon = address.lastIndex(of: ":"), let port = UInt16(address[address.index(after: colon)...]) else {
            throw NSError(domain: "RawConnection", code: 1, userInfo: [NSLocalizedDescriptionKey: "bad address \(base)"])
        }
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var target = sockaddr_in()
        target.sin_family = sa_family_t(AF_INET)
        target.sin_port = port.bigEndian
        inet_pton(AF_INET, String(address[..<colon]), &target.sin_addr)
        let status = withUnsafePointer(to: &target) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard status == 0 else {
            close(fd)
            throw NSError(domain: "RawConnection", code: 2, userInfo: [NSLocalizedDescriptionKey: "cannot connect to \(base)"])
        }
    }

    deinit { close(fd) }

    /// Sends what it can; a server that closed the connection ends the sending quietly.
    func send(_ text: String) {
        var bytes = Array(text.utf8)[...]
        while !bytes.isEmpty {
            let sent = bytes.withUnsafeBytes { Foundation.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            guard sent > 0 else { return }
            bytes = bytes.dropFirst(sent)
        }
    }

    /// Everything received until the server closes the connection or `timeout` seconds pass.
    func readAll(timeout: Double) -> String {
        var received: [UInt8] = []
        let deadline = Date().addingTimeInterval(timeout)
        var buffer = [UInt8](repeating: 0, count: 65_536)
        while Date() < deadline {
            var poll = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard Foundation.poll(&poll, 1, 100) > 0 else { continue }
            let count = recv(fd, &buffer, buffer.count, 0)
            if count <= 0 { break }
            received += buffer[..<count]
        }
        return String(decoding: received, as: UTF8.self)
    }
}
