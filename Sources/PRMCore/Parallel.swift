import CDNNL
import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Work splitting across the machine's cores. Element-wise kernels and attention call this;
/// sgemm threads itself inside its library.
///
/// A region uses up to `Compute.threads` workers. Inside one, nothing nests: further regions run
/// serially on their worker and sgemm runs single-threaded (see `BLAS.gemm`), so the cores are
/// never oversubscribed.
public enum Parallel {
    /// The machine's cores: the default for `Compute.threads`.
    public static let cores: Int = max(1, ProcessInfo.processInfo.activeProcessorCount)

    /// Below this much work (items × cost) a dispatch (~10–20 µs) costs more than it saves.
    static let minimumParallelWork = 32_768

    /// Whether the calling thread is running part of a parallel region.
    public static var isInsideRegion: Bool { pthread_getspecific(regionKey) != nil }

    /// Workers a region started here uses at most (1 inside a region): the number of per-worker
    /// scratch slices a `forEachItem` body may index.
    public static var workers: Int { isInsideRegion ? 1 : Compute.threads }

    /// How many chunks `forChunks` will use for `count` items of the given cost.
    public static func chunkCount(_ count: Int, costPerItem: Int = 1) -> Int {
        let workers = self.workers
        if count <= 1 || workers == 1 || count * costPerItem < minimumParallelWork { return 1 }
        return min(count, workers)
    }

    /// Runs `body(chunk, range)` over `0..<count` split into `chunkCount(count, costPerItem:)`
    /// contiguous ranges, in parallel. The chunk index lets reductions keep per-chunk partials.
    public static func forChunks(_ count: Int, costPerItem: Int = 1, _ body: (Int, Range<Int>) -> Void) {
        guard count > 0 else { return }
        let chunks = chunkCount(count, costPerItem: costPerItem)
        if chunks == 1 {
            body(0, 0..<count)
            return
        }
        region(workers: chunks) { chunk in
            let start = count * chunk / chunks
            let end = count * (chunk + 1) / chunks
            if start < end { body(chunk, start..<end) }
        }
    }

    /// Runs `body(range)` over `0..<count` in contiguous chunks, in parallel when it pays.
    public static func forRange(_ count: Int, costPerItem: Int = 1, _ body: (Range<Int>) -> Void) {
        forChunks(count, costPerItem: costPerItem) { _, range in body(range) }
    }

    /// Runs `body(i)` for each `i` in `0..<count`, items handed out dynamically
    /// (good for uneven items such as attention over ragged sequences).
    public static func forEach(_ count: Int, _ body: (Int) -> Void) {
        forEachItem(count) { _, item in body(item) }
    }

    /// `forEach` that also tells each item which worker runs it (0 ..< `workers`), so each worker
    /// can use its own slice of a scratch buffer instead of allocating per item.
    public static func forEachItem(_ count: Int, _ body: (_ worker: Int, _ item: Int) -> Void) {
        guard count > 0 else { return }
        let workers = min(count, self.workers)
        if workers == 1 {
            for i in 0..<count { body(0, i) }
            return
        }
        let next = ItemCounter()
        region(workers: workers) { worker in
            while let i = next.take(below: count) { body(worker, i) }
        }
    }

    /// Starts the pool of every worker a region may use, which sgemm and regions otherwise
    /// start on first use: a thread the system refuses then fails at start-up (OpenMP exits
    /// the process), not in the middle of the first computation.
    public static func startWorkers() {
        guard Compute.threads > 1 else { return }
        region(workers: Compute.threads) { _ in }
    }

    /// Runs `body(worker)` for each worker in `0..<workers` concurrently, on the thread pool of
    /// the backend's sgemm where the library shares it, and marks the threads as inside a region
    /// while they run it.
    ///
    /// oneDNN runs on OpenMP, whose idle threads spin for a while after each sgemm: a second pool
    /// (GCD) would then fight them for the cores, so regions run on the OpenMP pool too (and reuse
    /// its warm threads, which a GCD dispatch cannot). OpenBLAS keeps its own pool, whose idle
    /// threads yield; regions run on GCD, with OpenBLAS's one global thread count lowered to 1
    /// meanwhile (oneDNN reads the mark per call instead).
    private static func region(workers: Int, _ body: (Int) -> Void) {
        switch Compute.backend {
        case .onednn:
            withoutActuallyEscaping(body) { body in
                var context = RegionContext(body: body)
                withUnsafeMutablePointer(to: &context) { pointer in
                    GOMP_parallel({ raw in
                        guard let raw else { return }
                        let context = raw.assumingMemoryBound(to: RegionContext.self)
                        Parallel.marked { context.pointee.body(Int(omp_get_thread_num())) }
                    }, pointer, UInt32(workers), 0)
                }
            }
        case .openblas:
            let savedBLASThreads = BLAS.openBLASThreads
            if savedBLASThreads != 1 { BLAS.openBLASThreads = 1 }
            defer { if savedBLASThreads != 1 { BLAS.openBLASThreads = savedBLASThreads } }
            withoutActuallyEscaping(body) { body in
                let box = UncheckedSendable(body)
                DispatchQueue.concurrentPerform(iterations: workers) { worker in marked { box.value(worker) } }
            }
        }
    }

    /// Runs `body` with the calling thread marked as a region worker. The thread that starts a
    /// region runs part of it too, and leaves it unmarked again.
    @inline(__always)
    private static func marked(_ body: () -> Void) {
        let outer = pthread_getspecific(regionKey)
        pthread_setspecific(regionKey, UnsafeRawPointer(bitPattern: 1))
        body()
        pthread_setspecific(regionKey, outer)
    }
}

/// What an OpenMP region's C entry point receives: the Swift closure to run.
private struct RegionContext {
    let body: (Int) -> Void
}

/// The thread-specific slot marking region workers (any non-nil value marks one).
private let regionKey: pthread_key_t = {
    var key = pthread_key_t()
    let status = pthread_key_create(&key, nil)
    precondition(status == 0, "pthread_key_create failed (\(status))")
    return key
}()

/// Hands out item indices 0, 1, 2, … to the workers of a region, each exactly once.
private final class ItemCounter: @unchecked Sendable {
    private let lock = NSLock()
    private var next = 0

    func take(below count: Int) -> Int? {
        lock.lock()
        defer { lock.unlock() }
        guard next < count else { return nil }
        next += 1
        return next - 1
    }
}

/// Carries a non-Sendable value (a closure over raw buffers) into concurrent work whose
/// disjoint writes the caller guarantees.
public struct UncheckedSendable<T>: @unchecked Sendable {
    public let value: T
    public init(_ value: T) { self.value = value }
}
