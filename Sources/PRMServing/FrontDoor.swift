import PRMCore

/// The client-facing half of `prm serve` and `prm proxy`, written once: the socket clients reach
/// (a `ServerTransport`) and the HTTP front door (an `HTTPServer`, whose requests enter here as
/// ZeroMQ requests do, under a route of their own), parsing with `WireRequest.parse`, error
/// replies, `info`/`health`/`metrics`, admission while draining, the drain and its timeout, replies that could not be
/// delivered, and the count of every reply by operation and code. What stands behind it (the
/// server's compute thread, the proxy's workers) is a `FrontDoorBackend`.
///
/// One thread runs it, and the backend is called on that thread only: the loop polls the front
/// socket, the backend's socket, signals, CURVE's ZAP socket and the HTTP listeners' hand-overs.
final class FrontDoor {
    /// What `health` reports of the backend's progress.
    struct Health {
        var healthy: Bool
        /// "idle", "busy" or "stalled".
        var state: String
        var lastProgressMs: Double
        var queued: Int
        var pool: PoolSnapshot?
    }

    /// "server" or "proxy", for messages and logs.
    let name: String
    private let context: ZMQContext
    private let transport: any ServerTransport
    private let gate: CurveGate?
    private let httpSettings: HTTPSettings?
    private let metricsHTTP: String?
    /// `--http`'s listener and `--metrics-http`'s, while `run` runs.
    private var http: HTTPServer?
    private var metricsListener: HTTPServer?
    private let limits: ServerLimits
    private let drainTimeout: Double
    private let heartbeat: Heartbeat
    private let startedAt: Double
    private(set) var draining = false
    /// When a drain stops waiting for the backend (set by the signal, cleared once acted on).
    private var drainDeadline: Double?
    private var outcomes = Outcomes()
    private var drops = DropLog()

    init(name: String, _ context: ZMQContext, transport: any ServerTransport, gate: CurveGate?, http: HTTPSettings?, metricsHTTP: String?,
         limits: ServerLimits, drainTimeout: Double, heartbeat: Heartbeat, startedAt: Double) {
        self.name = name
        self.context = context
        self.transport = transport
        self.gate = gate
        self.httpSettings = http
        self.metricsHTTP = metricsHTTP
        self.limits = limits
        self.drainTimeout = drainTimeout
        self.heartbeat = heartbeat
        self.startedAt = startedAt
    }

    /// The HTTP front door's address (its port resolved), once `run` listens.
    var httpAddress: String? { http?.address }

    /// Serves until a drain (SIGTERM/SIGINT, or `SignalPipe.raise`) completes: every request
    /// accepted answered, or answered `shutting_down` once `drainTimeout` expired. `ready` runs
    /// once signals are caught and the listeners listen, before the first request is read.
    /// Closes the transport and the listeners.
    func run(_ backend: some FrontDoorBackend, ready: () throws -> Void) throws {
        http = try httpSettings.map { try HTTPServer(listener: "http", settings: $0, endpoints: HTTPEndpoint.allCases, limits: limits) }
        metricsListener = try metricsHTTP.map {
            try HTTPServer(listener: "metrics_http", settings: HTTPSettings(address: $0), endpoints: [.prometheus], limits: limits)
        }
        defer { closeListeners() }
        let listeners = [http, metricsListener].compactMap { $0 }
        let signals = try SignalPipe.install()
        defer { SignalPipe.uninstall() }
        try ready()
        let tick = Int(heartbeat.intervalMs / 2)
        while !(draining && backend.outstanding == 0) {
            var poll = PollSet()
            let (backendItem, signalItem) = (poll.add(backend.socket), poll.add(fd: signals))
            let zapItem = gate.map { poll.add($0.zap) }
            let requestItem = transport.socket.map { poll.add($0) }
            let httpItems = listeners.map { poll.add(fd: $0.fd) }
            try poll.wait(timeoutMs: drainDeadline.map { min(tick, Self.milliseconds(until: $0)) } ?? tick)
            if poll.readable(signalItem) {
                let arrived = SignalPipe.drain(signals)
                if arrived.stop { beginDrain(outstanding: backend.outstanding) }
                if arrived.reload {
                    try gate?.reload()
                    http?.reloadTokens()
                    backend.hangup()
                }
            }
            if let zapItem, poll.readable(zapItem) { try gate?.answer() }
            // The backend first: its answers finish work already done and free capacity.
            if poll.readable(backendItem) { try backend.readable(self) }
            while let requestItem, poll.readable(requestItem), let socket = transport.socket, let message = try socket.receive(dontWait: true) {
                handle(message, backend: backend)
            }
            for (listener, item) in zip(listeners, httpItems) where poll.readable(item) {
                for exchange in listener.arrived() { serve(exchange, on: listener, backend: backend) }
            }
            backend.maintain(self, now: MonotonicClock.now)
            if let deadline = drainDeadline, MonotonicClock.now >= deadline { abandon(backend) }
            try transport.tick(now: MonotonicClock.now)
        }
        transport.close()
        Log.info("\(name) drained: every accepted request was answered; exiting")
    }

    /// HTTP requests handed over after the drain ended are answered `shutting_down`.
    private func closeListeners() {
        let refusal = HTTPAnswer.error(WireError(.shuttingDown, "the \(name) is shutting down and takes no new work"))
        for listener in [http, metricsListener].compactMap({ $0 }) { listener.shutDown(refusal: refusal) }
        (http, metricsListener) = (nil, nil)
    }

    /// Whole milliseconds from now until `time` (0 once it has passed), for a poll timeout.
    private static func milliseconds(until time: Double) -> Int {
        max(0, Int(((time - MonotonicClock.now) * 1000).rounded(.up)))
    }

    private func beginDrain(outstanding: Int) {
        guard !draining else { return }
        draining = true
        drainDeadline = MonotonicClock.now + drainTimeout
        transport.drainStarted()
        Log.info("\(name) shutting down: refusing new work, answering the \(outstanding) accepted request(s) within \(drainTimeout) s")
    }

    /// The drain timeout expired: the backend answers what it still holds `shutting_down` (a
    /// transient code: the client may send it elsewhere), so the process can exit.
    private func abandon(_ backend: some FrontDoorBackend) {
        drainDeadline = nil
        backend.abandon(self, drainTimeout: drainTimeout)
    }

    // MARK: - Requests

    private func handle(_ frames: [[UInt8]], backend: some FrontDoorBackend) {
        let received = MonotonicClock.now
        switch transport.receive(frames, now: received) {
        case .none: return
        case .malformed(let route, let problem): answer(WireError(.badRequest, problem), op: nil, route: route)
        case .request(let route, let body): admit(body, impliedOp: nil, route: route, received: received, backend: backend)
        }
    }

    /// An HTTP request handed over by `listener`: Prometheus is answered here; everything else
    /// becomes the v1 request its endpoint makes and is admitted as a ZeroMQ request is.
    private func serve(_ exchange: HTTPExchange, on listener: HTTPServer, backend: some FrontDoorBackend) {
        let received = MonotonicClock.now
        do throws(WireError) {
            guard let (body, impliedOp) = try exchange.endpoint.v1Request(exchange.body, limits: limits) else {
                // /metrics (liveness, the other endpoint without a v1 request, is answered on
                // libmicrohttpd's thread and never handed over).
                listener.finish(exchange, .prometheus(snapshot(backend).prometheus()))
                return
            }
            admit(body, impliedOp: impliedOp, route: listener.route(exchange), received: received, backend: backend)
        } catch {
            outcomes.add(op: nil, code: error.code)
            listener.finish(exchange, .error(error))
        }
    }

    /// Parses a request body and answers it, or hands it to the backend. `impliedOp`: the op an
    /// HTTP path names.
    private func admit(_ body: [UInt8], impliedOp: Operation?, route: [[UInt8]], received: Double, backend: some FrontDoorBackend) {
        let request: WireRequest
        do {
            request = try WireRequest.parse(body, limits: limits, impliedOp: impliedOp)
        } catch {
            answer(error, op: nil, route: route)
            return
        }
        switch request.body {
        case .info, .health, .metrics:
            // Counted before the reply is written, so that a `metrics` reply counts itself.
            outcomes.add(op: request.operation, code: nil)
            deliver(route, introspection(request, backend: backend), code: nil)
        case .rank, .score, .adapt, .suggest, .reload, .users:
            do throws(WireError) {
                guard !draining || transport.admitsWhileDraining else {
                    throw WireError(.shuttingDown, "the \(name) is shutting down and takes no new work", id: request.id)
                }
                try backend.submit(request, body: body, route: route, received: received)
            } catch {
                answer(error, op: request.operation, route: route)
            }
        }
    }

    /// The backend's facts changed (a worker's READY payload after a reload).
    func announce(_ facts: [UInt8]) { transport.announce(facts) }

    // MARK: - Replies

    /// Answers `error` on `route`, counted under `op` (nil: the request was too broken to have one).
    func answer(_ error: WireError, op: Operation?, route: [[UInt8]]) {
        answer(WireReply.error(error), op: op, code: error.code, route: route)
    }

    /// Sends a reply body on `route`, counted under `op` and `code` (nil: ok).
    func answer(_ body: [UInt8], op: Operation?, code: ErrorCode?, route: [[UInt8]]) {
        outcomes.add(op: op, code: code)
        deliver(route, body, code: code)
    }

    /// Sends a reply without blocking, to the HTTP request or the ZeroMQ peer `route` names: a
    /// client that vanished or stopped reading loses its reply (counted), never the others' turn.
    private func deliver(_ route: [[UInt8]], _ body: [UInt8], code: ErrorCode?) {
        let delivered = HTTPServer.isHTTP(route) ? http?.complete(route, reply: body, code: code) ?? false : transport.deliver(route + [body])
        if !delivered { drops.record("client gone or not reading") }
    }

    // MARK: - info, health, metrics

    private func introspection(_ request: WireRequest, backend: some FrontDoorBackend) -> [UInt8] {
        switch request.body {
        case .info: info(request.id, backend: backend)
        case .health: health(request.id, backend: backend)
        default: metrics(request.id, backend: backend)
        }
    }

    private func info(_ id: JSONValue, backend: some FrontDoorBackend) -> [UInt8] {
        WireReply.object(id: id) { w in
            w.key("protocol"); w.number(ProtocolV1.version)
            w.key("prm_version"); w.string(PRMVersion.current)
            w.key("model"); backend.writeModel(&w)
            w.key("limits"); limits.write(&w)
            backend.writeInfoDetails(&w)
        }
    }

    private func health(_ id: JSONValue, backend: some FrontDoorBackend) -> [UInt8] {
        let now = MonotonicClock.now
        let health = backend.health(now: now)
        return WireReply.object(id: id) { w in
            w.key("status"); w.string(draining ? "draining" : "serving")
            w.key("healthy"); w.bool(health.healthy)
            w.key("compute")
            w.beginObject()
            w.key("state"); w.string(health.state)
            w.key("last_progress_ms"); w.number(WireReply.rounded(health.lastProgressMs))
            w.key("queued"); w.number(health.queued)
            w.endObject()
            w.key("uptime_s"); w.number(WireReply.rounded(now - startedAt))
            health.pool?.write(&w)
        }
    }

    /// Counters and latencies at this moment, for `metrics` and /metrics: the backend's, with the
    /// replies counted and dropped here.
    private func snapshot(_ backend: some FrontDoorBackend) -> MetricsSnapshot {
        var snapshot = backend.snapshot()
        snapshot.outcomes = outcomes
        snapshot.repliesDropped = drops.count
        snapshot.uptime = MonotonicClock.now - startedAt
        for listener in [http, metricsListener].compactMap({ $0 }) { snapshot.http.merge(listener.snapshot()) { $0 + $1 } }
        return snapshot
    }

    private func metrics(_ id: JSONValue, backend: some FrontDoorBackend) -> [UInt8] {
        let snapshot = snapshot(backend)
        return WireReply.object(id: id) { snapshot.writeJSON(&$0) }
    }
}
