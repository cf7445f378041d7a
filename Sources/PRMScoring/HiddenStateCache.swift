import PRMModel

/// A least-recently-used cache of pooled states h, keyed by the sequence they were computed
/// from. With the linear head h does not depend on the user, so ranking one candidate set for
/// many users, or scoring a candidate again, costs a look-up and a dot product: the encoder's
/// counterpart of prefix sharing. Vectors live in one flat buffer; the recency list is two
/// index arrays, so a hit allocates nothing.
///
/// Storage grows with use, doubling up to `capacity`: a server started with room for millions
/// of entries holds only what its requests have filled, and a capacity its memory cannot hold
/// fails no allocation at start.
final class HiddenStateCache {
    let capacity: Int
    let width: Int
    private var slots: [ModelSequence: Int] = [:]
    private var keys: [ModelSequence?] = []
    /// (slots, width), one row per slot in use.
    private var vectors: [Float] = []
    /// Doubly linked recency list over slots; `head` is the most recent, `tail` the next to go.
    private var newer: [Int] = [], older: [Int] = []
    private var head = -1, tail = -1
    private var used = 0
    /// Slots the first growth makes room for.
    static let initialSlots = 64

    init(capacity: Int, width: Int) {
        self.capacity = capacity
        self.width = width
    }

    /// The most entries that fit in `memory` bytes and `entries`: each holds its vector (4 bytes
    /// a float) and its key, whose token ids are at most the model's window (`maxTokens`), plus
    /// the fixed part of the key, its dictionary slot and recency links (`entryOverhead`).
    static func capacity(entries: Int, memory: Int, width: Int, maxTokens: Int) -> Int {
        min(entries, memory / (4 * width + 4 * maxTokens + entryOverhead))
    }

    /// Bytes of an entry besides its vector and token ids: two copies of the key's fields (the
    /// slot table and the dictionary), two array headers, the dictionary's spare room and links.
    static let entryOverhead = 256

    /// Entries the storage has room for now: grows with use, never beyond `capacity`.
    var reservedEntries: Int { vectors.capacity / max(width, 1) }

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
            appendSlot()
        } else {
            slot = tail
            if let evicted = keys[slot] { slots[evicted] = nil }
        }
        keys[slot] = key
        slots[key] = slot
        vectors.withUnsafeMutableBufferPointer { ($0.baseAddress! + slot * width).update(from: h, count: width) }
        touch(slot)
    }

    /// Storage for one more slot. When full, room doubles (up to `capacity`): amortised O(1)
    /// per insert, and at most twice the memory of the entries held.
    private func appendSlot() {
        if vectors.count + width > vectors.capacity {
            let room = min(capacity, max(Self.initialSlots, 2 * keys.count))
            vectors.reserveCapacity(room * width)
            keys.reserveCapacity(room)
            newer.reserveCapacity(room)
            older.reserveCapacity(room)
        }
        vectors.append(contentsOf: repeatElement(0, count: width))
        keys.append(nil)
        newer.append(-1)
        older.append(-1)
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
