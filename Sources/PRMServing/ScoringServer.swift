import CZeroMQ
import Foundation
import PRMCore
import PRMModel
import PRMScoring
import Synchronization

/// `prm serve`: protocol v1 over a ROUTER socket (protocols/PROTOCOL.md).
///
/// Two threads, sharing no socket. The **I/O thread** runs the `FrontDoor` (receiving, parsing,
/// `info`/`health`/`metrics`, refusals, the drain) with this server as its backend: it tokenizes
/// `rank`/`score` requests and queues them as jobs (or refuses them at once: `overloaded`,
/// `too_many_tokens`; an `adapt` past its rate: `rate_limited`). The **compute thread** owns the
/// model (its buffers forbid overlapping calls): it takes batches of queued jobs under a token
/// budget, scores them in one pass of the `Scorer` (an `adapt` in the batch has its comparisons'
/// h computed in the same pass and is fitted and added by `LiveUsers` before the batch's scores,
/// so it holds scoring up by no more than its place in one batch), and hands each job's `JobResult` back, waking the I/O thread over an inproc
/// PUSH/PULL pair; the I/O thread writes the replies and sends them with the requests' envelopes.
///
/// SIGTERM/SIGINT start a drain: no new work is accepted, everything accepted is answered, then
/// `run()` returns. A drain lasts at most `drainTimeout`: what is still queued then is answered
/// `shutting_down` (the batch being computed is finished), so a deep queue cannot hold the exit.
public final class ScoringServer: FrontDoorBackend, @unchecked Sendable {
    public let settings: ServerSettings
    // The compute thread's: the model served, the users `adapt` fits on it, its generation
    // (each reload that switches models adds one).
    private var scorer: UncheckedSendable<Scorer>
    private var liveUsers: LiveUsers
    private var computeGeneration = 0
    // The I/O thread's view of the model served: how requests are prepared, what `info` says.
    private var preparer: InputPreparer
    private var facts: ModelFacts
    private var generation = 0
    private var adaptable: Bool
    /// Served scores per user, and their training-time statistics (I/O thread only).
    private var health: UserHealth
    /// A reload is loading or switching (I/O thread only): one at a time.
    private var reloading = false
    /// When the adapts of the last minute were accepted (I/O thread only).
    private var recentAdapts: [Double] = []
    private let context: ZMQContext
    private let queue: JobQueue
    private let stats = Mutex(ComputeStats())
    /// Results the compute thread finished and the I/O thread has not answered yet.
    private let results = Mutex<[JobResult]>([])
    /// Where the compute thread's wake-ups arrive; one per batch of `results`.
    let socket: ZMQSocket
    private let startedAt = MonotonicClock.now
    /// Jobs queued or computing (written by the I/O thread only).
    private(set) var outstanding = 0
    /// Rank/score requests with a string prompt the checkpoint's template does not write (I/O thread only).
    private var promptsOffTemplate = 0
    /// The endpoint actually bound (a `tcp://…:0` bind gets a port from the system).
    public private(set) var boundEndpoint = ""
    /// The HTTP front door's address, its port resolved (nil without `--http`).
    public private(set) var httpAddress: String?

    private static let resultsEndpoint = "inproc://prm-results"

    public init(scorer: Scorer, settings: ServerSettings) throws {
        self.settings = settings
        self.scorer = UncheckedSendable(scorer)
        preparer = scorer.preparer
        let fingerprint = ModelFingerprint.of(scorer.model, users: scorer.users)
        facts = ModelFacts(scorer.model, users: scorer.users.count, path: settings.modelPath, fingerprint: fingerprint)
        liveUsers = LiveUsers(model: scorer.model, users: scorer.users, fingerprint: fingerprint, log: Self.userLog(settings),
                              maxAdapted: settings.maxAdaptedUsers)
        adaptable = liveUsers.refusal == nil
        health = UserHealth(reference: Self.trainingStatistics(settings.modelPath))
        context = try ZMQContext()
        queue = JobQueue(capacity: settings.limits.maxQueuedRequests)
        socket = try ZMQSocket(context, kind: ZMQ_PULL)
        try socket.bind(Self.resultsEndpoint)
        stats.withLock { $0.cacheCapacity = scorer.cacheCapacity }
    }

    /// The checkpoint's training-time score statistics; nil (with a warning when they cannot be
    /// read) makes every user's drift baseline a running one.
    private static func trainingStatistics(_ path: String) -> ScoreStatistics? {
        do {
            guard let statistics = try ScoreStatistics.recorded(in: URL(fileURLWithPath: path)) else {
                Log.info("\(path) records no training-time score statistics: drift is measured from each user's first requests")
                return nil
            }
            return statistics
        } catch {
            Log.warning("\(error); drift is measured from each user's first requests")
            return nil
        }
    }

    /// The adapt op's log: `--user-log`, or beside the model first served (a reload keeps it).
    private static func userLog(_ settings: ServerSettings) -> UserLog {
        settings.userLog.map { UserLog($0) } ?? UserLog(beside: URL(fileURLWithPath: settings.modelPath))
    }

    /// Serves until a drain (a signal, or `requestShutdown`) completes. `ready` is called once the
    /// socket is bound (or, for a worker, connecting), with the endpoint.
    public func run(ready: (String) -> Void = { _ in }) throws {
        let gate = try settings.connect == nil ? CurveGate.make(context, settings.curve) : nil
        defer { gate?.close() }
        let transport = try makeTransport(gate: gate)
        boundEndpoint = transport.endpoint
        let door = FrontDoor(name: "server", context, transport: transport, gate: gate, http: settings.http, metricsHTTP: settings.metricsHTTP,
                             limits: settings.limits, drainTimeout: settings.drainTimeout, heartbeat: settings.heartbeat, startedAt: startedAt)
        let computeDone = DispatchSemaphore(value: 0)
        try door.run(self) {
            startCompute(done: computeDone)
            httpAddress = door.httpAddress
            ready(boundEndpoint)
        }
        queue.close()
        computeDone.wait()
        socket.close()
    }

    /// Starts a drain as SIGTERM would (for embedding the server in a process of one's own).
    public func requestShutdown() { SignalPipe.raise() }

    /// Clients' requests come from a bound ROUTER, or, with `--connect`, from a proxy this
    /// server works for (READY tells the proxy its slots and model).
    private func makeTransport(gate: CurveGate?) throws -> any ServerTransport {
        guard let proxy = settings.connect else {
            return try RouterTransport(context, bind: settings.bind, limits: settings.limits, gate: gate)
        }
        let keys = try settings.curve.secretKey.map { secret -> Curve.ClientKeys in
            guard let server = settings.curve.serverKey else { throw ServingError("a CURVE worker needs the proxy's public key file") }
            return try Curve.ClientKeys(serverKeyFile: server, secretKeyFile: secret)
        }
        return try WorkerTransport(context, connect: proxy, heartbeat: settings.heartbeat, readyFacts: readyFacts,
                                   limits: settings.limits, keys: keys)
    }

    /// What a worker's READY tells the proxy: its slots and the model it serves.
    private var readyFacts: [UInt8] {
        var w = JSONWriter()
        w.beginObject()
        w.key("slots"); w.number(settings.slots)
        w.key("model"); facts.write(&w)
        w.endObject()
        return w.bytes
    }

    /// Starts the compute thread and returns once it has warmed up.
    private func startCompute(done: DispatchSemaphore) {
        let warmedUp = DispatchSemaphore(value: 0)
        let compute = Thread { [self] in
            // OpenMP keeps a pool per thread that starts regions: this thread's is the one
            // requests use, so it is started here, before the server says it is ready.
            scorer.value.warmUp()
            liveUsers.replay()
            warmedUp.signal()
            computeLoop()
            done.signal()
        }
        compute.stackSize = 8 << 20
        compute.name = "prm-compute"
        compute.start()
        warmedUp.wait()
    }

    // MARK: - I/O thread: the front door's backend

    func submit(_ request: WireRequest, body: [UInt8], route: [[UInt8]], received: Double) throws(WireError) {
        if case .reload(let path) = request.body { return try startReload(request, path: path, route: route, received: received) }
        if case .adapt = request.body { try admitAdapt(request, now: received) }
        let job = try prepare(request, route: route, received: received)
        guard queue.push(job) else {
            throw WireError(.overloaded, "\(queue.capacity) requests are already queued; try again later", id: request.id)
        }
        if case .adapt = request.body { recentAdapts.append(received) }
        outstanding += 1
    }

    /// SIGHUP: reloads the checkpoint served (its folder, read again), answering no one.
    func hangup() {
        let request = WireRequest(id: .string("SIGHUP"), deadlineMs: nil, body: .reload(path: nil))
        do throws(WireError) { try startReload(request, path: nil, route: [], received: MonotonicClock.now) } catch {
            Log.warning("SIGHUP: \(error.message)")
        }
    }

    /// Loads the checkpoint at `path` (nil: the model's own folder) on a thread of its own and
    /// queues it for the compute thread, which checks it and switches between batches.
    private func startReload(_ request: WireRequest, path: String?, route: [[UInt8]], received: Double) throws(WireError) {
        guard !reloading else { throw WireError(.overloaded, "a reload is already in progress; try again when it is answered", id: request.id) }
        reloading = true
        outstanding += 1
        let folder = path ?? facts.path
        Log.info("reloading the model from \(folder)")
        let generation = generation
        let precision = facts.precision, template = settings.template
        let loader = Thread { [queue] in
            var job = Job(route: route, request: request, items: [], tokens: 0, receivedAt: received, generation: generation)
            job.replacement = UncheckedSendable(LoadedCheckpoint.load(folder, precision: precision, template: template, id: request.id))
            _ = queue.push(job, force: true)
        }
        loader.name = "prm-reload"
        loader.start()
    }

    /// At most `adaptsPerMinute` adapts accepted in any minute: a fit costs a batch's place.
    private func admitAdapt(_ request: WireRequest, now: Double) throws(WireError) {
        recentAdapts.removeAll { now - $0 >= 60 }
        guard recentAdapts.count < settings.adaptsPerMinute else {
            let wait = 60 - (now - (recentAdapts.first ?? now))
            throw WireError(.rateLimited, String(format: "%d adapts were accepted in the last minute, the limit; try again in %.1f s",
                                                 recentAdapts.count, wait), id: request.id)
        }
    }

    /// Tokenizes a rank/score request and checks what only tokens can tell.
    private func prepare(_ request: WireRequest, route: [[UInt8]], received: Double) throws(WireError) -> Job {
        let items = request.items
        if items.contains(where: { !$0.promptFollows(preparer.template) }) { promptsOffTemplate += 1 }
        let prepared = preparer.prepare(preparer.render(items))
        let field: String
        switch request.body {
        case .rank, .suggest: field = "candidates"
        case .adapt: field = "comparisons' replies"
        default: field = "items"
        }
        if let empty = prepared.firstIndex(where: { $0.tokens == 0 }) {
            throw WireError(.badRequest, "\(field)[\(empty)]: prompt and reply are both empty; there is nothing to score", id: request.id)
        }
        let tokens = prepared.reduce(0) { $0 + $1.tokens }
        guard tokens <= settings.limits.maxRequestTokens else {
            throw WireError(.tooManyTokens, "the request's inputs have \(tokens) tokens after the window; the limit is \(settings.limits.maxRequestTokens)", id: request.id)
        }
        return Job(route: route, request: request, items: prepared, tokens: tokens, receivedAt: received, generation: generation)
    }

    /// The compute thread finished jobs: their replies are written here and sent.
    func readable(_ door: FrontDoor) throws {
        while try socket.receive(dontWait: true) != nil {}
        let finished = results.withLock { waiting in
            let taken = waiting
            waiting.removeAll()
            return taken
        }
        outstanding -= finished.count
        for result in finished {
            if case .reload = result.request.body { reloaded(result, door: door) }
            if case .adapt(let adapt) = result.request.body, case .success = result.outcome { health.refitted(adapt.user) }
            // A reload SIGHUP started has no one to answer.
            guard !result.route.isEmpty else { continue }
            record(result)
            if case .users(let user) = result.request.body {
                door.answer(WireReply.object(id: result.request.id) { health.write(&$0, user: user) }, op: .users, code: nil, route: result.route)
                continue
            }
            let (body, code) = result.reply()
            door.answer(body, op: result.request.operation, code: code, route: result.route)
        }
    }

    /// A known user's ranked scores, for `UserHealth`.
    private func record(_ result: JobResult) {
        guard case .rank(let rank, _) = result.request.body, let user = rank.user,
              case .success(.scored(let scored)) = result.outcome, scored.knownUser.first == true else { return }
        health.record(user: user, scores: scored.scores)
    }

    /// A reload finished: requests from now on are prepared for the new model.
    private func reloaded(_ result: JobResult, door: FrontDoor) {
        reloading = false
        switch result.outcome {
        case .success(.reloaded(let switched)):
            (preparer, facts, generation, adaptable) = (switched.preparer, switched.facts, switched.generation, switched.adaptable)
            health.use(reference: switched.statistics)
            door.announce(readyFacts)
            Log.info("serving \(switched.facts.path), model \(switched.facts.fingerprint) (was \(switched.previous); loaded in "
                     + String(format: "%.0f ms)", switched.loadMs))
        case .failure(let error): Log.warning("reload refused: \(error.message)")
        default: break
        }
    }

    func maintain(_ door: FrontDoor, now: Double) {}

    /// The requests still queued are answered `shutting_down` instead of computed.
    func abandon(_ door: FrontDoor, drainTimeout: Double) {
        let abandoned = queue.removeAll()
        outstanding -= abandoned.count
        Log.warning("drain timeout of \(drainTimeout) s expired: answering the \(abandoned.count) request(s) still queued shutting_down")
        for job in abandoned {
            door.answer(WireError(.shuttingDown, "the server's drain timeout expired before this request was computed; not computed", id: job.request.id),
                        op: job.request.operation, route: job.route)
        }
    }

    func writeModel(_ w: inout JSONWriter) { facts.write(&w) }

    func writeInfoDetails(_ w: inout JSONWriter) {
        w.key("server")
        w.beginObject()
        w.key("batch_tokens"); w.number(settings.batchTokens)
        w.key("max_wait_ms"); w.number(settings.maxWaitMs)
        w.key("cache_entries"); w.number(settings.cacheEntries)
        w.endObject()
        w.key("adapt")
        w.beginObject()
        w.key("adaptable"); w.bool(adaptable)
        w.key("user_log"); w.string(Self.userLog(settings).url.path)
        w.key("adapts_per_minute"); w.number(settings.adaptsPerMinute)
        w.key("max_adapted_users"); w.number(settings.maxAdaptedUsers)
        w.endObject()
    }

    /// Stalled: work is waiting or computing, and the compute thread made no progress for `stallMs`.
    func health(now: Double) -> FrontDoor.Health {
        let (busy, last) = stats.withLock { ($0.busy, $0.lastProgress) }
        let queued = queue.depth
        let sinceProgress = (now - last) * 1000
        let stalled = (busy || queued > 0) && sinceProgress > settings.stallMs
        return FrontDoor.Health(healthy: !stalled, state: stalled ? "stalled" : busy ? "busy" : "idle", lastProgressMs: sinceProgress,
                                queued: queued)
    }

    func snapshot() -> MetricsSnapshot {
        var snapshot = MetricsSnapshot()
        snapshot.stats = stats.withLock { $0 }
        (snapshot.queueDepth, snapshot.maxQueueDepth, snapshot.queueCapacity) = (queue.depth, queue.maxDepth, queue.capacity)
        snapshot.prompts = PromptFormatCount(template: preparer.template, offTemplate: promptsOffTemplate)
        snapshot.users = health.summary
        return snapshot
    }

    // MARK: - Compute thread

    private func computeLoop() {
        let push: ZMQSocket
        do {
            push = try ZMQSocket(context, kind: ZMQ_PUSH)
            try push.set(ZMQ_LINGER, Int32(-1))
            try push.connect(Self.resultsEndpoint)
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
                let finished = compute(jobs)
                results.withLock { $0 += finished }
                do { try push.send([[]]) } catch { Log.error("compute thread: waking the I/O thread failed: \(error)") }
            }
        }
    }

    /// Scores a batch: expired jobs are answered without computing; the rest go through the
    /// scorer in one call (so equal texts across requests are computed once). Lines other
    /// workers appended to the user log are taken in first, and the batch's adapts are fitted
    /// and added before its scores are computed.
    private func compute(_ jobs: [Job]) -> [JobResult] {
        let start = MonotonicClock.now
        var results: [JobResult] = jobs.filter { $0.replacement != nil }.map(switchModel)
        results += jobs.filter { if case .users = $0.request.body { true } else { false } }.map {
            JobResult(route: $0.route, request: $0.request, outcome: .success(.passed))
        }
        liveUsers.sync()
        let pending = jobs.filter { job in
            if case .users = job.request.body { return false }
            return job.replacement == nil && !job.expired(at: start)
        }.map(preparedForThisModel)
        let expired = jobs.filter { job in
            if case .users = job.request.body { return false }
            return job.replacement == nil && job.expired(at: start)
        }
        results += expired.map { job in
            let waited = (start - job.receivedAt) * 1000
            let error = WireError(.deadlineExceeded, String(format: "queued %.1f ms, past the deadline of %@ ms; not computed", waited,
                                                             "\(job.request.deadlineMs ?? 0)"), id: job.request.id)
            return JobResult(route: job.route, request: job.request, outcome: .failure(error))
        }
        let adapts = pending.filter { if case .adapt = $0.request.body { true } else { false } }
        let suggests = pending.filter { if case .suggest = $0.request.body { true } else { false } }
        let live = pending.filter { job in
            switch job.request.body {
            case .adapt, .suggest: false
            default: true
            }
        }
        results += adapts.map { adapt($0, start: start) }
        results += suggests.map { suggest($0, start: start) }
        let resolved = live.map { liveUsers.resolve($0.items, ids: $0.request.items.map(\.userID)) }
        let scores = scorer.value.score(resolved.flatMap { $0 })
        let end = MonotonicClock.now
        let computeMs = (end - start) * 1000
        var offset = 0
        var queueSamples: [Double] = [], totalSamples: [Double] = []
        for (job, items) in zip(live, resolved) {
            let range = offset..<(offset + job.items.count)
            offset += job.items.count
            let timing = WireReply.Timing(queueMs: (start - job.receivedAt) * 1000, computeMs: computeMs)
            let scored = JobResult.Scored(scores: Array(scores[range]), knownUser: items.map(\.knownUser),
                                          truncated: job.items.indices.filter { job.items[$0].truncated }, timing: timing,
                                          fingerprint: liveUsers.fingerprint, uncertainty: uncertainty(job, items: items))
            results.append(JobResult(route: job.route, request: job.request, outcome: .success(.scored(scored))))
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
            (s.cacheHits, s.cacheMisses, s.cachedStates, s.cacheCapacity) = (statistics.cacheHits, statistics.cacheMisses, cached, capacity)
        }
        return results
    }

    /// Fits an adapt's user on its comparisons' pooled states, computed as scoring computes them.
    private func adapt(_ job: Job, start: Double) -> JobResult {
        guard case .adapt(let request) = job.request.body else { preconditionFailure("adapt(_:) takes adapt jobs") }
        let outcome: Result<JobResult.Output, WireError>
        do throws(WireError) {
            if let refusal = liveUsers.refusal { throw WireError(.notAdaptable, refusal, id: job.request.id) }
            let h = scorer.value.pooledStates(job.items)
            let fitted = try liveUsers.adapt(request.user, states: h, width: scorer.value.model.backbone.hiddenSize, id: job.request.id)
            let timing = WireReply.Timing(queueMs: (start - job.receivedAt) * 1000, computeMs: (MonotonicClock.now - start) * 1000)
            outcome = .success(.adapted(fitted, timing))
        } catch {
            outcome = .failure(error)
        }
        return JobResult(route: job.route, request: job.request, outcome: outcome)
    }

    /// The pairs of a suggest's candidates whose answers would tell most about its user
    /// (`PairSuggestion`), under what the server believes of that user (`LiveUsers.belief`).
    private func suggest(_ job: Job, start: Double) -> JobResult {
        guard case .suggest(let request) = job.request.body else { preconditionFailure("suggest(_:) takes suggest jobs") }
        let outcome: Result<JobResult.Output, WireError>
        let belief = liveUsers.belief(of: request.user)
        switch belief {
        case .unavailable(let reason):
            outcome = .failure(WireError(.notAdaptable, "suggest needs the user's posterior: \(reason)", id: job.request.id))
        case .prior(let posterior), .posterior(let posterior):
            let h = states(job.items)
            let pairs = PairSuggestion.allPairs(h.count)
            let covariance = posterior.scoreCovariance(h)
            let chosen = PairSuggestion.choose(request.k, from: pairs, means: h.map(posterior.meanScore), covariance: covariance)
            let suggested = JobResult.Suggested(pairs: chosen, basis: belief.basis, totalVariance: PairSuggestion.totalVariance(covariance, pairs: pairs),
                                                knownUser: belief.basis == "posterior", fingerprint: liveUsers.fingerprint)
            let timing = WireReply.Timing(queueMs: (start - job.receivedAt) * 1000, computeMs: (MonotonicClock.now - start) * 1000)
            outcome = .success(.suggested(suggested, timing))
        }
        return JobResult(route: job.route, request: job.request, outcome: outcome)
    }

    /// A rank's score standard deviations under its user's belief (`"uncertainty": true`), from
    /// the pooled states its scores were computed with (the cache has them).
    private func uncertainty(_ job: Job, items: [PreparedItem]) -> WireReply.Uncertainty? {
        guard case .rank(let rank, _) = job.request.body, rank.uncertainty else { return nil }
        let belief = liveUsers.belief(of: rank.user)
        switch belief {
        case .unavailable(let reason):
            return WireReply.Uncertainty(basis: belief.basis, std: [], reason: reason)
        case .prior(let posterior), .posterior(let posterior):
            let std = states(items).map { max(posterior.scoreVariance($0), 0).squareRoot() }
            return WireReply.Uncertainty(basis: belief.basis, std: std)
        }
    }

    /// Each item's pooled state h, in Double, as the scorer computes it.
    private func states(_ items: [PreparedItem]) -> [[Double]] {
        let C = scorer.value.model.backbone.hiddenSize
        let h = scorer.value.pooledStates(items)
        return items.indices.map { i in (0..<C).map { Double(h[i * C + $0]) } }
    }

    /// A job the I/O thread prepared for a model this thread has since replaced, prepared again
    /// by the new model's preparer (its tokenizer, window and users may differ).
    private func preparedForThisModel(_ job: Job) -> Job {
        guard job.generation != computeGeneration else { return job }
        let preparer = scorer.value.preparer
        return Job(route: job.route, request: job.request, items: preparer.prepare(preparer.render(job.request.items)), tokens: job.tokens,
                   receivedAt: job.receivedAt, generation: computeGeneration)
    }

    /// Switches to a reload's checkpoint if it scores (`ModelProbe`: finite weights, finite
    /// scores on a fixed probe set for every user); otherwise the model served stays.
    private func switchModel(_ job: Job) -> JobResult {
        let outcome: Result<JobResult.Output, WireError>
        switch job.replacement?.value ?? .failure(WireError(.internal, "a reload job without a checkpoint", id: job.request.id)) {
        case .failure(let error):
            outcome = .failure(error)
        case .success(let loaded):
            do {
                try ModelProbe.check(loaded.model, users: loaded.users)
                let previous = liveUsers.fingerprint
                let fresh = Scorer(model: loaded.model, users: loaded.users, tokensPerBatch: settings.batchTokens,
                                   cacheEntries: settings.cacheEntries, cacheMemory: settings.cacheMemory)
                scorer = UncheckedSendable(fresh)
                liveUsers = LiveUsers(model: loaded.model, users: loaded.users, fingerprint: loaded.fingerprint, log: Self.userLog(settings),
                                      maxAdapted: settings.maxAdaptedUsers)
                liveUsers.replay()
                computeGeneration += 1
                let facts = ModelFacts(loaded.model, users: loaded.users.count, path: loaded.path, fingerprint: loaded.fingerprint)
                outcome = .success(.reloaded(JobResult.Switched(preparer: fresh.preparer, facts: facts, generation: computeGeneration,
                                                                adaptable: liveUsers.refusal == nil, previous: previous, loadMs: loaded.loadMs,
                                                                statistics: loaded.statistics)))
            } catch {
                outcome = .failure(WireError(.reloadFailed, "\(loaded.path) fails the smoke test: \(error); the model served keeps serving",
                                             id: job.request.id))
            }
        }
        return JobResult(route: job.route, request: job.request, outcome: outcome)
    }
}
