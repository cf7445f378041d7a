import Foundation

/// Work splitting across the machine's cores. Element-wise kernels and attention call this;
/// sgemm threads itself inside OpenBLAS.
public enum Parallel {
    /// Number of worker threads used for element-wise and attention work.
    public static let cores: Int = max(1, ProcessInfo.processInfo.activeProcessorCount)

    /// Runs `body(start, end)` over `0..<count` in contiguous chunks, in parallel when
    /// `count * costPerItem` is large enough to pay for the dispatch (about 20 µs).
    public static func forRange(_ count: Int, costPerItem: Int = 1, _ body: (Range<Int>) -> Void) {
        guard count > 0 else { return }
        let chunks = min(count, cores)
        if chunks == 1 || count * costPerItem < 32_768 {
            body(0..<count)
            return
        }
        withoutActuallyEscaping(body) { body in
            let box = UncheckedSendable(body)
            DispatchQueue.concurrentPerform(iterations: chunks) { chunk in
                let start = count * chunk / chunks
                let end = count * (chunk + 1) / chunks
                if start < end { box.value(start..<end) }
            }
        }
    }

    /// Runs `body(i)` for each `i` in `0..<count`, items spread over the cores
    /// (dynamic: good for uneven items such as attention over ragged sequences).
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
