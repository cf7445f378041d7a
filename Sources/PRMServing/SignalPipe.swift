import Foundation
import Synchronization

/// SIGTERM, SIGINT and SIGHUP as a readable file descriptor (the self-pipe trick), so the
/// server's zmq_poll wakes on a signal like on a message. The handler only writes one byte (the
/// signal's number), which is async-signal-safe; everything else happens on the I/O thread.
enum SignalPipe {
    /// The pipe's write end, for the handler (a C function pointer cannot capture it).
    private static let writeEnd = Atomic<Int32>(-1)
    private static let readEnd = Atomic<Int32>(-1)

    /// Installs the handlers; returns the read end to poll.
    static func install() throws -> Int32 {
        var fds: [Int32] = [0, 0]
        guard pipe(&fds) == 0 else { throw ServingError("cannot create the signal pipe: \(String(cString: strerror(errno)))") }
        for fd in fds { _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) }
        writeEnd.store(fds[1], ordering: .sequentiallyConsistent)
        readEnd.store(fds[0], ordering: .sequentiallyConsistent)
        signal(SIGTERM, handler)
        signal(SIGINT, handler)
        signal(SIGHUP, handler)
        return fds[0]
    }

    /// Restores the default handlers and closes the pipe.
    static func uninstall() {
        signal(SIGTERM, SIG_DFL)
        signal(SIGINT, SIG_DFL)
        signal(SIGHUP, SIG_DFL)
        for fd in [writeEnd.exchange(-1, ordering: .sequentiallyConsistent), readEnd.exchange(-1, ordering: .sequentiallyConsistent)] where fd >= 0 {
            close(fd)
        }
    }

    /// What a signal does, for in-process callers.
    static func raise() { handler(SIGTERM) }

    /// What arrived since the last wake-up: a request to stop (SIGTERM/SIGINT), to reload (SIGHUP).
    struct Arrived {
        var stop = false
        var reload = false
    }

    /// Empties the pipe after a wake-up.
    static func drain(_ fd: Int32) -> Arrived {
        var arrived = Arrived()
        var byte: UInt8 = 0
        while read(fd, &byte, 1) == 1 {
            if Int32(byte) == SIGHUP { arrived.reload = true } else { arrived.stop = true }
        }
        return arrived
    }

    private static let handler: @convention(c) (Int32) -> Void = { signal in
        var byte = UInt8(truncatingIfNeeded: signal)
        _ = write(SignalPipe.writeEnd.load(ordering: .relaxed), &byte, 1)
    }
}
