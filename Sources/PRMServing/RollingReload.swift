import PRMCore

/// A `reload` the proxy rolls through its workers one at a time (protocols/PROTOCOL.md,
/// "reload"): the worker whose turn it is takes no new requests (`ProxyRouter.pause`), is sent
/// the reload, and takes requests again once it answers; then the next. A worker that refuses
/// the checkpoint stops the roll: the workers after it keep the model they serve. The bookkeeping
/// only, without sockets or clocks (`WorkerPool` moves the bytes), like `ProxyRouter`.
struct RollingReload {
    /// One worker's turn: when it left routing and came back (seconds from the roll's start),
    /// and what its reload reply said.
    struct Turn {
        let worker: [UInt8]
        let outAt: Double
        var backAt: Double?
        var reply: JSONObject?
    }

    /// The client's request (route empty: SIGHUP, answered to no one).
    let id: JSONValue
    let route: [[UInt8]]
    let path: String?
    let startedAt: Double
    /// Workers still to reload, in order.
    private(set) var queue: [[UInt8]]
    private(set) var turns: [Turn] = []
    /// The worker reloading now, and the token its reload went out under.
    private(set) var current: (worker: [UInt8], token: UInt64)?

    init(id: JSONValue, route: [[UInt8]], path: String?, workers: [[UInt8]], now: Double) {
        (self.id, self.route, self.path, startedAt, queue) = (id, route, path, now, workers)
    }

    /// The body each worker is sent: a reload of `path` (nil: each worker's own folder).
    var body: [UInt8] {
        var w = JSONWriter()
        w.beginObject()
        w.key("v"); w.number(ProtocolV1.version)
        w.key("id"); w.value(id)
        w.key("op"); w.string(Operation.reload.rawValue)
        if let path { w.key("path"); w.string(path) }
        w.endObject()
        return w.bytes
    }

    /// The next worker to take out of routing, skipping those `inPool` says have left; nil when
    /// every worker has had its turn.
    mutating func next(token: UInt64, now: Double, inPool: ([UInt8]) -> Bool) -> [UInt8]? {
        precondition(current == nil, "one worker at a time")
        while let worker = queue.first {
            queue.removeFirst()
            guard inPool(worker) else { continue }
            current = (worker, token)
            turns.append(Turn(worker: worker, outAt: now - startedAt))
            return worker
        }
        return nil
    }

    /// The current worker answered its reload with `reply` (a v1 reply object): true when it
    /// switched, false when it refused (the roll stops).
    mutating func answered(_ reply: JSONObject, now: Double) -> Bool {
        precondition(current != nil, "an answer without a worker reloading")
        turns[turns.count - 1].backAt = now - startedAt
        turns[turns.count - 1].reply = reply
        current = nil
        return reply["ok"]?.bool == true
    }

    /// The current worker left the pool before answering.
    mutating func lost(now: Double) {
        turns[turns.count - 1].backAt = now - startedAt
        current = nil
        queue = []
    }

    /// The workers' fingerprints after the roll, as their reload replies name them.
    var reloaded: [Turn] { turns.filter { $0.reply?["ok"]?.bool == true } }

    /// The reply when every worker switched: the last worker's reload reply's members (the
    /// fields of a server's reload reply, so a client reads both alike), then every worker's turn.
    func success() -> [UInt8] {
        let last = reloaded.last?.reply
        return WireReply.object(id: id) { w in
            for key in ["model_fingerprint", "previous_fingerprint", "path", "loaded_at"] {
                w.key(key); w.value(last?[key] ?? .string(""))
            }
            w.key("load_ms"); w.number(reloaded.reduce(0) { $0 + ($1.reply?["load_ms"]?.number?.value ?? 0) })
            writeTurns(&w)
        }
    }

    /// Why the roll stopped, naming the worker and what the workers serve now.
    func failure(_ problem: String) -> WireError {
        let done = reloaded.map { Self.name($0.worker) }
        let left = turns.count - done.count + queue.count
        return WireError(.reloadFailed, problem + "; the roll stopped: \(done.count) worker(s) reloaded before it"
                         + (done.isEmpty ? "" : " (\(done.joined(separator: ", ")))") + ", \(left) still serve the model they served",
                         id: id)
    }

    /// `workers`: each turn's worker, when it was out of routing, and its reload's outcome.
    private func writeTurns(_ w: inout JSONWriter) {
        w.key("workers")
        w.beginArray()
        for turn in turns {
            w.beginObject()
            w.key("worker"); w.string(Self.name(turn.worker))
            w.key("out_at_ms"); w.number(WireReply.rounded(turn.outAt * 1000))
            w.key("back_at_ms"); w.number(WireReply.rounded((turn.backAt ?? turn.outAt) * 1000))
            w.key("model_fingerprint"); w.value(turn.reply?["model_fingerprint"] ?? .null)
            w.key("previous_fingerprint"); w.value(turn.reply?["previous_fingerprint"] ?? .null)
            w.key("load_ms"); w.value(turn.reply?["load_ms"] ?? .null)
            w.endObject()
        }
        w.endArray()
    }

    static func name(_ identity: [UInt8]) -> String { identity.map { String(format: "%02x", $0) }.joined() }
}
