import CZeroMQ
import Foundation
import PRMCore

/// The proxy's backend: the workers' ROUTER and the pool behind it, in the zguide's Paranoid
/// Pirate style (WorkerProtocol). Workers announce their slots and heartbeat; each request goes
/// to the live worker with the fewest requests in flight; a worker silent for `heartbeat.expiry`
/// is dropped and the requests it held go to another worker (at most `resends` times), so even a
/// REQ client without retries loses nothing. The bookkeeping (who holds what, how often it was
/// sent) is `ProxyRouter`; this class moves the bytes and keeps the clock.
final class WorkerPool: FrontDoorBackend {
    private let settings: ProxySettings
    /// Where clients connect, for `info`.
    private let frontEndpoint: String
    let socket: ZMQSocket
    let endpoint: String
    private var router: ProxyRouter
    /// Requests whose every allowed worker died holding them, to be answered `internal`.
    private var lostRequests: [ProxyRouter.Request] = []
    private var lastProgress = MonotonicClock.now
    private var lastModel: JSONValue?
    /// queue: waiting for a worker; compute: at the worker (its queue, computation and the hop); total.
    private var latency = ComputeStats()

    init(_ context: ZMQContext, settings: ProxySettings, frontEndpoint: String, gate: CurveGate?) throws {
        self.settings = settings
        self.frontEndpoint = frontEndpoint
        router = ProxyRouter(resends: settings.resends, expiry: settings.heartbeat.expiry)
        socket = try ProtocolV1.router(context, sendQueue: 10_000, gate: gate)
        try socket.bind(settings.back)
        endpoint = try socket.string(ZMQ_LAST_ENDPOINT)
    }

    var outstanding: Int { router.pending.count }

    func close() { socket.close() }

    // MARK: - Clients' requests

    func submit(_ request: WireRequest, body: [UInt8], route: [[UInt8]], received: Double) throws(WireError) {
        if case .reload = request.body {
            throw WireError(.badRequest, "the proxy does not reload models: send reload (or SIGHUP) to each worker, one at a time", id: request.id)
        }
        guard router.waiting.count < settings.limits.maxQueuedRequests else {
            throw WireError(.overloaded, "\(router.waiting.count) requests are already waiting for a worker; try again later", id: request.id)
        }
        _ = router.accept(ProxyRouter.Request(route: route, body: body, id: request.id, op: request.operation, receivedAt: received,
                                              deadline: request.deadlineMs.map { received + $0 / 1000 }))
        dispatch(now: received)
    }

    /// Every request not answered yet (waiting, or at a worker that is still computing it) is
    /// answered `shutting_down`.
    func abandon(_ door: FrontDoor, drainTimeout: Double) {
        let abandoned = router.abandonAll()
        Log.warning("proxy: drain timeout of \(drainTimeout) s expired: answering the \(abandoned.count) request(s) not yet answered shutting_down")
        for request in abandoned {
            door.answer(WireError(.shuttingDown, "the proxy's drain timeout expired before a worker answered this request", id: request.id),
                        op: request.op, route: request.route)
        }
    }

    // MARK: - Workers

    func readable(_ door: FrontDoor) throws {
        let now = MonotonicClock.now
        while let message = try socket.receive(dontWait: true) { fromWorker(message, now: now, door: door) }
    }

    private func fromWorker(_ frames: [[UInt8]], now: Double, door: FrontDoor) {
        guard let identity = frames.first, let (command, payload) = WorkerProtocol.parse(frames.dropFirst()) else {
            Log.warning("proxy: ignoring a message that is not PRMW1 on the worker side")
            return
        }
        if command == .ready {
            let facts = payload.first.flatMap { try? JSONReader.parse($0) }?.object
            let slots = max(1, facts?["slots"]?.number?.integer ?? 1)
            if router.ready(identity, slots: slots, model: facts?["model"], now: now) {
                Log.info("proxy: worker \(Self.name(identity)) ready with \(slots) slots (\(router.workers.count) in the pool)")
            }
            if let model = facts?["model"] { lastModel = model }
            dispatch(now: now)
            return
        }
        let known = router.workers[identity] != nil
        router.heard(from: identity, now: now)
        switch command {
        case .reply:
            guard payload.count == 2, let token = WorkerProtocol.token(payload[payload.startIndex]) else {
                Log.warning("proxy: ignoring a malformed REPLY from worker \(Self.name(identity))")
                return
            }
            // nil: answered already by the worker it was resent to (counted as a late reply).
            if let request = router.answered(token, by: identity) {
                let body = payload[payload.startIndex + 1]
                lastProgress = now
                latency.compute.record((now - request.dispatchedAt) * 1000)
                latency.total.record((now - request.receivedAt) * 1000)
                door.answer(body, op: request.op, code: Self.replyCode(body), route: request.route)
            }
            if !known { send(WorkerProtocol.message(.reconnect), to: identity) }
            dispatch(now: now)
        case .disconnect:
            guard known else { return }
            Log.info("proxy: worker \(Self.name(identity)) is draining")
            router.startDraining(identity)
        case .heartbeat:
            if !known { send(WorkerProtocol.message(.reconnect), to: identity) }
        case .ready, .request, .reconnect:
            break
        }
    }

    /// The code of a worker's reply ("ok" → nil), for the outcome counters; the body is not parsed.
    private static func replyCode(_ body: [UInt8]) -> ErrorCode? {
        guard let error = (try? JSONReader.parse(body))?.object?["error"]?.object?["code"]?.string else { return nil }
        return ErrorCode(rawValue: error) ?? .internal
    }

    /// Hands waiting requests to workers with free slots, least loaded first (ProxyRouter).
    private func dispatch(now: Double) {
        while let next = router.nextAssignment(now: now) {
            // A worker whose connection ZeroMQ has already dropped cannot take the request: drop
            // it now rather than at its heartbeat expiry, and try the next.
            guard send(WorkerProtocol.message(.request, [WorkerProtocol.token(next.token), next.request.body]), to: next.worker) else {
                drop(next.worker, why: "unreachable")
                continue
            }
            router.dispatched(next.token, to: next.worker, now: now)
            latency.queue.record((now - next.request.receivedAt) * 1000)
        }
    }

    /// Sends to a worker; false when ZeroMQ cannot route to it (its connection is gone).
    @discardableResult
    private func send(_ message: [[UInt8]], to identity: [UInt8]) -> Bool {
        router.sent(to: identity, now: MonotonicClock.now)
        return (try? socket.send([identity] + message, dontWait: true)) == true
    }

    /// Takes a worker out of the pool; the requests it held are resent, or answered `internal`
    /// (on the next `maintain`) when they were resent `resends` times already.
    private func drop(_ identity: [UInt8], why: String) {
        guard let (resent, spent) = router.drop(identity) else { return }
        Log.warning("proxy: worker \(Self.name(identity)) \(why): dropped; resending \(resent) request(s)"
                    + (spent.isEmpty ? "" : ", failing \(spent.count) sent \(settings.resends + 1) time(s) already"))
        lostRequests += spent
    }

    /// Heartbeats out, dead workers out (their requests resent), expired waiting requests answered.
    /// The workers reload their own models (their own SIGHUP or reload op).
    func hangup() {}

    func maintain(_ door: FrontDoor, now: Double) {
        for identity in router.silent(now: now) {
            let silence = now - (router.workers[identity]?.lastHeard ?? now)
            drop(identity, why: String(format: "silent for %.1f s", silence))
        }
        for identity in router.due(now: now, interval: settings.heartbeat.interval) {
            if !send(WorkerProtocol.message(.heartbeat), to: identity) { drop(identity, why: "unreachable") }
        }
        for request in lostRequests {
            door.answer(WireError(.internal, "the request was lost with \(request.attempts) workers that died holding it", id: request.id),
                        op: request.op, route: request.route)
        }
        lostRequests = []
        for request in router.expireWaiting(now: now) {
            let waited = (now - request.receivedAt) * 1000
            door.answer(WireError(.deadlineExceeded, String(format: "waited %.1f ms for a worker, past the deadline; not computed", waited), id: request.id),
                        op: request.op, route: request.route)
        }
        // Draining with no worker left to take them, waiting requests would keep the proxy from
        // ever exiting: they are refused as new work is (shutting_down, a transient code).
        if door.draining, router.alive.isEmpty {
            for request in router.abandonWaiting() {
                door.answer(WireError(.shuttingDown, "the proxy is shutting down and no worker is left to take this request; not computed", id: request.id),
                            op: request.op, route: request.route)
            }
        }
        dispatch(now: now)
    }

    private static func name(_ identity: [UInt8]) -> String { identity.map { String(format: "%02x", $0) }.joined() }

    // MARK: - info, health, metrics of the pool

    private var pool: PoolSnapshot {
        let (workers, alive) = (router.workers.values, router.alive)
        return PoolSnapshot(workers: alive.count, busy: alive.filter { !$0.inFlight.isEmpty }.count, draining: workers.filter(\.draining).count,
                            inFlight: workers.reduce(0) { $0 + $1.inFlight.count }, slots: alive.reduce(0) { $0 + $1.slots },
                            waiting: router.waiting.count, seen: router.workersSeen, lost: router.workersLost, resent: router.resent,
                            lateReplies: router.lateReplies)
    }

    /// The model of the worker that announced itself last (null before any did).
    func writeModel(_ w: inout JSONWriter) { w.value(lastModel ?? .null) }

    func writeInfoDetails(_ w: inout JSONWriter) {
        w.key("server"); w.null()
        w.key("proxy")
        w.beginObject()
        w.key("front"); w.string(frontEndpoint)
        w.key("back"); w.string(endpoint)
        w.key("heartbeat_ms"); w.number(settings.heartbeat.intervalMs)
        w.key("liveness"); w.number(settings.heartbeat.liveness)
        w.endObject()
        pool.write(&w)
    }

    /// Healthy while a worker is alive; stalled when requests wait and none is.
    func health(now: Double) -> FrontDoor.Health {
        let inFlight = router.workers.values.reduce(0) { $0 + $1.inFlight.count }
        let alive = router.alive
        let stalled = alive.isEmpty && !router.waiting.isEmpty
        return FrontDoor.Health(healthy: !alive.isEmpty, state: stalled ? "stalled" : inFlight > 0 ? "busy" : "idle",
                                lastProgressMs: (now - lastProgress) * 1000, queued: router.waiting.count, pool: pool)
    }

    func snapshot() -> MetricsSnapshot {
        var snapshot = MetricsSnapshot()
        snapshot.stats = latency
        (snapshot.queueDepth, snapshot.maxQueueDepth, snapshot.queueCapacity) = (router.waiting.count, router.maxWaiting, settings.limits.maxQueuedRequests)
        snapshot.pool = pool
        return snapshot
    }
}
