/// One rank's part of an optimizer step's global batch: a contiguous run of the batch's
/// examples. `offset` and `total` place it in the global batch, so a trainer normalises its loss
/// by the global size (the ranks' summed gradients are then the single process's) and seeds its
/// dropout masks by the global position of each micro-batch.
public struct BatchShard: Sendable {
    /// The example indices this rank computes.
    public let indices: [Int]
    /// Position of the first of them in the global batch.
    public let offset: Int
    /// Examples in the global batch, over all ranks.
    public let total: Int

    public init(indices: [Int], offset: Int, total: Int) {
        self.indices = indices
        self.offset = offset
        self.total = total
    }
}
