import PRMModel

/// A least-recently-used cache of pooled states h, keyed by the sequence they were computed
/// from. With the linear head h does not depend on the user, so ranking one candidate set for
/// many users, or scoring a candidate again, costs a look-up and a dot product: the encoder's
/// counterpart of prefix sharing. Vectors live in one flat buffer; the recency list is two
/// index arrays, so a hit allocates nothing.
final class HiddenStateCache {
    let capacity: Int
    let width: Int
    private var slots: [ModelSequence: Int] = [:]
    private var keys: [ModelSequence?]
    private var vectors: [Float]
    /// Doubly linked recency list over slots; `head` is the most recent, `tail` the next to go.
    private var newer: [Int], older: [Int]
    private var head = -1, tail = -1
    private var used = 0

    init(capacity: Int, width: Int) {
        self.capacity = capacity
        self.width = width
        keys = Array(repeating: nil, count: capacity)
        vectors = Array(repeating: 0, count: capacity * width)
        newer = Array(repeating: -1, count: capacity)
        older = Array(repeating: -1, count: capacity)
    }

    var count: Int { used }

    /// Copies the cached h for `key` into `out` and marks it recent; false when absent.
    func lookup(_ key: ModelSequence, into out: UnsafeMutablePointer<Float>) -> Bool {
        guard let slot = slots[key] else { return false }
        touch(slot)
        vectors.withUnsafeBufferPointer { out.update(from: $0.baseAddress! + slot * width, count: width) }
        return true
    }

    /// Stores h for `key`, evicting the least recently used entry when full.
    func insert(_ key: ModelSequence, _ h: UnsafePointer<Float>) {
        guard capacity > 0 else { return }
        let slot: Int
        if let existing = slots[key] {
            slot = existing
        } else if used < capacity {
            slot = used
            used += 1
        } else {
            slot = tail
            if let evicted = keys[slot] { slots[evicted] = nil }
        }
        keys[slot] = key
        slots[key] = slot
        vectors.withUnsafeMutableBufferPointer { ($0.baseAddress! + slot * width).update(from: h, count: width) }
        touch(slot)
    }

    /// Moves `slot` to the front of the recency list.
    private func touch(_ slot: Int) {
        guard head != slot else { return }
        // Unlink (a fresh slot is in no list yet).
        if newer[slot] >= 0 { older[newer[slot]] = older[slot] }
        if older[slot] >= 0 { newer[older[slot]] = newer[slot] }
        if tail == slot { tail = newer[slot] >= 0 ? newer[slot] : slot }
        // Link at the front.
        newer[slot] = -1
        older[slot] = head
        if head >= 0 { newer[head] = slot }
        head = slot
        if tail < 0 { tail = slot }
    }
}
