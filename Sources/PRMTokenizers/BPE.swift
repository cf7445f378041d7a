import Foundation

/// The `BPE` model (tokenizers/src/models/bpe/model.rs `merge_word`, word.rs `merge_all`).
/// A piece starts as one symbol per character; merges are applied by rank, lowest first and
/// leftmost among equals, with the reference's priority queue so its results (quirks included)
/// are reproduced exactly. Merged words are cached.
struct BPEModel: TokenModel, Decodable {
    private let vocabulary: [String: Int]
    private let tokens: [String?]
    /// (left id, right id) → rank << 32 | merged id.
    private let merges: IntMap
    /// Ids of single-character tokens below U+0400 (all of the byte-level alphabet), -1 if none.
    private let smallCharacterIDs: [Int32]
    private let unknownID: Int32?
    private let continuingSubwordPrefix: String?
    private let endOfWordSuffix: String?
    private let fuseUnknown: Bool
    private let byteFallback: Bool
    private let ignoreMerges: Bool
    private let cache = WordCache()

    private enum CodingKeys: String, CodingKey {
        case vocab, merges, dropout
        case unkToken = "unk_token"
        case continuingSubwordPrefix = "continuing_subword_prefix"
        case endOfWordSuffix = "end_of_word_suffix"
        case fuseUnk = "fuse_unk"
        case byteFallback = "byte_fallback"
        case ignoreMerges = "ignore_merges"
    }

    init(from decoder: any Decoder) throws {
        let keys = try decoder.container(keyedBy: CodingKeys.self)
        let vocabulary = try keys.decode([String: Int].self, forKey: .vocab)
        guard keys.contains(.merges) else { throw ConfigProblem(.missingKey, "missing field 'model.merges'") }
        // Merges come as `["a", "b"]` pairs (tokenizers ≥ 0.20) or legacy `"a b"` strings.
        let pairs: [[String]]
        if let decoded = try? keys.decode([[String]].self, forKey: .merges) {
            pairs = decoded
        } else if let lines = try? keys.decode([String].self, forKey: .merges) {
            pairs = try Self.splitLegacyMerges(lines)
        } else {
            throw ConfigProblem(.badMerges, "bad merges: 'model.merges' is neither [\"a\", \"b\"] pairs nor \"a b\" strings")
        }
        if let dropout = try keys.decodeIfPresent(Double.self, forKey: .dropout), dropout > 0 {
            throw ConfigProblem(.unsupported, "unsupported BPE dropout \(dropout): encoding would not be deterministic")
        }
        try self.init(
            vocabulary: vocabulary, merges: pairs,
            unkToken: try keys.decodeIfPresent(String.self, forKey: .unkToken),
            continuingSubwordPrefix: try keys.decodeIfPresent(String.self, forKey: .continuingSubwordPrefix),
            endOfWordSuffix: try keys.decodeIfPresent(String.self, forKey: .endOfWordSuffix),
            fuseUnknown: try keys.decodeIfPresent(Bool.self, forKey: .fuseUnk) ?? false,
            byteFallback: try keys.decodeIfPresent(Bool.self, forKey: .byteFallback) ?? false,
            ignoreMerges: try keys.decodeIfPresent(Bool.self, forKey: .ignoreMerges) ?? false)
    }

    /// The reference's `convert_merges_to_hashmap`: `#version` lines are skipped, every other
    /// line must be exactly two parts separated by one space.
    static func splitLegacyMerges(_ lines: [String]) throws -> [[String]] {
        var pairs: [[String]] = []
        for line in lines where !line.hasPrefix("#version") {
            let parts = line.split(separator: " ", omittingEmptySubsequences: false)
            guard parts.count == 2 else {
                throw ConfigProblem(.badMerges, "bad merges: merge \(pairs.count + 1) '\(line)' is not two tokens separated by one space")
            }
            pairs.append(parts.map(String.init))
        }
        return pairs
    }

    init(vocabulary: [String: Int], merges: [[String]], unkToken: String?, continuingSubwordPrefix: String?,
         endOfWordSuffix: String?, fuseUnknown: Bool, byteFallback: Bool, ignoreMerges: Bool) throws {
        tokens = try makeIDTable(vocabulary, section: "model.vocab")
        if let unkToken {
            guard let id = vocabulary[unkToken] else {
                throw ConfigProblem(.missingToken, "model.vocab has no unk token '\(unkToken)'")
            }
            unknownID = Int32(id)
        } else {
            unknownID = nil
        }
        var small = [Int32](repeating: -1, count: 0x400)
        for (token, id) in vocabulary {
            var scalars = token.unicodeScalars.makeIterator()
            if let only = scalars.next(), scalars.next() == nil, only.value < 0x400 { small[Int(only.value)] = Int32(id) }
        }
        smallCharacterIDs = small

        // As the reference's BpeBuilder::build: the merged token is left + right without the
        // continuation prefix's length in bytes, and all three must be in the vocabulary.
        let prefixLength = continuingSubwordPrefix?.utf8.count ?? 0
        var table = IntMap(capacity: merges.count)
        for (rank, pair) in merges.enumerated() {
            guard pair.count == 2 else {
                throw ConfigProblem(.badMerges, "bad merges: merge \(rank + 1) has \(pair.count) parts, expected 2")
            }
            let (left, right) = (pair[0], pair[1])
            guard let leftID = vocabulary[left] else {
                throw ConfigProblem(.badMerges, "bad merges: merge \(rank + 1) '\(left) \(right)': '\(left)' is not in the vocabulary")
            }
            guard let rightID = vocabulary[right] else {
                throw ConfigProblem(.badMerges, "bad merges: merge \(rank + 1) '\(left) \(right)': '\(right)' is not in the vocabulary")
            }
            let rightBytes = Array(right.utf8)
            guard rightBytes.count >= prefixLength else {
                throw ConfigProblem(.badMerges, "bad merges: merge \(rank + 1): '\(right)' is shorter than the continuation prefix")
            }
            let merged = String(decoding: Array(left.utf8) + rightBytes[prefixLength...], as: UTF8.self)
            guard let mergedID = vocabulary[merged] else {
                throw ConfigProblem(.badMerges, "bad merges: merge \(rank + 1) '\(left) \(right)' makes '\(merged)', which is not in the vocabulary")
            }
            table.set(Self.pairKey(Int32(leftID), Int32(rightID)), Int64(rank) << 32 | Int64(mergedID))
        }
        self.merges = table
        self.vocabulary = vocabulary
        self.continuingSubwordPrefix = continuingSubwordPrefix
        self.endOfWordSuffix = endOfWordSuffix
        self.fuseUnknown = fuseUnknown
        self.byteFallback = byteFallback
        self.ignoreMerges = ignoreMerges
    }

    @inline(__always)
    private static func pairKey(_ left: Int32, _ right: Int32) -> UInt64 {
        UInt64(UInt32(bitPattern: left)) << 32 | UInt64(UInt32(bitPattern: right))
    }

    /// (rank, merged id) for a pair, if the pair merges.
    @inline(__always)
    private func merge(_ left: Int32, _ right: Int32) -> (rank: Int32, id: Int32)? {
        guard let packed = merges.get(Self.pairKey(left, right)) else { return nil }
        return (Int32(truncatingIfNeeded: packed >> 32), Int32(truncatingIfNeeded: packed))
    }

    func id(of token: String) -> Int? { vocabulary[token] }

    func token(of id: Int) -> String? { id >= 0 && id < tokens.count ? tokens[id] : nil }

    var idCount: Int { tokens.count }

    var vocabularyCount: Int { vocabulary.count }

    func tokenize(_ piece: UnsafeBufferPointer<UInt32>, into ids: inout [Int]) {
        guard !piece.isEmpty else { return }
        if ignoreMerges, let id = vocabulary[Self.string(piece)] {
            ids.append(id)
            return
        }
        let key = Array(piece)
        if let cached = cache.get(key) {
            for id in cached { ids.append(Int(id)) }
            return
        }
        var symbols = initialSymbols(piece)
        mergeAll(&symbols)
        let result = symbols.map(\.id)
        // As the reference, only words shorter than 256 bytes are cached.
        if piece.count < 256 { cache.set(key, result) }
        for id in result { ids.append(Int(id)) }
    }

    private static func string(_ scalars: UnsafeBufferPointer<UInt32>) -> String {
        var view = String.UnicodeScalarView()
        for code in scalars { if let scalar = Unicode.Scalar(code) { view.append(scalar) } }
        return String(view)
    }

    struct Symbol {
        var id: Int32
        var previous: Int
        var next: Int
        /// Zero once merged into the symbol on its left.
        var length: Int
    }

    /// `merge_word`: one symbol per character (with the continuation prefix on all but the first
    /// and the end-of-word suffix on the last); unknown characters become byte-fallback tokens,
    /// the unk token (consecutive ones fused when `fuse_unk`), or nothing when there is no unk
    /// token (the reference drops them too).
    private func initialSymbols(_ piece: UnsafeBufferPointer<UInt32>) -> [Symbol] {
        var symbols: [Symbol] = []
        symbols.reserveCapacity(piece.count)
        func add(_ id: Int32, _ length: Int) {
            if !symbols.isEmpty { symbols[symbols.count - 1].next = symbols.count }
            symbols.append(Symbol(id: id, previous: symbols.count - 1, next: -1, length: length))
        }
        let plain = continuingSubwordPrefix == nil && endOfWordSuffix == nil
        var pendingUnknown: (id: Int32, length: Int)? = nil
        for index in 0..<piece.count {
            let code = piece[index]
            var text: String? = nil
            var id: Int32 = -1
            if plain && code < 0x400 {
                id = smallCharacterIDs[Int(code)]
            } else {
                var view = String.UnicodeScalarView()
                if let scalar = Unicode.Scalar(code) { view.append(scalar) }
                var candidate = String(view)
                if index > 0, let prefix = continuingSubwordPrefix { candidate = prefix + candidate }
                if index == piece.count - 1, let suffix = endOfWordSuffix { candidate += suffix }
                text = candidate
                id = vocabulary[candidate].map { Int32($0) } ?? -1
            }
            let length = Self.utf8Length(code)
            if id >= 0 {
                if let unknown = pendingUnknown { add(unknown.id, unknown.length); pendingUnknown = nil }
                add(id, length)
                continue
            }
            if byteFallback {
                let bytes = Array((text ?? Self.string(UnsafeBufferPointer(rebasing: piece[index...index]))).utf8)
                let fallback = bytes.map { vocabulary[String(format: "<0x%02X>", $0)] }
                if fallback.allSatisfy({ $0 != nil }) {
                    for case let id? in fallback { add(Int32(id), 1) }
                    continue
                }
            }
            guard let unknownID else { continue }
            if let unknown = pendingUnknown {
                if fuseUnknown {
                    pendingUnknown = (unknown.id, unknown.length + length)
                    continue
                }
                add(unknown.id, unknown.length)
            }
            pendingUnknown = (unknownID, length)
        }
        if let unknown = pendingUnknown { add(unknown.id, unknown.length) }
        return symbols
    }

    private static func utf8Length(_ code: UInt32) -> Int {
        code < 0x80 ? 1 : code < 0x800 ? 2 : code < 0x10000 ? 3 : 4
    }

    /// `Word::merge_all`: a min-queue of (rank, position); a popped entry is applied if its
    /// symbol is still alive, has a right neighbour, and that pair still merges into the same id
    /// (the reference checks the merged id, not the rank); new pairs with both neighbours are
    /// queued.
    private func mergeAll(_ symbols: inout [Symbol]) {
        var queue = MergeQueue()
        if symbols.count > 1 {
            for index in 0..<symbols.count - 1 {
                if let pair = merge(symbols[index].id, symbols[index + 1].id) {
                    queue.push(rank: pair.rank, position: index, id: pair.id)
                }
            }
        }
        while let top = queue.pop() {
            let position = top.position
            guard symbols[position].length != 0, symbols[position].next != -1 else { continue }
            let nextPosition = symbols[position].next
            let right = symbols[nextPosition]
            guard let pair = merge(symbols[position].id, right.id), pair.id == top.id else { continue }
            symbols[position].id = top.id
            symbols[position].length += right.length
            symbols[position].next = right.next
            symbols[nextPosition].length = 0
            if right.next >= 0 && right.next < symbols.count { symbols[right.next].previous = position }
            let current = symbols[position]
            if current.previous >= 0, let pair = merge(symbols[current.previous].id, current.id) {
                queue.push(rank: pair.rank, position: current.previous, id: pair.id)
            }
            if current.next >= 0 && current.next < symbols.count,
               let pair = merge(current.id, symbols[current.next].id) {
                queue.push(rank: pair.rank, position: position, id: pair.id)
            }
        }
        symbols.removeAll { $0.length == 0 }
    }
}

/// A binary min-heap of pending merges ordered by (rank, position), as the reference's
/// `BinaryHeap<Merge>` with its reversed `Ord`.
struct MergeQueue {
    struct Entry {
        let rank: Int32
        let position: Int
        let id: Int32
        @inline(__always)
        func precedes(_ other: Entry) -> Bool {
            rank != other.rank ? rank < other.rank : position < other.position
        }
    }

    private var heap: [Entry] = []

    mutating func push(rank: Int32, position: Int, id: Int32) {
        heap.append(Entry(rank: rank, position: position, id: id))
        var child = heap.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            guard heap[child].precedes(heap[parent]) else { break }
            heap.swapAt(child, parent)
            child = parent
        }
    }

    mutating func pop() -> Entry? {
        guard let top = heap.first else { return nil }
        let last = heap.removeLast()
        if !heap.isEmpty {
            heap[0] = last
            var parent = 0
            while true {
                let left = 2 * parent + 1
                guard left < heap.count else { break }
                var best = left
                if left + 1 < heap.count && heap[left + 1].precedes(heap[left]) { best = left + 1 }
                guard heap[best].precedes(heap[parent]) else { break }
                heap.swapAt(best, parent)
                parent = best
            }
        }
        return top
    }
}

/// Merged words by their characters, shared by every thread that encodes with the model.
/// Split into independently locked shards so parallel batches rarely wait on each other;
/// bounded: once a shard is full it stops inserting, like the reference's cache.
final class WordCache: @unchecked Sendable {
    // @unchecked: each shard's dictionary is only touched while holding that shard's lock.
    private final class Shard {
        let lock = NSLock()
        var words: [[UInt32]: [Int32]] = [:]
    }

    private let shards: [Shard]
    private let capacityPerShard: Int

    init(capacity: Int = 100_000, shards: Int = 64) {
        self.shards = (0..<shards).map { _ in Shard() }
        self.capacityPerShard = max(1, capacity / shards)
    }

    /// A cheap spread over the shards from the word's length and its ends.
    @inline(__always)
    private func shard(_ key: [UInt32]) -> Shard {
        guard let first = key.first, let last = key.last else { return shards[0] }
        let mix = UInt32(truncatingIfNeeded: key.count) &* 0x9E37_79B1 ^ first &* 0x85EB_CA6B ^ last &* 0xC2B2_AE35
        return shards[Int(mix >> 7) % shards.count]
    }

    func get(_ key: [UInt32]) -> [Int32]? {
        let shard = shard(key)
        shard.lock.lock()
        defer { shard.lock.unlock() }
        return shard.words[key]
    }

    func set(_ key: [UInt32], _ value: [Int32]) {
        let shard = shard(key)
        shard.lock.lock()
        defer { shard.lock.unlock() }
        if shard.words.count < capacityPerShard { shard.words[key] = value }
    }
}
