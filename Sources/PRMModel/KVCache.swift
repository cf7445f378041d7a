import Foundation
import PRMCore

/// Keys and values of a prefix, per layer, for incremental decoding and for scoring many
/// continuations of one shared prefix.
public final class KVCache {
    public private(set) var count = 0
    let keys: [GrowableBuffer], values: [GrowableBuffer]
    let width: Int

    init(layers: Int, width: Int) {
        keys = (0..<layers).map { _ in GrowableBuffer() }
        values = (0..<layers).map { _ in GrowableBuffer() }
        self.width = width
    }

    /// Room for `rows` rows per layer, the cached ones kept. A decoder that knows its longest
    /// sequence reserves it once, and every later append writes in place.
    public func reserve(rows: Int) {
        for buffer in keys + values { _ = buffer.ensure(rows * width, keeping: count * width) }
    }

    /// Appends rows (T, C) of keys and values from a packed (T, 3C) QKV block.
    func append(layer: Int, qkv: UnsafePointer<Float>, rows T: Int, at start: Int) {
        append(layer: layer, keys: qkv + width, values: qkv + 2 * width, rowStride: 3 * width, rows: T, at: start)
    }

    /// Appends T rows of `width` keys and values, row t at `keys + t · rowStride` (a grouped-query
    /// model's rows sit inside its packed Q|K|V rows, which are wider than its keys).
    func append(layer: Int, keys source: UnsafePointer<Float>, values valueSource: UnsafePointer<Float>, rowStride: Int,
                rows T: Int, at start: Int) {
        let C = width
        // Capacity grows geometrically, keeping the cached rows.
        let k = keys[layer].ensure((start + T) * C, keeping: start * C)
        let v = values[layer].ensure((start + T) * C, keeping: start * C)
        for t in 0..<T {
            (k + (start + t) * C).update(from: source + t * rowStride, count: C)
            (v + (start + t) * C).update(from: valueSource + t * rowStride, count: C)
        }
    }

    func setCount(_ n: Int) { count = n }
}
