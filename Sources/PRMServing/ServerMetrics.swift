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

/// What the compute thread reports: batch sizes, its latencies, the scorer's counters and
/// whether it is alive. Written by the compute thread, read by the I/O thread under a lock.
struct ComputeStats: Sendable {
    var batches = 0
    var batchRequests = 0
    var batchItems = 0
    var batchTokens = 0
    var maxBatchTokens = 0
    var queueLatency = LatencyWindow()
    var computeLatency = LatencyWindow()
    var totalLatency = LatencyWindow()
    var scorer = ScorerStatisticsSnapshot()
    var busy = false
    /// When the compute thread last finished a batch or woke up idle (monotonic seconds).
    var lastProgress = MonotonicClock.now
}

/// The Scorer's counters as the I/O thread may read them.
struct ScorerStatisticsSnapshot: Sendable {
    var cacheHits = 0
    var cacheMisses = 0
    var cachedStates = 0
    var cacheCapacity = 0
}
