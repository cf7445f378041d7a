import CZeroMQ
import Foundation

/// A failed libzmq call, with the call's name and libzmq's own description.
public struct ZMQError: Error, CustomStringConvertible, Sendable {
    public let code: Int32
    public let operation: String

    public var description: String { "\(operation): \(String(cString: zmq_strerror(code)))" }

    static func last(_ operation: String) -> ZMQError { ZMQError(code: zmq_errno(), operation: operation) }
}

/// One libzmq context per process side (server, client); sockets are made from it.
public final class ZMQContext: @unchecked Sendable {
    let handle: UnsafeMutableRawPointer

    public init() throws {
        guard let handle = zmq_ctx_new() else { throw ZMQError.last("zmq_ctx_new") }
        self.handle = handle
    }

    deinit { zmq_ctx_term(handle) }
}

/// A libzmq socket with multipart messages as arrays of byte frames. Like the C socket it wraps,
/// it belongs to one thread at a time.
public final class ZMQSocket {
    public let kind: Int32
    private var handle: UnsafeMutableRawPointer?
    /// Keeps the context alive while the socket is open (zmq_ctx_term waits for its sockets).
    private let context: ZMQContext

    public init(_ context: ZMQContext, kind: Int32) throws {
        guard let handle = zmq_socket(context.handle, kind) else { throw ZMQError.last("zmq_socket") }
        self.handle = handle
        self.kind = kind
        self.context = context
    }

    deinit { close() }

    /// Closes the socket; pending outgoing messages are kept for the linger period.
    public func close() {
        if let handle { zmq_close(handle) }
        handle = nil
    }

    private var socket: UnsafeMutableRawPointer {
        guard let handle else { preconditionFailure("ZMQSocket used after close()") }
        return handle
    }

    public func bind(_ endpoint: String) throws {
        guard zmq_bind(socket, endpoint) == 0 else { throw ZMQError.last("bind \(endpoint)") }
    }

    public func connect(_ endpoint: String) throws {
        guard zmq_connect(socket, endpoint) == 0 else { throw ZMQError.last("connect \(endpoint)") }
    }

    public func set(_ option: Int32, _ value: Int32) throws {
        var v = value
        guard zmq_setsockopt(socket, option, &v, MemoryLayout<Int32>.size) == 0 else { throw ZMQError.last("zmq_setsockopt \(option)") }
    }

    public func set(_ option: Int32, _ value: Int64) throws {
        var v = value
        guard zmq_setsockopt(socket, option, &v, MemoryLayout<Int64>.size) == 0 else { throw ZMQError.last("zmq_setsockopt \(option)") }
    }

    public func set(_ option: Int32, bytes: [UInt8]) throws {
        let status = bytes.withUnsafeBufferPointer { zmq_setsockopt(socket, option, $0.baseAddress, $0.count) }
        guard status == 0 else { throw ZMQError.last("zmq_setsockopt \(option)") }
    }

    /// A string option such as ZMQ_LAST_ENDPOINT.
    public func string(_ option: Int32) throws -> String {
        var buffer = [CChar](repeating: 0, count: 1024)
        var size = buffer.count
        guard zmq_getsockopt(socket, option, &buffer, &size) == 0 else { throw ZMQError.last("zmq_getsockopt \(option)") }
        return String(decoding: buffer.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// Sends all frames as one message. Returns false when the message could not be queued
    /// without blocking (`dontWait`: high-water mark reached) or the peer is unreachable (a
    /// ROUTER with ZMQ_ROUTER_MANDATORY); other failures throw.
    @discardableResult
    public func send(_ frames: [[UInt8]], dontWait: Bool = false) throws -> Bool {
        for (i, frame) in frames.enumerated() {
            var flags: Int32 = dontWait ? ZMQ_DONTWAIT : 0
            if i < frames.count - 1 { flags |= ZMQ_SNDMORE }
            let sent = frame.withUnsafeBytes { zmq_send(socket, $0.baseAddress, $0.count, flags) }
            if sent < 0 {
                let code = zmq_errno()
                // Only the first frame can fail this way: once it is queued the rest follow.
                if code == EAGAIN || code == EHOSTUNREACH { return false }
                throw ZMQError(code: code, operation: "zmq_send")
            }
        }
        return true
    }

    /// Receives one whole message; nil when `dontWait` and nothing is waiting, or on timeout.
    public func receive(dontWait: Bool = false) throws -> [[UInt8]]? {
        var frames: [[UInt8]] = []
        while true {
            var message = zmq_msg_t()
            zmq_msg_init(&message)
            defer { zmq_msg_close(&message) }
            if zmq_msg_recv(&message, socket, frames.isEmpty && dontWait ? ZMQ_DONTWAIT : 0) < 0 {
                let code = zmq_errno()
                if code == EAGAIN && frames.isEmpty { return nil }
                throw ZMQError(code: code, operation: "zmq_msg_recv")
            }
            let size = zmq_msg_size(&message)
            if size == 0 {
                frames.append([])
            } else {
                let data = zmq_msg_data(&message).assumingMemoryBound(to: UInt8.self)
                frames.append(Array(UnsafeBufferPointer(start: data, count: size)))
            }
            if zmq_msg_more(&message) == 0 { return frames }
        }
    }

    /// Poll item for this socket.
    func pollItem(_ events: Int16 = Int16(ZMQ_POLLIN)) -> zmq_pollitem_t {
        zmq_pollitem_t(socket: socket, fd: 0, events: events, revents: 0)
    }
}

/// One zmq_poll over sockets and plain file descriptors, with items named by the index `add`
/// returns (loops whose set of sockets changes rebuild it each turn).
struct PollSet {
    private var items: [zmq_pollitem_t] = []

    mutating func add(_ socket: ZMQSocket) -> Int {
        items.append(socket.pollItem())
        return items.count - 1
    }

    mutating func add(fd: Int32) -> Int {
        items.append(zmq_pollitem_t(socket: nil, fd: fd, events: Int16(ZMQ_POLLIN), revents: 0))
        return items.count - 1
    }

    /// Waits up to `timeoutMs` (-1: forever) for input on any item.
    mutating func wait(timeoutMs: Int) throws {
        if zmq_poll(&items, Int32(items.count), timeoutMs) < 0 {
            let code = zmq_errno()
            guard code == EINTR else { throw ZMQError(code: code, operation: "zmq_poll") }
            for i in items.indices { items[i].revents = 0 }
        }
    }

    func readable(_ item: Int) -> Bool { items[item].revents & Int16(ZMQ_POLLIN) != 0 }
}
