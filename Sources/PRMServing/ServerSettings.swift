import Foundation
import PRMCore
import PRMModel

/// What one request may ask (protocols/PROTOCOL.md, "Limits"); reported by `info`.
public struct ServerLimits: Sendable, Equatable {
    public var maxMessageBytes = 1 << 20
    /// Candidates of a `rank`, items of a `score`.
    public var maxCandidates = 256
    /// Tokens of a request's inputs after the window.
    public var maxRequestTokens = 65_536
    /// Requests waiting for the compute thread; beyond it: `overloaded`, at once.
    public var maxQueuedRequests = 1_024
    /// Comparisons of one `adapt`.
    public var maxAdaptComparisons = 64
    /// Candidates of a `suggest`: its choice weighs every pair against every other, so its cost
    /// grows as the fourth power of this.
    public var maxSuggestCandidates = 32
    /// Pairs one `suggest` returns (`k`).
    public var maxSuggestPairs = 16

    public init() {}

    /// The one check of a body's size: a ZeroMQ message as received, an HTTP body by its
    /// Content-Length before it is read or by its running count as it arrives.
    func checkSize(_ bytes: Int) throws(WireError) {
        guard bytes <= maxMessageBytes else {
            throw WireError(.tooLarge, "the message has \(bytes) bytes; the limit is \(maxMessageBytes)")
        }
    }

    /// The `limits` object of the `info` reply (a server's and a proxy's alike).
    func write(_ w: inout JSONWriter) {
        w.object(["max_message_bytes": maxMessageBytes, "max_candidates": maxCandidates,
                  "max_request_tokens": maxRequestTokens, "max_queued_requests": maxQueuedRequests,
                  "max_adapt_comparisons": maxAdaptComparisons, "max_suggest_candidates": maxSuggestCandidates,
                  "max_suggest_pairs": maxSuggestPairs])
    }
}

/// How `prm serve` runs.
public struct ServerSettings: Sendable {
    /// Endpoint the ROUTER socket binds (loopback by default).
    public var bind = "tcp://127.0.0.1:5555"
    /// Instead of binding: the proxy backend this server connects to as a worker.
    public var connect: String?
    /// Worker: requests the proxy may have in flight here at once (room for batches to form).
    public var slots = 8
    public var heartbeat = Heartbeat()
    /// CURVE: this process's own secret key file (NAME.key). A bound server then admits only the
    /// clients whose public keys are in `allowKeys`; a worker uses it towards `curveServerKey`.
    public var curve = CurveSettings()
    /// host:port answering `GET /metrics` in Prometheus's text format (nil: no endpoint).
    public var metricsHTTP: String?
    /// The HTTP front door (nil: ZeroMQ only).
    public var http: HTTPSettings?
    public var limits = ServerLimits()
    /// Tokens of one compute batch (several requests that arrive together).
    public var batchTokens = 8_192
    /// How long the compute thread waits for a batch to fill once it has a request.
    public var maxWaitMs = 1.0
    /// Pooled states kept in the LRU cache (linear head); 0 disables it.
    public var cacheEntries = 16_384
    /// Bytes the cache may take at most (it takes them as it fills); may lower `cacheEntries`.
    public var cacheMemory = 256 << 20
    /// `health` reports the compute thread stalled after this long with work and no progress.
    public var stallMs = 10_000.0
    /// Seconds a drain (SIGTERM/SIGINT) may take: then the requests still queued are answered
    /// `shutting_down` and the server exits.
    public var drainTimeout = ServerSettings.defaultDrainTimeout
    /// Where the model came from, for `info`.
    public var modelPath = ""
    /// `--template`: how a `…ForSequenceClassification` folder served as it is writes text, at
    /// start and at each `reload` (nil: its own chat template; refused for a prm checkpoint).
    public var template: TextTemplate?
    /// The `adapt` op's user log (`UserLog`); nil: beside the model (`UserLog(beside:)`).
    public var userLog: URL?
    /// `adapt` requests accepted per minute at most (a sliding minute); beyond: `rate_limited`.
    public var adaptsPerMinute = 120
    /// Users the `adapt` op may add at most (users already adapted may be fitted again); beyond: `too_many_users`.
    public var maxAdaptedUsers = 10_000

    public init() {}

    /// Default of `--drain-timeout` (serve and proxy). `deadline_ms` has no upper bound, so no
    /// deadline sets it; what does is the longest a bundled client waits for a reply
    /// (`ScoringClient.defaultTimeout`, `prm score --server`): a request queued longer than that
    /// has been given up on (a retry would be refused by the draining server anyway), so computing
    /// it only delays the exit. A few seconds more let what such a client still waits for finish.
    public static let defaultDrainTimeout = ScoringClient.defaultTimeout + 5
}

/// CURVE key files for a server, proxy or worker.
public struct CurveSettings: Sendable {
    /// This process's secret key (NAME.key).
    public var secretKey: URL?
    /// Server and proxy: the folder of allowed clients' public keys (*.pub), re-read on SIGHUP.
    public var allowKeys: URL?
    /// Worker: the proxy's public key (NAME.pub).
    public var serverKey: URL?

    public init() {}

    public var enabled: Bool { secretKey != nil }
}
