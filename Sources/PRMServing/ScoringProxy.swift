import CZeroMQ
import Foundation
import PRMCore

/// How `prm proxy` runs.
public struct ProxySettings: Sendable {
    /// Where clients connect (protocol v1, exactly as to one server).
    public var front = "tcp://127.0.0.1:5555"
    /// Where workers (`prm serve --connect`) connect.
    public var back = "tcp://127.0.0.1:5556"
    /// Request limits checked at the proxy; `maxQueuedRequests` bounds requests waiting for a worker.
    public var limits = ServerLimits()
    public var heartbeat = Heartbeat()
    /// Times a request is sent again when the worker holding it dies (rank and score are idempotent).
    public var resends = 1
    /// Seconds a drain (SIGTERM/SIGINT) may take: then every request not answered yet is answered
    /// `shutting_down` and the proxy exits.
    public var drainTimeout = ServerSettings.defaultDrainTimeout
    /// CURVE on both sides: clients and workers alike must hold an allowed key.
    public var curve = CurveSettings()
    /// host:port answering `GET /metrics` in Prometheus's text format (nil: no endpoint).
    public var metricsHTTP: String?

    public init() {}
}

/// `prm proxy`: one v1 endpoint in front of many scoring workers, in the zguide's Paranoid Pirate
/// style (WorkerProtocol). Workers announce their slots and heartbeat; each request goes to the
/// live worker with the fewest requests in flight; a worker silent for `heartbeat.expiry` is
/// dropped and the requests it held go to another worker (at most `resends` times), so even a
/// REQ client without retries loses nothing. `info`, `health` and `metrics` describe the pool.
/// Single-threaded: routing is cheap next to scoring. The bookkeeping (who holds what, how often
/// it was sent) is `ProxyRouter`; this class owns the sockets, the clock and the replies.
public final class ScoringProxy: @unchecked Sendable {
    public let settings: ProxySettings
    private let context: ZMQContext
    public private(set) var frontEndpoint = "", backEndpoint = ""

    private var router: ProxyRouter
    /// Requests whose every allowed worker died holding them, to be answered `internal`.
    private var lostRequests: [ProxyRouter.Request] = []
    private var draining = false
    /// When a drain stops waiting for workers (set by the signal, cleared once acted on).
    private var drainDeadline: Double?
    private let startedAt = MonotonicClock.now
    private var lastProgress = MonotonicClock.now
    private var lastModel: JSONValue?
    // Counters and latencies for info/health/metrics.
    private var outcomes = Outcomes()
    private var drops = DropLog()
    /// queue: waiting for a worker; compute: at the worker (its queue, computation and the hop); total.
    private var latency = ComputeStats()

    public init(settings: ProxySettings) throws {
        self.settings = settings
        router = ProxyRouter(resends: settings.resends, expiry: settings.heartbeat.expiry)
        context = try ZMQContext()
    }

    public func requestShutdown() { SignalPipe.raise() }

    /// Routes until a drain completes: after SIGTERM/SIGINT new work is refused and every
    /// request accepted is answered, or after `drainTimeout` answered `shutting_down`.
    public func run(ready: (_ front: String, _ back: String) -> Void = { _, _ in }) throws {
        let gate = try CurveGate.make(context, settings.curve)
        defer { gate?.close() }
        let front = try ProtocolV1.frontDoor(context, maxMessageBytes: settings.limits.maxMessageBytes, gate: gate)
        try front.bind(settings.front)
        let back = try ProtocolV1.router(context, sendQueue: 10_000, gate: gate)
        try back.bind(settings.back)
        frontEndpoint = try front.string(ZMQ_LAST_ENDPOINT)
        backEndpoint = try back.string(ZMQ_LAST_ENDPOINT)
        let http = try settings.metricsHTTP.map { try MetricsHTTP(context, address: $0) }
        defer { http?.close() }
        let signals = try SignalPipe.install()
        defer { SignalPipe.uninstall() }
        ready(frontEndpoint, backEndpoint)

        let tick = Int(settings.heartbeat.intervalMs / 2)
        while !(draining && router.pending.isEmpty) {
            var poll = PollSet()
            let (frontItem, backItem, signalItem) = (poll.add(front), poll.add(back), poll.add(fd: signals))
            let zapItem = gate.map { poll.add($0.zap) }
            let httpItem = http.map { poll.add($0.socket) }
            try poll.wait(timeoutMs: drainDeadline.map { min(tick, ScoringServer.milliseconds(until: $0)) } ?? tick)
            let now = MonotonicClock.now
            if let httpItem, poll.readable(httpItem) { try http?.answer { snapshot().prometheus() } }
            if poll.readable(signalItem) {
                let arrived = SignalPipe.drain(signals)
                if arrived.reload { try gate?.reload() }
                if arrived.stop && !draining {
                    draining = true
                    drainDeadline = now + settings.drainTimeout
                    Log.info("proxy shutting down: refusing new work, answering the \(router.pending.count) accepted request(s) within \(settings.drainTimeout) s")
                }
            }
            if let zapItem, poll.readable(zapItem) { try gate?.answer() }
            while poll.readable(backItem), let message = try back.receive(dontWait: true) {
                fromWorker(message, now: now, front: front, back: back)
            }
            while poll.readable(frontItem), let message = try front.receive(dontWait: true) {
                fromClient(message, now: now, front: front, back: back)
            }
            maintain(now: MonotonicClock.now, front: front, back: back)
            if let deadline = drainDeadline, MonotonicClock.now >= deadline { abandonPending(front: front) }
        }
        back.close()
        front.close()
        Log.info("proxy drained: every accepted request was answered; exiting")
    }

    // MARK: - Clients

    private func fromClient(_ frames: [[UInt8]], now: Double, front: ZMQSocket, back: ZMQSocket) {
        let (envelope, body, problem) = Envelope.split(frames)
        guard let body else {
            fail(WireError(.badRequest, problem ?? "malformed message"), op: nil, route: envelope.route, front: front)
            return
        }
        let request: WireRequest
        do { request = try WireRequest.parse(body, limits: settings.limits) } catch {
            fail(error, op: nil, route: envelope.route, front: front)
            return
        }
        let op = request.operation
        switch request.body {
        case .info, .health, .metrics:
            outcomes.add(op: op, code: nil)
            let reply: [UInt8]
            switch request.body {
            case .info: reply = info(request.id)
            case .health: reply = health(request.id, now: now)
            default: reply = metrics(request.id)
            }
            self.reply(envelope.route + [reply], front: front)
        case .rank, .score:
            if draining {
                fail(WireError(.shuttingDown, "the proxy is shutting down and takes no new work", id: request.id), op: op,
                     route: envelope.route, front: front)
            } else if router.waiting.count >= settings.limits.maxQueuedRequests {
                fail(WireError(.overloaded, "\(router.waiting.count) requests are already waiting for a worker; try again later", id: request.id),
                     op: op, route: envelope.route, front: front)
            } else {
                _ = router.accept(ProxyRouter.Request(route: envelope.route, body: body, id: request.id, op: op, receivedAt: now,
                                                      deadline: request.deadlineMs.map { now + $0 / 1000 }))
                dispatch(now: now, back: back)
            }
        }
    }

    /// The drain timeout expired: every request not answered yet (waiting, or at a worker that
    /// is still computing it) is answered `shutting_down`, so the proxy can exit.
    private func abandonPending(front: ZMQSocket) {
        drainDeadline = nil
        let abandoned = router.abandonAll()
        Log.warning("proxy: drain timeout of \(settings.drainTimeout) s expired: answering the \(abandoned.count) request(s) not yet answered shutting_down")
        for request in abandoned {
            fail(WireError(.shuttingDown, "the proxy's drain timeout expired before a worker answered this request", id: request.id),
                 op: request.op, route: request.route, front: front)
        }
    }

    private func fail(_ error: WireError, op: Operation?, route: [[UInt8]], front: ZMQSocket) {
        outcomes.add(op: op, code: error.code)
        reply(route + [WireReply.error(error)], front: front)
    }

    private func reply(_ message: [[UInt8]], front: ZMQSocket) {
        if (try? front.send(message, dontWait: true)) != true { drops.record("client gone or not reading") }
    }

    // MARK: - Workers

    private func fromWorker(_ frames: [[UInt8]], now: Double, front: ZMQSocket, back: ZMQSocket) {
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
            dispatch(now: now, back: back)
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
                lastProgress = now
                latency.compute.record((now - request.dispatchedAt) * 1000)
                latency.total.record((now - request.receivedAt) * 1000)
                outcomes.add(op: request.op, code: Self.replyCode(payload[payload.startIndex + 1]))
                reply(request.route + [payload[payload.startIndex + 1]], front: front)
            }
            if !known { send(WorkerProtocol.message(.reconnect), to: identity, back: back) }
            dispatch(now: now, back: back)
        case .disconnect:
            guard known else { return }
            Log.info("proxy: worker \(Self.name(identity)) is draining")
            router.startDraining(identity)
        case .heartbeat:
            if !known { send(WorkerProtocol.message(.reconnect), to: identity, back: back) }
        case .ready, .request, .reconnect:
            break
        }
    }

    /// Hands waiting requests to workers with free slots, least loaded first (ProxyRouter).
    private func dispatch(now: Double, back: ZMQSocket) {
        while let next = router.nextAssignment(now: now) {
            // A worker whose connection ZeroMQ has already dropped cannot take the request: drop
            // it now rather than at its heartbeat expiry, and try the next.
            guard send(WorkerProtocol.message(.request, [WorkerProtocol.token(next.token), next.request.body]), to: next.worker, back: back) else {
                drop(next.worker, why: "unreachable")
                continue
            }
            router.dispatched(next.token, to: next.worker, now: now)
            latency.queue.record((now - next.request.receivedAt) * 1000)
        }
    }

    /// Sends to a worker; false when ZeroMQ cannot route to it (its connection is gone).
    @discardableResult
    private func send(_ message: [[UInt8]], to identity: [UInt8], back: ZMQSocket) -> Bool {
        router.sent(to: identity, now: MonotonicClock.now)
        return (try? back.send([identity] + message, dontWait: true)) == true
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
    private func maintain(now: Double, front: ZMQSocket, back: ZMQSocket) {
        for identity in router.silent(now: now) {
            let silence = now - (router.workers[identity]?.lastHeard ?? now)
            drop(identity, why: String(format: "silent for %.1f s", silence))
        }
        for identity in router.due(now: now, interval: settings.heartbeat.interval) {
            if !send(WorkerProtocol.message(.heartbeat), to: identity, back: back) { drop(identity, why: "unreachable") }
        }
        for request in lostRequests {
            fail(WireError(.internal, "the request was lost with \(request.attempts) workers that died holding it", id: request.id),
                 op: request.op, route: request.route, front: front)
        }
        lostRequests = []
        for request in router.expireWaiting(now: now) {
            let waited = (now - request.receivedAt) * 1000
            fail(WireError(.deadlineExceeded, String(format: "waited %.1f ms for a worker, past the deadline; not computed", waited), id: request.id),
                 op: request.op, route: request.route, front: front)
        }
        // Draining with no worker left to take them, waiting requests would keep the proxy from
        // ever exiting: they are refused as new work is (shutting_down, a transient code).
        if draining, router.alive.isEmpty {
            for request in router.abandonWaiting() {
                fail(WireError(.shuttingDown, "the proxy is shutting down and no worker is left to take this request; not computed", id: request.id),
                     op: request.op, route: request.route, front: front)
            }
        }
        dispatch(now: now, back: back)
    }

    private static func name(_ identity: [UInt8]) -> String { identity.map { String(format: "%02x", $0) }.joined() }

    // MARK: - info, health, metrics of the pool

    /// The code of a worker's reply ("ok" → nil), for the outcome counters; the body is not parsed.
    static func replyCode(_ body: [UInt8]) -> ErrorCode? {
        guard let error = (try? JSONReader.parse(body))?.object?["error"]?.object?["code"]?.string else { return nil }
        return ErrorCode(rawValue: error) ?? .internal
    }

    private var pool: PoolSnapshot {
        let (workers, alive) = (router.workers.values, router.alive)
        return PoolSnapshot(workers: alive.count, busy: alive.filter { !$0.inFlight.isEmpty }.count, draining: workers.filter(\.draining).count,
                            inFlight: workers.reduce(0) { $0 + $1.inFlight.count }, slots: alive.reduce(0) { $0 + $1.slots },
                            waiting: router.waiting.count, seen: router.workersSeen, lost: router.workersLost, resent: router.resent,
                            lateReplies: router.lateReplies)
    }

    /// Counters and latencies at this moment, for `metrics` and /metrics.
    func snapshot() -> MetricsSnapshot {
        var snapshot = MetricsSnapshot()
        snapshot.outcomes = outcomes
        snapshot.stats = latency
        (snapshot.queueDepth, snapshot.maxQueueDepth, snapshot.queueCapacity) = (router.waiting.count, router.maxWaiting, settings.limits.maxQueuedRequests)
        snapshot.repliesDropped = drops.count
        snapshot.pool = pool
        snapshot.uptime = MonotonicClock.now - startedAt
        return snapshot
    }

    private func info(_ id: JSONValue) -> [UInt8] {
        WireReply.object(id: id) { w in
            w.key("protocol"); w.number(ProtocolV1.version)
            w.key("prm_version"); w.string(PRMVersion.current)
            w.key("model"); w.value(lastModel ?? .null)
            w.key("limits"); settings.limits.write(&w)
            w.key("server"); w.null()
            w.key("proxy")
            w.beginObject()
            w.key("front"); w.string(frontEndpoint)
            w.key("back"); w.string(backEndpoint)
            w.key("heartbeat_ms"); w.number(settings.heartbeat.intervalMs)
            w.key("liveness"); w.number(settings.heartbeat.liveness)
            w.endObject()
            pool.write(&w)
        }
    }

    private func health(_ id: JSONValue, now: Double) -> [UInt8] {
        let inFlight = router.workers.values.reduce(0) { $0 + $1.inFlight.count }
        let alive = router.alive
        let stalled = alive.isEmpty && !router.waiting.isEmpty
        return WireReply.object(id: id) { w in
            w.key("status"); w.string(draining ? "draining" : "serving")
            w.key("healthy"); w.bool(!alive.isEmpty)
            w.key("compute")
            w.beginObject()
            w.key("state"); w.string(stalled ? "stalled" : inFlight > 0 ? "busy" : "idle")
            w.key("last_progress_ms"); w.number(WireReply.rounded((now - lastProgress) * 1000))
            w.key("queued"); w.number(router.waiting.count)
            w.endObject()
            w.key("uptime_s"); w.number(WireReply.rounded(now - startedAt))
            pool.write(&w)
        }
    }

    private func metrics(_ id: JSONValue) -> [UInt8] {
        let snapshot = snapshot()
        return WireReply.object(id: id) { snapshot.writeJSON(&$0) }
    }
}
