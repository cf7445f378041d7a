import CZeroMQ
import Foundation
import PRMCore
import PRMScoring

/// A reply to `rank`.
public struct RankReply: Sendable, Equatable {
    public let scores: [Float]
    public let order: [Int]
    public let knownUser: Bool
    public let truncated: [Int]
    /// The server's `timing`: milliseconds queued, and of the batch computation.
    public let queueMs: Double
    public let computeMs: Double
}

/// A reply to `score`.
public struct ScoreReply: Sendable, Equatable {
    public let scores: [Float]
    public let knownUser: [Bool]
    public let truncated: [Int]
}

/// What a client call can fail with: an error reply (its stable code and message), no reply
/// after every retry, a reply that does not follow the protocol, or a request too large to send.
public enum ClientError: Error, CustomStringConvertible, Sendable {
    case server(code: String, message: String)
    case timeout(endpoint: String, attempts: Int, seconds: Double)
    /// The first request on a fresh socket (`info`) had no reply within `seconds`.
    case unreachable(endpoint: String, seconds: Double)
    case protocolViolation(String)
    /// The body exceeds the server's `max_message_bytes`; it was not sent.
    case tooLarge(bytes: Int, limit: Int)

    public var description: String {
        switch self {
        case .server(let code, let message): return "server error \(code): \(message)"
        case .timeout(let endpoint, let attempts, let seconds):
            return "no reply from \(endpoint) after \(attempts) attempt(s) of \(seconds) s each"
        case .unreachable(let endpoint, let seconds):
            return "no reply from \(endpoint) within \(seconds) s (the connect timeout): is a prm serve or prm proxy running there and reachable?"
        case .protocolViolation(let what): return "the server's reply breaks protocol v1: \(what)"
        case .tooLarge(let bytes, let limit):
            return "the request body has \(bytes) bytes, over the server's max_message_bytes of \(limit); it was not sent"
        }
    }
}

/// The Swift client of protocol v1 (protocols/PROTOCOL.md) over a DEALER socket, with the
/// zguide's Lazy Pirate retries: wait `timeout` seconds for the reply; on silence close the
/// socket, open a fresh one and resend, at most `retries` more times; stale replies (another id)
/// are ignored. The first request on a socket, `info`, waits `contactTimeout` once, without
/// retries: a live server's I/O thread answers it at once whatever its queue, so silence there
/// means no server, reported in seconds rather than after every retry. A `rank` or `score` body over the server's `max_message_bytes` (read with `info`
/// once per socket) is refused before sending: ZeroMQ disconnects a peer whose message exceeds four
/// times the limit, so the server could not even answer it. One client per thread.
public final class ScoringClient {
    public let endpoint: String
    public let timeout: Double
    public let retries: Int
    public let contactTimeout: Double
    private let context: ZMQContext
    private var socket: ZMQSocket?
    /// The server's `max_message_bytes`, read once per socket (a restarted server may differ).
    private var maxMessageBytes: Int?
    private var nextID = 0

    private let keys: Curve.ClientKeys?

    /// Seconds to wait for a reply by default (`prm score --server --timeout`).
    public static let defaultTimeout = 30.0
    public static let defaultRetries = 3
    /// Seconds the first contact with a server (`--connect-timeout`) may take: a dead server is
    /// reported within it.
    public static let defaultContactTimeout = 10.0

    /// - Parameter keys: CURVE keys when the server requires them (its public key and ours).
    public init(endpoint: String, timeout: Double = defaultTimeout, retries: Int = defaultRetries,
                contactTimeout: Double = defaultContactTimeout, keys: Curve.ClientKeys? = nil) throws {
        self.endpoint = endpoint
        self.timeout = timeout
        self.retries = retries
        self.contactTimeout = contactTimeout
        self.keys = keys
        context = try ZMQContext()
    }

    deinit { socket?.close() }

    public func rank(prompt: String, candidates: [String], userID: String? = nil, userInfo: String? = nil,
                     topK: Int? = nil) throws -> RankReply {
        try rank(RankRequest(user: userID, userInfo: userInfo, prompt: .text(prompt), candidates: candidates.map { .text($0) }), topK: topK)
    }

    /// A rank request whose prompt and candidates may be chat messages (the server writes them out).
    public func rank(_ request: RankRequest, topK: Int? = nil) throws -> RankReply {
        let reply = try call("rank", members: V1Body.rankMembers(request, topK: topK))
        let timing = try field(reply, "timing", \.object)
        return RankReply(scores: try floats(reply, "scores"), order: try ints(reply, "order"),
                         knownUser: try field(reply, "known_user", \.bool), truncated: try ints(reply, "truncated"),
                         queueMs: try field(timing, "queue_ms", \.number).value, computeMs: try field(timing, "compute_ms", \.number).value)
    }

    public func score(_ items: [ScoringItem]) throws -> ScoreReply {
        let reply = try call("score", members: V1Body.scoreMembers(items))
        let known = try field(reply, "known_user", \.array).map { value in
            guard let flag = value.bool else { throw ClientError.protocolViolation("known_user holds \(value.kind.withArticle)") }
            return flag
        }
        return ScoreReply(scores: try floats(reply, "scores"), knownUser: known, truncated: try ints(reply, "truncated"))
    }

    public func info() throws -> JSONObject { try call("info") { _ in } }
    public func health() throws -> JSONObject { try call("health") { _ in } }
    public func metrics() throws -> JSONObject { try call("metrics") { _ in } }

    /// Sends one request and returns its reply object (`ok` true), retrying as Lazy Pirate does.
    public func call(_ op: String, members: (inout JSONWriter) -> Void) throws -> JSONObject {
        try call(op, timeout: timeout, attempts: retries + 1, members: members)
    }

    private func call(_ op: String, timeout: Double, attempts: Int, members: (inout JSONWriter) -> Void) throws -> JSONObject {
        nextID += 1
        let id = nextID
        let body = V1Body.request(op: op, id: id, members: members)
        if op == "rank" || op == "score" {
            let limit = try serverMaxMessageBytes()
            guard body.count <= limit else { throw ClientError.tooLarge(bytes: body.count, limit: limit) }
        }
        for _ in 0..<attempts {
            let socket = try openSocket()
            try socket.send([body])
            if let reply = try awaitReply(id: id, on: socket, timeout: timeout) { return reply }
            // Silence: the reply may still come on this socket later; a fresh one never sees it.
            socket.close()
            self.socket = nil
            maxMessageBytes = nil
        }
        throw ClientError.timeout(endpoint: endpoint, attempts: attempts, seconds: timeout)
    }

    /// Makes first contact (`info`, within `contactTimeout`, once per socket): throws
    /// `unreachable` when no server answers.
    public func contact() throws { _ = try serverMaxMessageBytes() }

    /// `info`'s `limits.max_message_bytes`, or the protocol's default when `info` is answered with
    /// an error or without it. A server silent for `contactTimeout` is reported unreachable: the
    /// request would only time out too, after every retry.
    private func serverMaxMessageBytes() throws -> Int {
        if let maxMessageBytes { return maxMessageBytes }
        let fallback = ServerLimits().maxMessageBytes
        do {
            let info = try call("info", timeout: contactTimeout, attempts: 1) { _ in }
            let limit = info["limits"]?.object?["max_message_bytes"]?.number?.integer ?? fallback
            maxMessageBytes = limit
            return limit
        } catch let error as ClientError {
            if case .timeout = error { throw ClientError.unreachable(endpoint: endpoint, seconds: contactTimeout) }
            Log.warning("no limits from \(endpoint)'s info (\(error)); assuming max_message_bytes \(fallback)")
            return fallback
        }
    }

    private func openSocket() throws -> ZMQSocket {
        if let socket { return socket }
        let fresh = try ZMQSocket(context, kind: ZMQ_DEALER)
        if let keys { try Curve.makeClient(fresh, keys: keys) }
        try fresh.set(ZMQ_LINGER, Int32(0))
        try fresh.connect(endpoint)
        socket = fresh
        return fresh
    }

    /// The reply carrying `id`, or nil when `timeout` passes first.
    private func awaitReply(id: Int, on socket: ZMQSocket, timeout: Double) throws -> JSONObject? {
        let deadline = MonotonicClock.now + timeout
        while MonotonicClock.now < deadline {
            var poll = PollSet()
            let item = poll.add(socket)
            try poll.wait(timeoutMs: max(Int(((deadline - MonotonicClock.now) * 1000).rounded(.up)), 1))
            guard poll.readable(item) else { continue }
            guard let frames = try socket.receive(dontWait: true), let body = frames.last else { continue }
            let value: JSONValue
            do { value = try JSONReader.parse(body) } catch { throw ClientError.protocolViolation("reply is not JSON: \(error)") }
            guard let object = value.object else { throw ClientError.protocolViolation("reply is not an object") }
            guard object["id"]?.number?.integer == id else { continue }  // a stale reply to an earlier attempt
            if object["ok"]?.bool == true { return object }
            let error = object["error"]?.object
            throw ClientError.server(code: error?["code"]?.string ?? "unknown", message: error?["message"]?.string ?? "")
        }
        return nil
    }

    private func field<T>(_ object: JSONObject, _ key: String, _ get: KeyPath<JSONValue, T?>) throws -> T {
        guard let value = object[key]?[keyPath: get] else { throw ClientError.protocolViolation("missing or mistyped '\(key)'") }
        return value
    }

    /// Scores as the server wrote them: shortest round-trip text, so Float(text) is exact.
    private func floats(_ object: JSONObject, _ key: String) throws -> [Float] {
        try field(object, key, \.array).map { value in
            guard let number = value.number, let x = Float(number.text) else { throw ClientError.protocolViolation("\(key) holds a non-number") }
            return x
        }
    }

    private func ints(_ object: JSONObject, _ key: String) throws -> [Int] {
        try field(object, key, \.array).map { value in
            guard let n = value.number?.integer else { throw ClientError.protocolViolation("\(key) holds a non-integer") }
            return n
        }
    }
}
