import Foundation

/// Work splitting across the machine's cores. Element-wise kernels and attention call this;
/// sgemm threads itself inside OpenBLAS.
public enum Parallel {
    /// Number of worker threads used for element-wise and attention work.
    public static let cores: Int = max(1, ProcessInfo.processInfo.activeProcessorCount)

    /// Below this much work (items × cost) a dispatch (~10–20 µs) costs more than it saves.
    static let minimumParallelWork = 32_768

    /// How many chunks `forChunks` will use for `count` items of the given cost.
    public static func chunkCount(_ count: Int, costPerItem: Int = 1) -> Int {
        if count <= 1 || cores == 1 || count * costPerItem < minimumParallelWork { return 1 }
        return min(count, cores)
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
        withoutActuallyEscaping(body) { body in
            let box = UncheckedSendable(body)
            DispatchQueue.concurrentPerform(iterations: chunks) { chunk in
                let start = count * chunk / chunks
                let end = count * (chunk + 1) / chunks
                if start < end { box.value(chunk, start..<end) }
            }
        }
    }

    /// Runs `body(range)` over `0..<count` in contiguous chunks, in parallel when it pays.
    public static func forRange(_ count: Int, costPerItem: Int = 1, _ body: (Range<Int>) -> Void) {
        forChunks(count, costPerItem: costPerItem) { _, range in body(range) }
    }

    /// Runs `body(i)` for each `i` in `0..<count`, items handed out dynamically
    /// (good for uneven items such as attention over ragged sequences).
    public static func forEach(_ count: Int, _ body: (Int) -> Void) {
        guard count > 0 else { return }
        if count == 1 || cores == 1 {
            for i in 0..<count { body(i) }
            return
        }
        withoutActuallyEscaping(body) { body in
            let box = UncheckedSendable(body)
            DispatchQueue.concurrentPerform(iterations: count) { box.value($0) }
        }
    }
}

/// Carries a non-Sendable value (a closure over raw buffers) into concurrent work whose
/// disjoint writes the caller guarantees.
public struct UncheckedSendable<T>: @unchecked Sendable {
    public let value: T
    public init(_ value: T) { self.value = value }
}
