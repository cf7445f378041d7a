/// A frozen open-addressing hash map from `UInt64` to `Int64`, for the two hot look-ups:
/// trie transitions (node, scalar) and BPE merges (left id, right id). A few times faster than
/// `Dictionary` here because the hash is one multiply and nothing is boxed.
struct IntMap: Sendable {
    private var keys: [UInt64]
    private var values: [Int64]
    /// Occupancy; keys alone cannot mark empty slots because every key is valid.
    private var used: [Bool]
    private var mask: Int
    private var shift: UInt64
    private(set) var count = 0

    init(capacity: Int) {
        var size = 16
        while size < capacity * 2 { size *= 2 }
        keys = [UInt64](repeating: 0, count: size)
        values = [Int64](repeating: 0, count: size)
        used = [Bool](repeating: false, count: size)
        mask = size - 1
        shift = UInt64(64 - size.trailingZeroBitCount)
    }

    @inline(__always)
    private func slot(_ key: UInt64) -> Int {
        Int(truncatingIfNeeded: (key &* 0x9E37_79B9_7F4A_7C15) >> shift)
    }

    @inline(__always)
    func get(_ key: UInt64) -> Int64? {
        var index = slot(key)
        while used[index] {
            if keys[index] == key { return values[index] }
            index = (index + 1) & mask
        }
        return nil
    }

    /// Inserts or overwrites; grows at half full.
    mutating func set(_ key: UInt64, _ value: Int64) {
        if (count + 1) * 2 > keys.count { grow() }
        var index = slot(key)
        while used[index] {
            if keys[index] == key { values[index] = value; return }
            index = (index + 1) & mask
        }
        used[index] = true
        keys[index] = key
        values[index] = value
        count += 1
    }

    private mutating func grow() {
        var bigger = IntMap(capacity: keys.count)
        for index in 0..<keys.count where used[index] { bigger.set(keys[index], values[index]) }
        self = bigger
    }
}
