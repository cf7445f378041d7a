/// A ragged batch of sequences packed back to back into one (N, C) activation matrix.
/// Linear layers see one tall matrix (no padding FLOPs); attention and pooling use the offsets.
public struct PackedBatch: Sendable, Equatable {
    public let lengths: [Int]
    public let starts: [Int]
    /// Total tokens N = Σ lengths.
    public let tokens: Int
    /// The longest sequence's length (0 for an empty batch).
    public let maxLength: Int
    /// Offsets of each sequence's (T_b, T_b) attention-probability blocks, per head.
    private let squareStarts: [Int]
    private let squareTotal: Int

    public init(lengths: [Int]) {
        precondition(lengths.allSatisfy { $0 >= 0 }, "negative sequence length")
        self.lengths = lengths
        var starts: [Int] = [], squares: [Int] = []
        var tokens = 0, square = 0
        for t in lengths {
            starts.append(tokens); squares.append(square)
            tokens += t; square += t * t
        }
        self.starts = starts
        self.tokens = tokens
        self.maxLength = lengths.max() ?? 0
        self.squareStarts = squares
        self.squareTotal = square
    }

    public var count: Int { lengths.count }

    /// Floats needed for all heads' attention probabilities.
    public func probsCount(heads: Int) -> Int { squareTotal * heads }

    /// Offset of sequence b's head h probability block.
    @inline(__always)
    public func probsOffset(_ b: Int, head h: Int, heads: Int) -> Int {
        squareStarts[b] * heads + h * lengths[b] * lengths[b]
    }

    /// Each sequence's rows.
    public var sequenceSpans: [Range<Int>] { lengths.indices.map { starts[$0]..<(starts[$0] + lengths[$0]) } }

    /// Row index of sequence b's last token.
    public func lastRow(_ b: Int) -> Int { starts[b] + lengths[b] - 1 }

    /// Indices grouped longest-first into batches of at most `tokensPerBatch` tokens. Packing
    /// already wastes nothing on padding; sorting keeps attention work even across the cores.
    /// Every caller that batches under a token budget (embedder, reward model) groups this way.
    public static func lengthGroups(_ lengths: [Int], tokensPerBatch: Int) -> [[Int]] {
        let order = lengths.indices.sorted { lengths[$0] > lengths[$1] }
        var groups: [[Int]] = [], current: [Int] = [], tokens = 0
        for index in order {
            if !current.isEmpty && tokens + lengths[index] > tokensPerBatch {
                groups.append(current)
                current = []
                tokens = 0
            }
            current.append(index)
            tokens += lengths[index]
        }
        if !current.isEmpty { groups.append(current) }
        return groups
    }
}
