import Foundation
import PRMCore

/// The most recent latency samples of one stage, for percentiles (protocols/PROTOCOL.md,
/// `metrics`): a ring of 4,096, so a burst long ago does not hide today's latency.
struct LatencyWindow: Sendable {
    static let capacity = 4_096
    private var samples: [Double] = []
    private var next = 0

    mutating func record(_ ms: Double) {
        if samples.count < Self.capacity {
            samples.append(ms)
        } else {
            samples[next] = ms
            next = (next + 1) % Self.capacity
        }
    }

    /// Nearest-rank percentiles p50, p95, p99 (0 with no samples).
    func percentiles() -> (p50: Double, p95: Double, p99: Double) {
        guard !samples.isEmpty else { return (0, 0, 0) }
        let sorted = samples.sorted()
        func rank(_ p: Double) -> Double { sorted[min(sorted.count - 1, max(0, Int((p * Double(sorted.count)).rounded(.up)) - 1))] }
        return (rank(0.50), rank(0.95), rank(0.99))
    }
}

/// Cumulative latency counts for Prometheus (`_bucket{le}`, `_sum`, `_count`), since start.
struct LatencyHistogram: Sendable {
    /// Upper bounds in seconds: 0.5 ms … 10 s, dense where scoring latencies fall.
    static let bounds: [Double] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]
    private(set) var counts = [Int](repeating: 0, count: bounds.count)
    private(set) var sum = 0.0
    private(set) var count = 0

    mutating func record(_ ms: Double) {
        let seconds = ms / 1000
        if let bucket = Self.bounds.firstIndex(where: { seconds <= $0 }) { counts[bucket] += 1 }
        sum += seconds
        count += 1
    }
}

/// One stage's latency as both views report it: recent percentiles and the cumulative histogram.
struct StageLatency: Sendable {
    var recent = LatencyWindow()
    var histogram = LatencyHistogram()

    mutating func record(_ ms: Double) {
        recent.record(ms)
        histogram.record(ms)
    }
}

/// Replies by operation and code ("ok" for successes); "none" stands for requests too broken to
/// have an operation.
struct Outcomes: Sendable {
    private(set) var counts: [String: [String: Int]] = [:]

    mutating func add(op: Operation?, code: ErrorCode?) {
        counts[op?.rawValue ?? "none", default: [:]][code?.rawValue ?? "ok", default: 0] += 1
    }

    mutating func merge(_ other: Outcomes) {
        for (op, codes) in other.counts {
            for (code, n) in codes { counts[op, default: [:]][code, default: 0] += n }
        }
    }
}

/// What the compute thread reports: batch sizes, its latencies, the scorer's counters and
/// whether it is alive. Written by the compute thread, read by the I/O thread under a lock.
struct ComputeStats: Sendable {
    var batches = 0
    var batchRequests = 0
    var batchItems = 0
    var batchTokens = 0
    var maxBatchTokens = 0
    var queue = StageLatency()
    var compute = StageLatency()
    var total = StageLatency()
    var cacheHits = 0
    var cacheMisses = 0
    var cachedStates = 0
    var cacheCapacity = 0
    var busy = false
    /// When the compute thread last finished a batch or woke up idle (monotonic seconds).
    var lastProgress = MonotonicClock.now
}

/// The state of a proxy's pool, for info/health/metrics.
struct PoolSnapshot: Sendable {
    var workers = 0, busy = 0, draining = 0, inFlight = 0, slots = 0, waiting = 0
    var seen = 0, lost = 0, resent = 0, lateReplies = 0
    /// Rolling reloads: workers taking requests now, workers out of routing for their reload now,
    /// rolls started, the most workers ever out at once and the fewest taking requests meanwhile
    /// (nil: no worker was ever out).
    var ready = 0, reloading = 0, rolls = 0, maxOut = 0
    var minReady: Int?

    func write(_ w: inout JSONWriter) {
        w.key("pool")
        w.beginObject()
        for (key, value) in ["workers": workers, "ready": ready, "busy": busy, "draining": draining, "in_flight": inFlight, "slots": slots,
                             "waiting": waiting, "seen": seen, "lost": lost, "resent": resent, "late_replies": lateReplies] as KeyValuePairs {
            w.key(key); w.number(value)
        }
        w.key("reload")
        w.beginObject()
        w.key("rolls"); w.number(rolls)
        w.key("reloading"); w.number(reloading)
        w.key("max_out"); w.number(maxOut)
        w.key("min_ready"); if let minReady { w.number(minReady) } else { w.null() }
        w.endObject()
        w.endObject()
    }
}

/// Everything the `metrics` op and the Prometheus endpoint report, gathered at one moment, so
/// the two views always agree.
struct MetricsSnapshot: Sendable {
    var outcomes = Outcomes()
    var queueDepth = 0, maxQueueDepth = 0, queueCapacity = 0
    var stats = ComputeStats()
    var repliesDropped = 0
    var pool: PoolSnapshot?
    /// A scoring server's (a proxy has no model, so no template: its workers count).
    var prompts: PromptFormatCount?
    /// A scoring server's per-user health (a proxy: its workers keep theirs).
    var users: UserHealth.Summary?
    var uptime = 0.0
    /// HTTP responses of the front door's listeners (Prometheus only: the `metrics` op's schema
    /// counts requests by operation, whichever way they came).
    var http: [HTTPCount: Int] = [:]

    private var stages: [(String, StageLatency)] { [("queue", stats.queue), ("compute", stats.compute), ("total", stats.total)] }

    /// The members of a `metrics` reply (protocols/v1/metrics.reply.schema.json).
    func writeJSON(_ w: inout JSONWriter) {
        var requests: [String: Int] = [:], errors: [String: Int] = [:]
        for (op, codes) in outcomes.counts {
            for (code, n) in codes {
                if op != "none" { requests[op, default: 0] += n }
                if code != "ok" { errors[code, default: 0] += n }
            }
        }
        w.key("requests")
        w.beginObject()
        for op in Operation.allCases { w.key(op.rawValue); w.number(requests[op.rawValue, default: 0]) }
        w.endObject()
        w.key("errors")
        w.beginObject()
        for code in ErrorCode.allCases { w.key(code.rawValue); w.number(errors[code.rawValue, default: 0]) }
        w.endObject()
        w.key("queue")
        w.object(["depth": queueDepth, "max_depth": maxQueueDepth, "capacity": queueCapacity])
        let s = stats
        w.key("batches")
        w.object(["count": s.batches, "requests": s.batchRequests, "items": s.batchItems, "tokens": s.batchTokens,
                  "mean_requests": Double(ratio: s.batchRequests, of: s.batches), "mean_tokens": Double(ratio: s.batchTokens, of: s.batches),
                  "max_tokens": s.maxBatchTokens])
        w.key("cache")
        w.object(["entries": s.cachedStates, "capacity": s.cacheCapacity, "hits": s.cacheHits, "misses": s.cacheMisses,
                  "hit_rate": Double(ratio: s.cacheHits, of: s.cacheHits + s.cacheMisses)])
        w.key("replies_dropped"); w.number(repliesDropped)
        w.key("latency_ms")
        w.beginObject()
        for (name, stage) in stages {
            let p = stage.recent.percentiles()
            w.key(name)
            w.object(["p50": WireReply.rounded(p.p50), "p95": WireReply.rounded(p.p95), "p99": WireReply.rounded(p.p99)])
        }
        w.endObject()
        pool?.write(&w)
        prompts?.write(&w)
        if let users {
            w.key("users")
            w.object(["tracked": users.tracked, "flagged": users.flagged, "collapsed_total": users.collapsedTotal])
        }
    }

    /// The Prometheus text exposition format (version 0.0.4), with Prometheus's naming habits:
    /// `_total` counters, base units (seconds), one histogram per stage.
    func prometheus() -> String {
        var out = ""
        func family(_ name: String, _ type: String, _ help: String) { out += "# HELP \(name) \(help)\n# TYPE \(name) \(type)\n" }
        func sample(_ name: String, _ labels: [(String, String)] = [], _ value: Double) {
            let rendered = labels.isEmpty ? "" : "{" + labels.map { "\($0.0)=\"\($0.1)\"" }.joined(separator: ",") + "}"
            out += "\(name)\(rendered) \(Self.format(value))\n"
        }
        /// A family with one unlabelled sample.
        func single(_ name: String, _ type: String, _ help: String, _ value: Double) {
            family(name, type, help)
            sample(name, [], value)
        }
        family("prm_requests_total", "counter", "Requests answered, by operation and result code (ok or the error code).")
        for (op, codes) in outcomes.counts.sorted(by: { $0.key < $1.key }) {
            for (code, n) in codes.sorted(by: { $0.key < $1.key }) { sample("prm_requests_total", [("op", op), ("code", code)], Double(n)) }
        }
        family("prm_request_duration_seconds", "histogram", "Time per request by stage: queue (waiting), compute (its batch), total (receipt to reply).")
        for (name, stage) in stages {
            var cumulative = 0
            for (bound, n) in zip(LatencyHistogram.bounds, stage.histogram.counts) {
                cumulative += n
                sample("prm_request_duration_seconds_bucket", [("stage", name), ("le", Self.format(bound))], Double(cumulative))
            }
            sample("prm_request_duration_seconds_bucket", [("stage", name), ("le", "+Inf")], Double(stage.histogram.count))
            sample("prm_request_duration_seconds_sum", [("stage", name)], stage.histogram.sum)
            sample("prm_request_duration_seconds_count", [("stage", name)], Double(stage.histogram.count))
        }
        single("prm_queue_depth", "gauge", "Requests waiting for computation (a proxy: for a worker).", Double(queueDepth))
        single("prm_queue_capacity", "gauge", "Requests that may wait before new ones are refused as overloaded.", Double(queueCapacity))
        single("prm_batches_total", "counter", "Compute batches run.", Double(stats.batches))
        single("prm_batch_requests_total", "counter", "Requests computed in batches.", Double(stats.batchRequests))
        single("prm_batch_tokens_total", "counter", "Tokens computed in batches.", Double(stats.batchTokens))
        single("prm_cache_hits_total", "counter", "Hidden states found in the cache.", Double(stats.cacheHits))
        single("prm_cache_misses_total", "counter", "Hidden states computed because the cache lacked them.", Double(stats.cacheMisses))
        single("prm_cache_entries", "gauge", "Hidden states held in the cache.", Double(stats.cachedStates))
        single("prm_replies_dropped_total", "counter", "Replies ZeroMQ could not deliver (client gone or not reading).", Double(repliesDropped))
        single("prm_uptime_seconds", "gauge", "Seconds since the process started serving.", uptime)
        family("prm_http_requests_total", "counter", "HTTP responses by listener (http, metrics_http), endpoint and status.")
        for (count, n) in http.sorted(by: { ($0.key.listener, $0.key.endpoint, $0.key.status) < ($1.key.listener, $1.key.endpoint, $1.key.status) }) {
            sample("prm_http_requests_total", [("listener", count.listener), ("endpoint", count.endpoint), ("status", String(count.status))], Double(n))
        }
        if let prompts {
            family("prm_prompts_off_template_total", "counter", "Rank/score requests with a string prompt not written in the model's text template (e.g. no Human: turn for hh).")
            sample("prm_prompts_off_template_total", [("template", prompts.template.rawValue)], Double(prompts.offTemplate))
        }
        if let users {
            single("prm_user_collapsed_total", "counter", "Times a user's served scores collapsed (their spread fell below 5 % of all users').",
                   Double(users.collapsedTotal))
            single("prm_users_flagged", "gauge", "Users whose served scores are flagged collapsed or drifted (the users op lists them).",
                   Double(users.flagged))
            family("prm_user_flagged", "gauge", "Flagged users by id and reason: at most \(UserHealth.maxLabelled), the most collapsed first.")
            for (user, reason) in users.labelled { sample("prm_user_flagged", [("user_id", Self.escaped(user)), ("reason", reason)], 1) }
        }
        if let pool {
            family("prm_workers", "gauge", "Workers in the proxy's pool by state.")
            sample("prm_workers", [("state", "alive")], Double(pool.workers))
            sample("prm_workers", [("state", "busy")], Double(pool.busy))
            sample("prm_workers", [("state", "draining")], Double(pool.draining))
            sample("prm_workers", [("state", "reloading")], Double(pool.reloading))
            single("prm_worker_losses_total", "counter", "Workers dropped for silence or an unreachable connection.", Double(pool.lost))
            single("prm_resends_total", "counter", "Requests sent to another worker after theirs died.", Double(pool.resent))
            single("prm_in_flight", "gauge", "Requests held by workers.", Double(pool.inFlight))
        }
        return out
    }

    /// A label value as Prometheus's text format spells it: backslash, quote and newline escaped.
    static func escaped(_ value: String) -> String {
        value.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"").replacingOccurrences(of: "\n", with: "\\n")
    }

    /// Prometheus number syntax: integers without a fraction, others shortest round-trip.
    static func format(_ value: Double) -> String {
        if value == value.rounded(), abs(value) < 1e15 { return String(Int64(value)) }
        return "\(value)"
    }
}
