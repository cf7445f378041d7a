import Foundation

/// One HTTP request from its headers to its response. libmicrohttpd's thread fills the body and
/// hands it over; the I/O thread answers it (`finish`) and resumes the connection, after which
/// libmicrohttpd's thread sends the answer. The answer passes between the two under a lock.
final class HTTPExchange: @unchecked Sendable {
    let id: UInt64
    /// The connection, suspended while the I/O thread holds the request.
    let connection: OpaquePointer
    let endpoint: HTTPEndpoint
    /// GET or HEAD (answered without a body by libmicrohttpd), POST.
    let method: String
    /// The body so far (libmicrohttpd's thread only until the hand-over).
    var body: [UInt8] = []
    /// Handed to the I/O thread (libmicrohttpd's thread only).
    var handedOver = false
    private let lock = NSLock()
    private var answer: HTTPAnswer?

    init(id: UInt64, connection: OpaquePointer, endpoint: HTTPEndpoint, method: String) {
        self.id = id
        self.connection = connection
        self.endpoint = endpoint
        self.method = method
    }

    /// Sets the answer; the caller then resumes the connection.
    func finish(_ answer: HTTPAnswer) { lock.withLock { self.answer = answer } }

    /// The answer, once per exchange, for libmicrohttpd's thread to send.
    func takeAnswer() -> HTTPAnswer? {
        lock.withLock {
            defer { answer = nil }
            return answer
        }
    }
}
