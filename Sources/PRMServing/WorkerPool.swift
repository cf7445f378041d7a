import CZeroMQ
import Foundation
import PRMCore

/// The proxy's backend: the workers' ROUTER and the pool behind it, in the zguide's Paranoid
/// Pirate style (WorkerProtocol). Workers announce their slots and heartbeat; each request goes
/// to the live worker with the fewest requests in flight; a worker silent for `heartbeat.expiry`
/// is dropped and the requests it held go to another worker (at most `resends` times), so even a
/// REQ client without retries loses nothing. The bookkeeping (who holds what, how often it was
/// sent) is `ProxyRouter`; this class moves the bytes and keeps the clock. Two requests are the
/// pool's own rather than one worker's: a `reload` (or SIGHUP) rolls through the workers one at a
/// time (`RollingReload`), and a `users` is asked of every worker and answered merged (`UsersGather`).
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
    /// Why the roll must stop, found while dropping its worker; acted on in `maintain`.
    private var pendingRollFailure: String?
    /// queue: waiting for a worker; compute: at the worker (its queue, computation and the hop); total.
    private var latency = ComputeStats()
    /// The rolling reload in progress, and how many were started.
    private var roll: RollingReload?
    private var rolls = 0
    /// `users` requests waiting for their workers' replies.
    private var gathers: [UsersGather] = []

    init(_ context: ZMQContext, settings: ProxySettings, frontEndpoint: String, gate: CurveGate?) throws {
        self.settings = settings
        self.frontEndpoint = frontEndpoint
        router = ProxyRouter(resends: settings.resends, expiry: settings.heartbeat.expiry)
        socket = try ProtocolV1.router(context, sendQueue: 10_000, gate: gate)
        try socket.bind(settings.back)
        endpoint = try socket.string(ZMQ_LAST_ENDPOINT)
    }

    var outstanding: Int { router.pending.count + (roll.map { $0.route.isEmpty ? 0 : 1 } ?? 0) + gathers.count }

    func close() { socket.close() }

    // MARK: - Clients' requests

    func submit(_ request: WireRequest, body: [UInt8], route: [[UInt8]], received: Double) throws(WireError) {
        switch request.body {
        case .reload(let path): return try startRoll(id: request.id, route: route, path: path, now: received)
        case .users(let user): return try gather(request.id, user: user, body: body, route: route, now: received)
        default: break
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
        if let current = roll?.current { router.resume(current.worker) }
        finishRoll(door, error: roll?.failure("the proxy's drain timeout expired during the rolling reload"))
        for gather in gathers {
            door.answer(WireError(.shuttingDown, "the proxy's drain timeout expired before every worker answered users", id: gather.id),
                        op: .users, route: gather.route)
        }
        gathers = []
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
            if ownReply(token, body: payload[payload.startIndex + 1], from: identity, now: now, door: door) { return }
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
        if roll?.current?.worker == identity { pendingRollFailure = "worker \(Self.name(identity)) was lost during its reload (\(why))" }
        for k in gathers.indices { gathers[k].giveUp(on: identity) }
        Log.warning("proxy: worker \(Self.name(identity)) \(why): dropped; resending \(resent) request(s)"
                    + (spent.isEmpty ? "" : ", failing \(spent.count) sent \(settings.resends + 1) time(s) already"))
        lostRequests += spent
    }

    /// SIGHUP: a rolling reload of every worker's own folder, answering no one.
    func hangup() {
        do throws(WireError) { try startRoll(id: .string("SIGHUP"), route: [], path: nil, now: MonotonicClock.now) } catch {
            Log.warning("proxy: SIGHUP: \(error.message)")
        }
    }

    /// Heartbeats out, dead workers out (their requests resent), expired waiting requests answered.
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
        // A worker that drained and left the pool during its turn was never dropped.
        if let current = roll?.current, router.workers[current.worker] == nil, pendingRollFailure == nil {
            pendingRollFailure = "worker \(Self.name(current.worker)) left the pool during its reload"
        }
        if let problem = pendingRollFailure {
            pendingRollFailure = nil
            roll?.lost(now: now)
            finishRoll(door, error: roll?.failure(problem))
        }
        advanceRoll(door, now: now)
        finishGathers(door, now: now)
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

    private static func name(_ identity: [UInt8]) -> String { RollingReload.name(identity) }

    /// A reply to a message of the pool's own (a roll's reload, a gathered `users`): handled
    /// here, true; false for a client's request.
    private func ownReply(_ token: UInt64, body: [UInt8], from identity: [UInt8], now: Double, door: FrontDoor) -> Bool {
        let reply = (try? JSONReader.parse(body))?.object
        if let current = roll?.current, current.token == token {
            let switched = roll?.answered(reply ?? JSONObject(), now: now) == true
            router.resume(identity)
            if switched {
                Log.info("proxy: worker \(Self.name(identity)) reloaded: model \(reply?["model_fingerprint"]?.string ?? "?")")
                advanceRoll(door, now: now)
            } else {
                let message = reply?["error"]?.object?["message"]?.string ?? "a reply that is not JSON"
                finishRoll(door, error: roll?.failure("worker \(Self.name(identity)) refused the reload: \(message)"))
            }
            dispatch(now: now)
            return true
        }
        for k in gathers.indices where gathers[k].answered(token, reply: reply) {
            finishGathers(door, now: now)
            return true
        }
        return false
    }

    // MARK: - Rolling reload

    /// Starts a rolling reload of every worker in the pool, in the order they joined.
    private func startRoll(id: JSONValue, route: [[UInt8]], path: String?, now: Double) throws(WireError) {
        guard roll == nil else { throw WireError(.overloaded, "a rolling reload is already in progress; try again when it is answered", id: id) }
        let workers = router.alive.sorted { $0.joined < $1.joined }.map(\.identity)
        guard !workers.isEmpty else { throw WireError(.overloaded, "no worker is in the pool to reload", id: id) }
        rolls += 1
        Log.info("proxy: rolling reload of \(workers.count) worker(s)" + (path.map { " to \($0)" } ?? " (each its own folder)"))
        roll = RollingReload(id: id, route: route, path: path, workers: workers, now: now)
    }

    /// The roll's next worker, once none is reloading: taken out of routing and sent the reload;
    /// the roll is answered when every worker had its turn.
    private func advanceRoll(_ door: FrontDoor, now: Double) {
        guard var current = roll, current.current == nil else { return }
        let token = router.reserveToken()
        guard let worker = current.next(token: token, now: now, inPool: { router.alive.map(\.identity).contains($0) }) else {
            roll = current
            return finishRoll(door, error: nil)
        }
        roll = current
        router.pause(worker)
        if !send(WorkerProtocol.message(.request, [WorkerProtocol.token(token), current.body]), to: worker) {
            drop(worker, why: "unreachable")
        }
    }

    /// Answers the roll (its success, or `error`) and ends it.
    private func finishRoll(_ door: FrontDoor, error: WireError?) {
        guard let finished = roll else { return }
        roll = nil
        if let error { Log.warning("proxy: rolling reload: \(error.message)") } else {
            Log.info("proxy: rolling reload done: \(finished.reloaded.count) worker(s) reloaded")
        }
        guard !finished.route.isEmpty else { return }
        if let error { door.answer(error, op: .reload, route: finished.route) } else {
            door.answer(finished.success(), op: .reload, code: nil, route: finished.route)
        }
    }

    // MARK: - users, gathered

    /// Asks every worker in the pool for its `users` (the client's body as it came).
    private func gather(_ id: JSONValue, user: String?, body: [UInt8], route: [[UInt8]], now: Double) throws(WireError) {
        var waiting: [UInt64: [UInt8]] = [:]
        for worker in router.alive.map(\.identity) {
            let token = router.reserveToken()
            if send(WorkerProtocol.message(.request, [WorkerProtocol.token(token), body]), to: worker) { waiting[token] = worker }
        }
        guard !waiting.isEmpty else { throw WireError(.overloaded, "no worker is in the pool to ask", id: id) }
        gathers.append(UsersGather(id: id, route: route, user: user, waiting: waiting, deadline: now + settings.heartbeat.expiry))
    }

    /// Answers the gathers every worker answered, or whose time ran out (with what came).
    private func finishGathers(_ door: FrontDoor, now: Double) {
        for k in gathers.indices where now > gathers[k].deadline { gathers[k].giveUp() }
        for done in gathers.filter(\.complete) {
            if !done.missing.isEmpty { Log.warning("proxy: users: \(done.missing.count) of \(done.asked) worker(s) did not answer") }
            door.answer(done.reply(), op: .users, code: nil, route: done.route)
        }
        gathers.removeAll(where: \.complete)
    }

    // MARK: - info, health, metrics of the pool

    private var pool: PoolSnapshot {
        let (workers, alive) = (router.workers.values, router.alive)
        return PoolSnapshot(workers: alive.count, busy: alive.filter { !$0.inFlight.isEmpty }.count, draining: workers.filter(\.draining).count,
                            inFlight: workers.reduce(0) { $0 + $1.inFlight.count }, slots: alive.reduce(0) { $0 + $1.slots },
                            waiting: router.waiting.count, seen: router.workersSeen, lost: router.workersLost, resent: router.resent,
                            lateReplies: router.lateReplies, ready: router.routable.count, reloading: workers.filter(\.paused).count,
                            rolls: rolls, maxOut: router.maxPaused, minReady: router.minRoutableWhilePaused)
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
        w.key("workers")
        w.beginArray()
        for worker in router.workers.values.sorted(by: { $0.joined < $1.joined }) {
            w.beginObject()
            w.key("worker"); w.string(Self.name(worker.identity))
            w.key("slots"); w.number(worker.slots)
            w.key("in_flight"); w.number(worker.inFlight.count)
            w.key("state"); w.string(worker.draining ? "draining" : worker.paused ? "reloading" : "ready")
            w.key("model_fingerprint"); w.value(worker.model?.object?["fingerprint"] ?? .null)
            w.endObject()
        }
        w.endArray()
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
