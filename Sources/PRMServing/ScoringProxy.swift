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
    /// The HTTP front door (nil: ZeroMQ only); its requests go to the workers as ZeroMQ ones do.
    public var http: HTTPSettings?

    public init() {}
}

/// `prm proxy`: one v1 endpoint in front of many scoring workers. The client side is the same
/// `FrontDoor` as `prm serve`'s; behind it is a `WorkerPool` (workers announce their slots and
/// heartbeat, requests go to the least loaded, a dead worker's requests to another). `info`,
/// `health` and `metrics` describe the pool. Single-threaded: routing is cheap next to scoring.
public final class ScoringProxy: @unchecked Sendable {
    public let settings: ProxySettings
    private let context: ZMQContext
    private let startedAt = MonotonicClock.now
    public private(set) var frontEndpoint = "", backEndpoint = ""
    /// The HTTP front door's address, its port resolved (nil without `--http`).
    public private(set) var httpAddress: String?

    public init(settings: ProxySettings) throws {
        self.settings = settings
        context = try ZMQContext()
    }

    public func requestShutdown() { SignalPipe.raise() }

    /// Routes until a drain completes: after SIGTERM/SIGINT new work is refused and every
    /// request accepted is answered, or after `drainTimeout` answered `shutting_down`.
    public func run(ready: (_ front: String, _ back: String) -> Void = { _, _ in }) throws {
        let gate = try CurveGate.make(context, settings.curve)
        defer { gate?.close() }
        let front = try RouterTransport(context, bind: settings.front, limits: settings.limits, gate: gate)
        let pool = try WorkerPool(context, settings: settings, frontEndpoint: front.endpoint, gate: gate)
        defer { pool.close() }
        (frontEndpoint, backEndpoint) = (front.endpoint, pool.endpoint)
        let door = FrontDoor(name: "proxy", context, transport: front, gate: gate, http: settings.http, metricsHTTP: settings.metricsHTTP,
                             limits: settings.limits, drainTimeout: settings.drainTimeout, heartbeat: settings.heartbeat, startedAt: startedAt)
        try door.run(pool) {
            httpAddress = door.httpAddress
            ready(frontEndpoint, backEndpoint)
        }
    }
}
