import CZeroMQ
import Foundation
import PRMCore
import PRMModel
import PRMScoring
import Synchronization

/// `prm serve`: protocol v1 over a ROUTER socket (protocols/PROTOCOL.md).
///
/// Two threads, sharing no socket. The **I/O thread** owns the ROUTER: it receives, parses,
/// validates and tokenizes, answers `info`/`health`/`metrics` itself, and queues `rank`/`score`
/// jobs (or refuses them at once: `overloaded`, `shutting_down`). The **compute thread** owns the
/// model (its buffers forbid overlapping calls): it takes batches of queued jobs under a token
/// budget, scores them in one pass of the `Scorer`, and hands each reply back over an inproc
/// PUSH/PULL pair, which the I/O thread forwards with the request's envelope.
///
/// SIGTERM/SIGINT start a drain: no new work is accepted, everything accepted is answered, then
/// `run()` returns. A drain lasts at most `drainTimeout`: what is still queued then is answered
/// `shutting_down` (the batch being computed is finished), so a deep queue cannot hold the exit.
public final class ScoringServer: @unchecked Sendable {
    public let settings: ServerSettings
    private let scorer: UncheckedSendable<Scorer>
    private let preparer: InputPreparer
    private let facts: ModelFacts
    private let context: ZMQContext
    private let queue: JobQueue
    private let stats = Mutex(ComputeStats())
    private let startedAt = MonotonicClock.now
    /// Written by the I/O thread only.
    private var outcomes = Outcomes()
    private var drops = DropLog()
    private var outstanding = 0
    private var draining = false
    /// When a drain stops waiting for the queue (set by the signal, cleared once acted on).
    private var drainDeadline: Double?
    /// The endpoint actually bound (a `tcp://…:0` bind gets a port from the system).
    public private(set) var boundEndpoint = ""

    static let repliesEndpoint = "inproc://prm-replies"

    public init(scorer: Scorer, settings: ServerSettings) throws {
        self.settings = settings
        self.scorer = UncheckedSendable(scorer)
        preparer = scorer.preparer
        facts = ModelFacts(scorer.model, users: scorer.users.count, path: settings.modelPath)
        context = try ZMQContext()
        queue = JobQueue(capacity: settings.limits.maxQueuedRequests)
        stats.withLock { $0.cacheCapacity = scorer.cacheCapacity }
    }

    /// Serves until a drain (a signal, or `requestShutdown`) completes. `ready` is called once the
    /// socket is bound (or, for a worker, connecting), with the endpoint.
    public func run(ready: (String) -> Void = { _ in }) throws {
        let transport: any ServerTransport
        var gate: CurveGate?
        if let proxy = settings.connect {
            var facts = JSONWriter()
            facts.beginObject()
            facts.key("slots"); facts.number(settings.slots)
            facts.key("model"); self.facts.write(&facts)
            facts.endObject()
            let keys = try settings.curve.secretKey.map { secret -> Curve.ClientKeys in
                guard let server = settings.curve.serverKey else { throw ServingError("a CURVE worker needs the proxy's public key file") }
                return try Curve.ClientKeys(serverKeyFile: server, secretKeyFile: secret)
            }
            transport = try WorkerTransport(context, connect: proxy, heartbeat: settings.heartbeat, readyFacts: facts.bytes,
                                            limits: settings.limits, keys: keys)
        } else {
            gate = try CurveGate.make(context, settings.curve)
            transport = try RouterTransport(context, bind: settings.bind, limits: settings.limits, gate: gate)
        }
        defer { gate?.close() }
        boundEndpoint = transport.endpoint
        let replies = try ZMQSocket(context, kind: ZMQ_PULL)
        try replies.bind(Self.repliesEndpoint)
        let http = try settings.metricsHTTP.map { try MetricsHTTP(context, address: $0) }
        defer { http?.close() }
        let signals = try SignalPipe.install()
        defer { SignalPipe.uninstall() }

        let (warmedUp, computeDone) = (DispatchSemaphore(value: 0), DispatchSemaphore(value: 0))
        let compute = Thread { [self] in
            // OpenMP keeps a pool per thread that starts regions: this thread's is the one
            // requests use, so it is started here, before the server says it is ready.
            scorer.value.warmUp()
            warmedUp.signal()
            computeLoop()
            computeDone.signal()
        }
        compute.stackSize = 8 << 20
        compute.name = "prm-compute"
        compute.start()
        warmedUp.wait()

        ready(boundEndpoint)
        let tick = Int(settings.heartbeat.intervalMs / 2)
        while !(draining && outstanding == 0) {
            var poll = PollSet()
            let (replyItem, signalItem) = (poll.add(replies), poll.add(fd: signals))
            let zapItem = gate.map { poll.add($0.zap) }
            let requestItem = transport.socket.map { poll.add($0) }
            let httpItem = http.map { poll.add($0.socket) }
            try poll.wait(timeoutMs: drainDeadline.map { min(tick, Self.milliseconds(until: $0)) } ?? tick)
            if let httpItem, poll.readable(httpItem) { try http?.answer { snapshot().prometheus() } }
            if poll.readable(signalItem) {
                let arrived = SignalPipe.drain(signals)
                if arrived.stop { beginDrain(transport) }
                if arrived.reload { try gate?.reload() }
            }
            if let zapItem, poll.readable(zapItem) { try gate?.answer() }
            // Replies first: they finish work already done and free queue capacity.
            while poll.readable(replyItem), let reply = try replies.receive(dontWait: true) {
                outstanding -= 1
                deliver(reply, on: transport)
            }
            while let requestItem, poll.readable(requestItem), let socket = transport.socket, let message = try socket.receive(dontWait: true) {
                handle(message, on: transport)
            }
            if let deadline = drainDeadline, MonotonicClock.now >= deadline { abandonQueued(on: transport) }
            try transport.tick(now: MonotonicClock.now)
        }
        queue.close()
        computeDone.wait()
        replies.close()
        transport.close()
        Log.info("drained: every accepted request was answered; exiting")
    }

    /// Starts a drain as SIGTERM would (for embedding the server in a process of one's own).
    public func requestShutdown() { SignalPipe.raise() }

    private func beginDrain(_ transport: any ServerTransport) {
        guard !draining else { return }
        draining = true
        drainDeadline = MonotonicClock.now + settings.drainTimeout
        transport.drainStarted()
        Log.info("shutting down: refusing new work, answering the \(outstanding) accepted request(s) within \(settings.drainTimeout) s")
    }

    /// The drain timeout expired: the requests still queued are answered `shutting_down` (a
    /// transient code: the client may send them elsewhere) instead of computed.
    private func abandonQueued(on transport: any ServerTransport) {
        drainDeadline = nil
        let abandoned = queue.removeAll()
        outstanding -= abandoned.count
        Log.warning("drain timeout of \(settings.drainTimeout) s expired: answering the \(abandoned.count) request(s) still queued shutting_down")
        for job in abandoned {
            reply(WireError(.shuttingDown, "the server's drain timeout expired before this request was computed; not computed", id: job.request.id),
                  op: job.request.operation, route: job.route, on: transport)
        }
    }

    /// Whole milliseconds from now until `time` (0 once it has passed), for a poll timeout.
    static func milliseconds(until time: Double) -> Int {
        max(0, Int(((time - MonotonicClock.now) * 1000).rounded(.up)))
    }

    // MARK: - I/O thread

    private func handle(_ frames: [[UInt8]], on transport: any ServerTransport) {
        let received = MonotonicClock.now
        let route: [[UInt8]], body: [UInt8]
        switch transport.receive(frames, now: received) {
        case .none: return
        case .malformed(let r, let problem):
            reply(WireError(.badRequest, problem), op: nil, route: r, on: transport)
            return
        case .request(let r, let b):
            (route, body) = (r, b)
        }
        let request: WireRequest
        do {
            request = try WireRequest.parse(body, limits: settings.limits)
        } catch {
            reply(error, op: nil, route: route, on: transport)
            return
        }
        switch request.body {
        case .info, .health, .metrics:
            outcomes.add(op: request.operation, code: nil)
            let body: [UInt8]
            switch request.body {
            case .info: body = info(request.id)
            case .health: body = health(request.id)
            default: body = metrics(request.id)
            }
            deliver(route + [body], on: transport)
        case .rank, .score:
            do throws(WireError) {
                let job = try admit(request, route: route, received: received)
                outstanding += 1
                guard queue.push(job) else {
                    outstanding -= 1
                    throw WireError(.overloaded, "\(queue.capacity) requests are already queued; try again later", id: request.id)
                }
            } catch {
                reply(error, op: request.operation, route: route, on: transport)
            }
        }
    }

    /// Tokenizes a rank/score request and checks what only tokens can tell.
    private func admit(_ request: WireRequest, route: [[UInt8]], received: Double) throws(WireError) -> Job {
        guard !draining else { throw WireError(.shuttingDown, "the server is shutting down and takes no new work", id: request.id) }
        let prepared = preparer.prepare(request.items)
        let field: String
        if case .rank = request.body { field = "candidates" } else { field = "items" }
        if let empty = prepared.firstIndex(where: { $0.tokens == 0 }) {
            throw WireError(.badRequest, "\(field)[\(empty)]: prompt and reply are both empty; there is nothing to score", id: request.id)
        }
        let tokens = prepared.reduce(0) { $0 + $1.tokens }
        guard tokens <= settings.limits.maxRequestTokens else {
            throw WireError(.tooManyTokens, "the request's inputs have \(tokens) tokens after the window; the limit is \(settings.limits.maxRequestTokens)", id: request.id)
        }
        return Job(route: route, request: request, items: prepared, tokens: tokens, receivedAt: received)
    }

    private func reply(_ error: WireError, op: Operation?, route: [[UInt8]], on transport: any ServerTransport) {
        outcomes.add(op: op, code: error.code)
        deliver(route + [WireReply.error(error)], on: transport)
    }

    /// Sends a whole reply message without blocking: a client that vanished or stopped reading
    /// loses its reply (counted), never the others' turn.
    private func deliver(_ message: [[UInt8]], on transport: any ServerTransport) {
        if !transport.deliver(message) { drops.record("client gone or not reading") }
    }

    // MARK: - info, health, metrics

    private func info(_ id: JSONValue) -> [UInt8] {
        WireReply.object(id: id) { w in
            w.key("protocol"); w.number(ProtocolV1.version)
            w.key("prm_version"); w.string(PRMVersion.current)
            w.key("model"); facts.write(&w)
            w.key("limits"); settings.limits.write(&w)
            w.key("server")
            w.beginObject()
            w.key("batch_tokens"); w.number(settings.batchTokens)
            w.key("max_wait_ms"); w.number(settings.maxWaitMs)
            w.key("cache_entries"); w.number(settings.cacheEntries)
            w.endObject()
        }
    }

    private func health(_ id: JSONValue) -> [UInt8] {
        let (busy, last) = stats.withLock { ($0.busy, $0.lastProgress) }
        let queued = queue.depth
        let sinceProgress = (MonotonicClock.now - last) * 1000
        let stalled = (busy || queued > 0) && sinceProgress > settings.stallMs
        return WireReply.object(id: id) { w in
            w.key("status"); w.string(draining ? "draining" : "serving")
            w.key("healthy"); w.bool(!stalled)
            w.key("compute")
            w.beginObject()
            w.key("state"); w.string(stalled ? "stalled" : busy ? "busy" : "idle")
            w.key("last_progress_ms"); w.number(WireReply.rounded(sinceProgress))
            w.key("queued"); w.number(queued)
            w.endObject()
            w.key("uptime_s"); w.number(WireReply.rounded(MonotonicClock.now - startedAt))
        }
    }

    /// Counters and latencies at this moment, for `metrics` and /metrics.
    func snapshot() -> MetricsSnapshot {
        var snapshot = MetricsSnapshot()
        snapshot.stats = stats.withLock { $0 }
        snapshot.outcomes = outcomes
        snapshot.outcomes.merge(snapshot.stats.outcomes)
        (snapshot.queueDepth, snapshot.maxQueueDepth, snapshot.queueCapacity) = (queue.depth, queue.maxDepth, queue.capacity)
        snapshot.repliesDropped = drops.count
        snapshot.uptime = MonotonicClock.now - startedAt
        return snapshot
    }

    private func metrics(_ id: JSONValue) -> [UInt8] {
        let snapshot = snapshot()
        return WireReply.object(id: id) { snapshot.writeJSON(&$0) }
    }

    // MARK: - Compute thread

    private func computeLoop() {
        let push: ZMQSocket
        do {
            push = try ZMQSocket(context, kind: ZMQ_PUSH)
            try push.set(ZMQ_LINGER, Int32(-1))
            try push.connect(Self.repliesEndpoint)
        } catch {
            Log.error("compute thread cannot reach the I/O thread: \(error)")
            return
        }
        defer { push.close() }
        let maxWait = settings.maxWaitMs / 1000
        while true {
            switch queue.next(tokenBudget: settings.batchTokens, maxWait: maxWait, idleAfter: 1) {
            case .closed: return
            case .idle: stats.withLock { $0.lastProgress = MonotonicClock.now }
            case .batch(let jobs):
                stats.withLock { $0.busy = true }
                for reply in compute(jobs) {
                    do { try push.send(reply) } catch { Log.error("compute thread: handing a reply over failed: \(error)") }
                }
            }
        }
    }

    /// Scores a batch: expired jobs are answered without computing; the rest go through the
    /// scorer in one call (so equal texts across requests are computed once).
    private func compute(_ jobs: [Job]) -> [[[UInt8]]] {
        let start = MonotonicClock.now
        let live = jobs.filter { !$0.expired(at: start) }
        let expired = jobs.filter { $0.expired(at: start) }
        var messages: [[[UInt8]]] = expired.map { job in
            let waited = (start - job.receivedAt) * 1000
            let error = WireError(.deadlineExceeded, String(format: "queued %.1f ms, past the deadline of %@ ms; not computed", waited,
                                                             "\(job.request.deadlineMs ?? 0)"), id: job.request.id)
            return job.route + [WireReply.error(error)]
        }
        let scores = scorer.value.score(live.flatMap(\.items))
        let end = MonotonicClock.now
        let computeMs = (end - start) * 1000
        var offset = 0
        var queueSamples: [Double] = [], totalSamples: [Double] = []
        var codes: [ErrorCode?] = []  // per live job: nil, or the error its scores turned into
        for job in live {
            let range = offset..<(offset + job.items.count)
            offset += job.items.count
            let timing = WireReply.Timing(queueMs: (start - job.receivedAt) * 1000, computeMs: computeMs)
            let truncated = job.items.indices.filter { job.items[$0].truncated }
            let body: [UInt8]
            do {
                switch job.request.body {
                case .rank(_, _, _, _, let topK):
                    body = try WireReply.rank(id: job.request.id, scores: Array(scores[range]), topK: topK,
                                              knownUser: job.items.first?.knownUser ?? false, truncated: truncated, timing: timing)
                default:
                    body = try WireReply.score(id: job.request.id, scores: Array(scores[range]), knownUser: job.items.map(\.knownUser),
                                               truncated: truncated, timing: timing)
                }
                codes.append(nil)
            } catch {
                Log.error("\(job.request.operation.rawValue) request: \(error.message)")
                body = WireReply.error(error)
                codes.append(error.code)
            }
            messages.append(job.route + [body])
            queueSamples.append(timing.queueMs)
            totalSamples.append((MonotonicClock.now - job.receivedAt) * 1000)
        }
        let statistics = scorer.value.statistics
        let (cached, capacity) = (scorer.value.cachedStates, scorer.value.cacheCapacity)
        stats.withLock { s in
            s.busy = false
            s.lastProgress = MonotonicClock.now
            if !live.isEmpty {
                s.batches += 1
                s.batchRequests += live.count
                s.batchItems += live.reduce(0) { $0 + $1.items.count }
                let tokens = live.reduce(0) { $0 + $1.tokens }
                s.batchTokens += tokens
                s.maxBatchTokens = max(s.maxBatchTokens, tokens)
                s.compute.record(computeMs)
            }
            for q in queueSamples { s.queue.record(q) }
            for t in totalSamples { s.total.record(t) }
            for (job, code) in zip(live, codes) { s.outcomes.add(op: job.request.operation, code: code) }
            for job in expired { s.outcomes.add(op: job.request.operation, code: .deadlineExceeded) }
            (s.cacheHits, s.cacheMisses, s.cachedStates, s.cacheCapacity) = (statistics.cacheHits, statistics.cacheMisses, cached, capacity)
        }
        return messages
    }
}
