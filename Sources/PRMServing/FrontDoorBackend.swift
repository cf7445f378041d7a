import PRMCore

/// What stands behind a `FrontDoor`: where admitted `rank`/`score` requests go, where their
/// answers come back, and what `info`, `health` and `metrics` say about it. `ScoringServer` is
/// one (its compute thread), `WorkerPool` the other (the proxy's workers). Called on the front
/// door's thread only; answers go to clients through the `FrontDoor` passed in.
protocol FrontDoorBackend: AnyObject {
    /// Where answers arrive (the compute thread's hand-over, the workers' ROUTER): polled with
    /// the front door's socket.
    var socket: ZMQSocket { get }
    /// Requests accepted and not answered yet; a drain ends when there are none.
    var outstanding: Int { get }
    /// `socket` is readable: take in everything waiting on it.
    func readable(_ door: FrontDoor) throws
    /// Queues a `rank`, `score`, `adapt` or `reload` request (`body` is its JSON, as received), or throws why not.
    /// The front door has refused it already if draining.
    func submit(_ request: WireRequest, body: [UInt8], route: [[UInt8]], received: Double) throws(WireError)
    /// Once per loop turn, after the reads: timers (heartbeats, deadlines of waiting requests).
    func maintain(_ door: FrontDoor, now: Double)
    /// SIGHUP arrived (after the CURVE allow-list and the HTTP tokens were re-read).
    func hangup()
    /// The drain ran out of time: answers `shutting_down` what it still holds and can give up.
    func abandon(_ door: FrontDoor, drainTimeout: Double)
    /// `info`'s `model` value.
    func writeModel(_ w: inout JSONWriter)
    /// `info`'s members after `limits`.
    func writeInfoDetails(_ w: inout JSONWriter)
    func health(now: Double) -> FrontDoor.Health
    /// Queue, latencies, batches, cache and pool; the front door adds what it counts itself.
    func snapshot() -> MetricsSnapshot
}
