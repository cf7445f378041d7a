import Foundation
import Synchronization

/// Requests libmicrohttpd's thread hands to the I/O thread: a locked list, and a pipe whose read
/// end the I/O thread polls with its ZeroMQ sockets (one byte written per hand-over wakes it).
final class HTTPInbox: Sendable {
    private let waiting = Mutex<[HTTPExchange]>([])
    /// The read end, for `PollSet.add(fd:)`.
    let fd: Int32
    private let writeEnd: Int32

    init() throws {
        var fds: [Int32] = [0, 0]
        guard pipe(&fds) == 0 else { throw ServingError("cannot create the HTTP hand-over pipe: \(String(cString: strerror(errno)))") }
        for fd in fds { _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) }
        (fd, writeEnd) = (fds[0], fds[1])
    }

    /// libmicrohttpd's thread: queues a request and wakes the I/O thread. A full pipe already
    /// holds a wake-up, so a write that cannot go is not needed.
    func push(_ exchange: HTTPExchange) {
        waiting.withLock { $0.append(exchange) }
        var byte: UInt8 = 1
        _ = write(writeEnd, &byte, 1)
    }

    /// The I/O thread: everything handed over since the last call.
    func take() -> [HTTPExchange] {
        var buffer = [UInt8](repeating: 0, count: 256)
        while read(fd, &buffer, buffer.count) > 0 {}
        return waiting.withLock { list in
            defer { list.removeAll() }
            return list
        }
    }

    deinit {
        close(fd)
        close(writeEnd)
    }
}
