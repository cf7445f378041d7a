import Foundation
import PRMCore

/// A `ScoringServer` running on a thread of its own, for benchmarks and tests that drive it from
/// the same process over its real socket.
public final class BackgroundServer: @unchecked Sendable {
    public let server: ScoringServer
    /// The endpoint actually bound (a `:0` port resolved).
    public let endpoint: String
    private let finished = DispatchSemaphore(value: 0)
    private let failure = ErrorSlot()
    private var stopped = false

    /// Starts `server` and returns once its socket is bound.
    public init(_ server: ScoringServer) throws {
        self.server = server
        let ready = DispatchSemaphore(value: 0)
        let bound = UncheckedSendable(NSMutableString(string: ""))
        let finished = self.finished, failure = self.failure
        let thread = Thread {
            do {
                try server.run { endpoint in
                    bound.value.setString(endpoint)
                    ready.signal()
                }
            } catch {
                failure.set(error)
                ready.signal()
            }
            finished.signal()
        }
        thread.stackSize = 8 << 20
        thread.start()
        ready.wait()
        if let error = failure.error { throw error }
        endpoint = bound.value as String
    }

    /// Drains the server as SIGTERM would and waits for it to finish.
    public func stop(timeout: Double = 60) throws {
        guard !stopped else { return }
        stopped = true
        server.requestShutdown()
        guard finished.wait(timeout: .now() + timeout) == .success else {
            throw ServingError("the server did not drain within \(timeout) s")
        }
        if let error = failure.error { throw error }
    }

    deinit { try? stop() }
}

/// The error a background thread ended with, read by the thread that waits for it.
private final class ErrorSlot: @unchecked Sendable {
    private let lock = NSLock()
    private var stored: (any Error)?

    func set(_ error: any Error) { lock.withLock { stored = error } }
    var error: (any Error)? { lock.withLock { stored } }
}
