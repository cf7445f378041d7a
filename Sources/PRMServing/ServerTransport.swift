import CZeroMQ
import Foundation
import PRMCore

/// What an incoming message is to the server.
enum TransportEvent {
    /// A client request: the body, and the frames its reply must be sent with.
    case request(route: [[UInt8]], body: [UInt8])
    /// A message whose layout is wrong; answered with an error on `route`.
    case malformed(route: [[UInt8]], problem: String)
    /// Control traffic the transport handled itself (heartbeats).
    case none
}

/// Where a server's requests come from and where its replies go: a bound ROUTER that clients
/// connect to, or a DEALER connected to a proxy (a worker). The I/O thread owns it.
protocol ServerTransport: AnyObject {
    /// The socket to poll; nil while a worker waits to reconnect.
    var socket: ZMQSocket? { get }
    /// The endpoint bound or connected to, for logs and `ready`.
    var endpoint: String { get }
    func receive(_ frames: [[UInt8]], now: Double) -> TransportEvent
    /// Sends a whole reply message (route + body) without blocking; false when it could not go.
    func deliver(_ message: [[UInt8]]) -> Bool
    /// Called on every loop turn: heartbeats and reconnection.
    func tick(now: Double) throws
    /// The server started draining.
    func drainStarted()
    /// Whether requests still arriving while draining are computed rather than refused.
    var admitsWhileDraining: Bool { get }
    /// The server's facts changed (a reload switched models): a worker tells its proxy.
    func announce(_ facts: [UInt8])
    func close()
}

extension ServerTransport {
    func announce(_ facts: [UInt8]) {}
    /// Clients connected to us directly are told `shutting_down` and may go elsewhere.
    var admitsWhileDraining: Bool { false }
}

/// Clients connect to us: ROUTER, envelopes as protocols/PROTOCOL.md describes.
final class RouterTransport: ServerTransport {
    private let router: ZMQSocket
    let endpoint: String

    init(_ context: ZMQContext, bind: String, limits: ServerLimits, gate: CurveGate?) throws {
        router = try ProtocolV1.frontDoor(context, maxMessageBytes: limits.maxMessageBytes, gate: gate)
        try router.bind(bind)
        endpoint = try router.string(ZMQ_LAST_ENDPOINT)
    }

    var socket: ZMQSocket? { router }

    func receive(_ frames: [[UInt8]], now: Double) -> TransportEvent {
        let (envelope, body, problem) = Envelope.split(frames)
        guard let body else { return .malformed(route: envelope.route, problem: problem ?? "malformed message") }
        return .request(route: envelope.route, body: body)
    }

    func deliver(_ message: [[UInt8]]) -> Bool { (try? router.send(message, dontWait: true)) ?? false }
    func tick(now: Double) throws {}
    func drainStarted() {}
    func close() { router.close() }
}

/// We connect to a proxy as one of its workers (WorkerProtocol): READY on connecting, heartbeats
/// both ways, and on the proxy's silence a fresh socket after an exponential back-off (1 s, 2 s,
/// … 32 s), so workers find a restarted proxy by themselves.
final class WorkerTransport: ServerTransport {
    /// The proxy stops sending once it reads our DISCONNECT; what arrives after the drain began was
    /// dispatched before that, and refusing it would fail a request another worker could have served.
    let admitsWhileDraining = true
    private let context: ZMQContext
    let endpoint: String
    private let heartbeat: Heartbeat
    /// READY's payload: this worker's slots and model.
    private var readyFacts: [UInt8]
    private let limits: ServerLimits
    private let keys: Curve.ClientKeys?
    private(set) var socket: ZMQSocket?
    private var lastHeard = 0.0, lastSent = 0.0
    private var reconnectAt: Double?
    private var backoff = 1.0
    private var draining = false

    init(_ context: ZMQContext, connect: String, heartbeat: Heartbeat, readyFacts: [UInt8], limits: ServerLimits,
         keys: Curve.ClientKeys?) throws {
        self.context = context
        self.keys = keys
        endpoint = connect
        self.heartbeat = heartbeat
        self.readyFacts = readyFacts
        self.limits = limits
        try open(now: MonotonicClock.now)
    }

    private func open(now: Double) throws {
        let dealer = try ZMQSocket(context, kind: ZMQ_DEALER)
        if let keys { try Curve.makeClient(dealer, keys: keys) }
        try dealer.set(ZMQ_LINGER, Int32(2_000))
        try dealer.set(ZMQ_SNDHWM, Int32(10_000))
        try dealer.set(ZMQ_RCVHWM, Int32(10_000))
        try dealer.set(ZMQ_MAXMSGSIZE, Int64(limits.maxMessageBytes) * 4)
        try dealer.connect(endpoint)
        socket = dealer
        lastHeard = now
        send(WorkerProtocol.message(.ready, [readyFacts]), now: now)
        if draining { send(WorkerProtocol.message(.disconnect), now: now) }
    }

    /// READY again with the new facts: the proxy keeps a worker's model from its READY.
    func announce(_ facts: [UInt8]) {
        readyFacts = facts
        send(WorkerProtocol.message(.ready, [readyFacts]), now: MonotonicClock.now)
    }

    func receive(_ frames: [[UInt8]], now: Double) -> TransportEvent {
        lastHeard = now
        backoff = 1
        guard let (command, payload) = WorkerProtocol.parse(frames[...]) else {
            Log.warning("worker: ignoring a message that is not PRMW1 from \(endpoint)")
            return .none
        }
        switch command {
        case .request:
            guard payload.count == 2, WorkerProtocol.token(payload[payload.startIndex]) != nil else {
                Log.warning("worker: ignoring a malformed REQUEST from \(endpoint)")
                return .none
            }
            let token = payload[payload.startIndex], body = payload[payload.startIndex + 1]
            return .request(route: WorkerProtocol.message(.reply, [token]), body: body)
        case .reconnect:
            send(WorkerProtocol.message(.ready, [readyFacts]), now: now)
            if draining { send(WorkerProtocol.message(.disconnect), now: now) }
        case .heartbeat, .ready, .reply, .disconnect:
            break
        }
        return .none
    }

    func deliver(_ message: [[UInt8]]) -> Bool {
        guard let socket else { return false }
        lastSent = MonotonicClock.now
        return (try? socket.send(message, dontWait: true)) ?? false
    }

    private func send(_ message: [[UInt8]], now: Double) {
        lastSent = now
        _ = try? socket?.send(message, dontWait: true)
    }

    func tick(now: Double) throws {
        if let at = reconnectAt {
            guard now >= at else { return }
            reconnectAt = nil
            Log.info("worker: reconnecting to \(endpoint)")
            try open(now: now)
            return
        }
        if now - lastHeard > heartbeat.expiry {
            Log.warning(String(format: "worker: no word from the proxy at %@ for %.1f s; reconnecting in %.0f s", endpoint, now - lastHeard, backoff))
            socket?.close()
            socket = nil
            reconnectAt = now + backoff
            backoff = min(backoff * 2, 32)
        } else if now - lastSent >= heartbeat.interval {
            send(WorkerProtocol.message(.heartbeat), now: now)
        }
    }

    func drainStarted() {
        draining = true
        send(WorkerProtocol.message(.disconnect), now: MonotonicClock.now)
    }

    func close() { socket?.close() }
}
