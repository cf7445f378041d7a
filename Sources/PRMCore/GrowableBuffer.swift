/// Activation storage that grows to the largest batch seen and is then reused.
///
/// Allocating fresh activation buffers per forward pass costs a page fault per 4 KiB on first
/// touch (hundreds of MB for a 32×128 MiniLM batch, ~20% of its run time), so each model keeps
/// its buffers. Contents are not cleared: forward kernels overwrite what they use, and gradient
/// buffers are zeroed explicitly with `zeroed(count)`.
public final class GrowableBuffer: @unchecked Sendable {
    public private(set) var capacity = 0
    public private(set) var data: UnsafeMutablePointer<Float>

    public init() { data = .allocate(capacity: 1) }
    deinit { data.deallocate() }

    /// A buffer of at least `count` floats (previous contents are not kept when it grows).
    public func ensure(_ count: Int) -> UnsafeMutablePointer<Float> {
        if count > capacity {
            data.deallocate()
            capacity = max(count, capacity + capacity / 2)
            data = .allocate(capacity: capacity)
        }
        return data
    }

    /// A buffer of at least `count` floats whose first `kept` floats survive growing (a KV cache).
    public func ensure(_ count: Int, keeping kept: Int) -> UnsafeMutablePointer<Float> {
        if count > capacity {
            let grownCapacity = max(count, capacity + capacity / 2)
            let grown = UnsafeMutablePointer<Float>.allocate(capacity: grownCapacity)
            grown.update(from: data, count: min(kept, capacity))
            data.deallocate()
            data = grown
            capacity = grownCapacity
        }
        return data
    }

    /// `ensure(count)` with the first `count` floats set to zero (gradients accumulate into these).
    public func zeroed(_ count: Int) -> UnsafeMutablePointer<Float> {
        let p = ensure(count)
        p.update(repeating: 0, count: count)
        return p
    }
}
