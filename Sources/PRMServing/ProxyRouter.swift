import PRMCore

/// The proxy's bookkeeping without its sockets: the workers in the pool, the requests accepted
/// and not yet answered, which worker holds which, and how often each has been sent. Time comes
/// in as an argument and nothing here does I/O, so the routing rules (least loaded worker first,
/// at most `resends` resends, deadlines) are tested on their own; `WorkerPool` moves the bytes.
struct ProxyRouter {
    struct Worker {
        let identity: [UInt8]
        var slots: Int
        var model: JSONValue?
        var inFlight: Set<UInt64> = []
        var lastHeard: Double
        var lastSent: Double
        var draining = false
        /// Out of routing while a rolling reload reloads it (`RollingReload`).
        var paused = false
        var served = 0
        /// Its place in the order workers joined (a rolling reload's order).
        var joined = 0
    }

    /// A client's `rank` or `score`, passed to workers unchanged.
    struct Request {
        let route: [[UInt8]]
        let body: [UInt8]
        let id: JSONValue
        let op: Operation
        let receivedAt: Double
        let deadline: Double?
        /// Times it was sent to a worker.
        var attempts = 0
        var dispatchedAt = 0.0
    }

    /// Times a request held by a worker that died is sent again.
    let resends: Int
    /// Silence after which a worker takes no more requests (and `WorkerPool` drops it).
    let expiry: Double
    private(set) var workers: [[UInt8]: Worker] = [:]
    private(set) var pending: [UInt64: Request] = [:]
    /// Tokens waiting for a worker, in the order they go out (resent ones first).
    private(set) var waiting: [UInt64] = []
    private var nextToken: UInt64 = 1
    private(set) var resent = 0, workersLost = 0, workersSeen = 0, maxWaiting = 0, lateReplies = 0

    init(resends: Int, expiry: Double) {
        self.resends = resends
        self.expiry = expiry
    }

    /// Workers that take new requests, or will once a rolling reload is done with them.
    var alive: [Worker] { workers.values.filter { !$0.draining } }
    /// Workers that take new requests now (not draining, not paused).
    var routable: [Worker] { workers.values.filter { !$0.draining && !$0.paused } }
    /// The most workers ever paused at once (a rolling reload pauses one: this says so).
    private(set) var maxPaused = 0
    /// The fewest workers routable while one was paused (nil: none was ever paused).
    private(set) var minRoutableWhilePaused: Int?

    // MARK: - Requests

    /// Queues a request for the next free worker; returns its token.
    mutating func accept(_ request: Request) -> UInt64 {
        let token = nextToken
        nextToken += 1
        pending[token] = request
        waiting.append(token)
        maxWaiting = max(maxWaiting, waiting.count)
        return token
    }

    /// The next waiting request and the worker to send it to: the live worker with a free slot
    /// and the fewest requests in flight (then the fewest served, so idle workers take turns).
    /// Nil when nothing waits or no worker can take it now.
    mutating func nextAssignment(now: Double) -> (token: UInt64, request: Request, worker: [UInt8])? {
        // A resent request can be answered by the worker taken for dead before it goes out again.
        while let token = waiting.first, pending[token] == nil { waiting.removeFirst() }
        guard let token = waiting.first, let request = pending[token] else { return nil }
        let free = workers.values.filter { !$0.draining && !$0.paused && $0.inFlight.count < $0.slots && now - $0.lastHeard <= expiry }
        guard let worker = free.min(by: { ($0.inFlight.count, $0.served) < ($1.inFlight.count, $1.served) }) else { return nil }
        return (token, request, worker.identity)
    }

    /// A token for a message of the proxy's own to a worker (a rolling reload's, a gathered
    /// `users`), drawn from the same sequence so that no reply can be taken for another's.
    mutating func reserveToken() -> UInt64 {
        defer { nextToken += 1 }
        return nextToken
    }

    /// The request `nextAssignment` chose went out to `identity`.
    mutating func dispatched(_ token: UInt64, to identity: [UInt8], now: Double) {
        waiting.removeAll { $0 == token }
        pending[token]?.attempts += 1
        pending[token]?.dispatchedAt = now
        workers[identity]?.inFlight.insert(token)
    }

    /// A worker's reply to `token`: the request it answers, or nil when that was answered already
    /// (by the worker it was resent to, or the worker taken for dead, whichever came first).
    mutating func answered(_ token: UInt64, by identity: [UInt8]) -> Request? {
        workers[identity]?.inFlight.remove(token)
        workers[identity]?.served += 1
        let request = pending.removeValue(forKey: token)
        if request == nil { lateReplies += 1 }
        leaveIfDone(identity)
        return request
    }

    /// Waiting requests whose `deadline_ms` passed, taken out (to be answered `deadline_exceeded`).
    mutating func expireWaiting(now: Double) -> [Request] {
        var expired: [Request] = []
        waiting.removeAll { token in
            guard let request = pending[token], let deadline = request.deadline, now > deadline else { return false }
            pending[token] = nil
            expired.append(request)
            return true
        }
        return expired
    }

    /// Every waiting request, taken out (a draining proxy with no worker left to take them).
    mutating func abandonWaiting() -> [Request] {
        let abandoned = waiting.compactMap { pending.removeValue(forKey: $0) }
        waiting = []
        return abandoned
    }

    /// Every request not answered yet, waiting or at a worker, taken out in the order accepted
    /// (the drain ran out of time); a worker's reply to one of them comes too late.
    mutating func abandonAll() -> [Request] {
        let abandoned = pending.keys.sorted().compactMap { pending[$0] }
        pending = [:]
        waiting = []
        for identity in workers.keys { workers[identity]?.inFlight = [] }
        return abandoned
    }

    // MARK: - Workers

    /// A worker announced itself (READY); true when it is new to the pool.
    mutating func ready(_ identity: [UInt8], slots: Int, model: JSONValue?, now: Double) -> Bool {
        let isNew = workers[identity] == nil
        if isNew { workersSeen += 1 }
        var worker = workers[identity] ?? Worker(identity: identity, slots: slots, lastHeard: now, lastSent: now, joined: workersSeen)
        worker.slots = slots
        worker.model = model
        worker.lastHeard = now
        workers[identity] = worker
        return isNew
    }

    mutating func heard(from identity: [UInt8], now: Double) { workers[identity]?.lastHeard = now }
    mutating func sent(to identity: [UInt8], now: Double) { workers[identity]?.lastSent = now }

    /// Takes a worker out of routing (its requests in flight are still answered) or puts it back.
    mutating func pause(_ identity: [UInt8]) {
        guard workers[identity] != nil else { return }
        workers[identity]?.paused = true
        maxPaused = max(maxPaused, workers.values.filter(\.paused).count)
        minRoutableWhilePaused = min(minRoutableWhilePaused ?? .max, routable.count)
    }

    mutating func resume(_ identity: [UInt8]) { workers[identity]?.paused = false }

    /// The worker said DISCONNECT: it gets no new requests and leaves once it holds none.
    mutating func startDraining(_ identity: [UInt8]) {
        workers[identity]?.draining = true
        leaveIfDone(identity)
    }

    /// Takes a dead or unreachable worker out of the pool. The requests it held go back to the
    /// front of the queue unless they were already resent `resends` times: those are returned
    /// as `spent`, to be answered `internal`. Nil when the worker is not in the pool.
    mutating func drop(_ identity: [UInt8]) -> (resent: Int, spent: [Request])? {
        guard let worker = workers.removeValue(forKey: identity) else { return nil }
        workersLost += 1
        var (again, spent) = (0, [Request]())
        for token in worker.inFlight.sorted().reversed() {
            guard let request = pending[token] else { continue }
            if request.attempts > resends {
                pending[token] = nil
                spent.append(request)
            } else {
                again += 1
                waiting.insert(token, at: 0)
            }
        }
        resent += again
        return (again, spent)
    }

    /// Workers silent for longer than `expiry`.
    func silent(now: Double) -> [[UInt8]] {
        workers.values.filter { now - $0.lastHeard > expiry }.map(\.identity)
    }

    /// Workers the proxy has sent nothing to for `interval` seconds (due a heartbeat).
    func due(now: Double, interval: Double) -> [[UInt8]] {
        workers.values.filter { now - $0.lastSent >= interval }.map(\.identity)
    }

    private mutating func leaveIfDone(_ identity: [UInt8]) {
        if let worker = workers[identity], worker.draining, worker.inFlight.isEmpty { workers[identity] = nil }
    }
}
