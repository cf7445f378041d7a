import Foundation
import PRMCore
import PRMScoring

/// A validated, tokenized `rank` or `score` request waiting for the compute thread.
struct Job: Sendable {
    let route: [[UInt8]]
    let request: WireRequest
    let items: [PreparedItem]
    let tokens: Int
    /// Monotonic receipt time (seconds), for queue latency and `deadline_ms`.
    let receivedAt: Double
    /// The model generation whose preparer tokenized `items` (`ScoringServer`'s reloads count
    /// them): a job that meets a newer model is prepared again by its preparer.
    var generation = 0
    /// A reload's checkpoint, loaded beside the model served (or why it could not be).
    var replacement: UncheckedSendable<Result<LoadedCheckpoint, WireError>>?

    /// Whether `deadline_ms` passed before `now`.
    func expired(at now: Double) -> Bool {
        guard let deadline = request.deadlineMs else { return false }
        return now > receivedAt + deadline / 1000
    }
}

/// The hand-over between the I/O thread (producer) and the compute thread (consumer): bounded,
/// so a flood is refused at the door (`overloaded`) instead of growing without limit, and
/// batch-forming, so requests that arrive together are computed together.
final class JobQueue: @unchecked Sendable {
    enum Next {
        case batch([Job])
        /// Nothing arrived within the idle interval: the consumer is alive and may report so.
        case idle
        /// Closed and empty: the consumer should stop.
        case closed
    }

    let capacity: Int
    private let condition = NSCondition()
    private var jobs: [Job] = []
    private var head = 0
    private var closed = false
    private(set) var maxDepth = 0

    init(capacity: Int) { self.capacity = capacity }

    var depth: Int { condition.withLock { jobs.count - head } }

    /// Queues a job; false when `capacity` jobs are already waiting (unless `force`: a loaded
    /// checkpoint must reach the compute thread, whose answer the client waits for).
    func push(_ job: Job, force: Bool = false) -> Bool {
        condition.withLock {
            guard force || jobs.count - head < capacity else { return false }
            jobs.append(job)
            maxDepth = max(maxDepth, jobs.count - head)
            condition.signal()
            return true
        }
    }

    /// No more jobs will come; the consumer drains what is queued, then gets `.closed`.
    func close() {
        condition.withLock {
            closed = true
            condition.broadcast()
        }
    }

    /// Takes out every job still waiting (not the batch the consumer holds), for a drain that
    /// ran out of time.
    func removeAll() -> [Job] {
        condition.withLock {
            let waiting = Array(jobs[head...])
            jobs = []
            head = 0
            return waiting
        }
    }

    /// The next batch: the oldest job, then more as long as they fit in `tokenBudget`, waiting
    /// at most `maxWait` seconds (from when the first was taken) for the batch to fill.
    func next(tokenBudget: Int, maxWait: Double, idleAfter: Double) -> Next {
        condition.lock()
        defer { condition.unlock() }
        let idleDeadline = Date(timeIntervalSinceNow: idleAfter)
        while head == jobs.count {
            if closed { return .closed }
            if !condition.wait(until: idleDeadline) && head == jobs.count { return closed ? .closed : .idle }
        }
        var batch = [take()]
        var tokens = batch[0].tokens
        let fillDeadline = Date(timeIntervalSinceNow: maxWait)
        while tokens < tokenBudget {
            if head < jobs.count {
                guard tokens + jobs[head].tokens <= tokenBudget else { break }
                tokens += jobs[head].tokens
                batch.append(take())
            } else if closed || maxWait <= 0 || !condition.wait(until: fillDeadline) {
                break
            }
        }
        return .batch(batch)
    }

    private func take() -> Job {
        let job = jobs[head]
        head += 1
        // Compact now and then so the array does not grow with every job ever queued.
        if head > 1_024 && head * 2 > jobs.count {
            jobs.removeFirst(head)
            head = 0
        }
        return job
    }
}
