/// A trie over Unicode scalars whose nodes may carry a token id. WordPiece's greedy
/// longest-match-first and the added-token matcher both walk it one scalar at a time, so a
/// match never builds a `String`.
struct ScalarTrie: Sendable {
    private var transitions = IntMap(capacity: 1024)
    /// Token id at each node, -1 where no token ends. Node 0 is the root.
    private var values: [Int32] = [-1]

    static let root: Int32 = 0

    @inline(__always)
    private static func key(_ node: Int32, _ scalar: UInt32) -> UInt64 {
        UInt64(UInt32(bitPattern: node)) << 32 | UInt64(scalar)
    }

    /// The node reached from `node` by `scalar`, or -1.
    @inline(__always)
    func child(_ node: Int32, _ scalar: UInt32) -> Int32 {
        guard let next = transitions.get(Self.key(node, scalar)) else { return -1 }
        return Int32(truncatingIfNeeded: next)
    }

    @inline(__always)
    func value(_ node: Int32) -> Int32 { values[Int(node)] }

    /// The node reached from the root by `scalars`, or -1.
    func node<S: Sequence>(for scalars: S) -> Int32 where S.Element == UInt32 {
        var node = Self.root
        for scalar in scalars {
            node = child(node, scalar)
            if node < 0 { return -1 }
        }
        return node
    }

    /// Adds `scalars` with `id`; a later insert of the same key overwrites the id.
    mutating func insert<S: Sequence>(_ scalars: S, id: Int32) where S.Element == UInt32 {
        var node = Self.root
        for scalar in scalars {
            let next = child(node, scalar)
            if next >= 0 {
                node = next
            } else {
                let created = Int32(values.count)
                values.append(-1)
                transitions.set(Self.key(node, scalar), Int64(created))
                node = created
            }
        }
        values[Int(node)] = id
    }

    /// The longest key starting at `text[start]` and ending before `end`, walking from `node`:
    /// its end index and id, or nil.
    @inline(__always)
    func longestMatch(in text: UnsafeBufferPointer<UInt32>, from start: Int, to end: Int,
                      startingAt node: Int32 = ScalarTrie.root) -> (end: Int, id: Int32)? {
        var node = node
        var best: (end: Int, id: Int32)? = nil
        var index = start
        while index < end {
            node = child(node, text[index])
            if node < 0 { break }
            index += 1
            let id = values[Int(node)]
            if id >= 0 { best = (index, id) }
        }
        return best
    }
}
