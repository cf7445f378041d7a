/// The examples each optimizer step takes: every epoch visits all `count` examples once, in an
/// order that is a fixed function of the seed and the epoch, `batchSize` at a time (an epoch's
/// last batch may be shorter). A run resumed at any step sees exactly the batches an
/// uninterrupted one would, which is what makes `--resume` exact.
public struct EpochBatches {
    public let count: Int
    public let batchSize: Int
    public let seed: UInt64
    /// The order of the epoch the last step fell in, kept so each epoch is shuffled once.
    private var current: (epoch: Int, order: [Int])?

    public init(count: Int, batchSize: Int, seed: UInt64) {
        precondition(batchSize >= 1, "batch size must be positive")
        self.count = count
        self.batchSize = batchSize
        self.seed = seed
    }

    public var stepsPerEpoch: Int { (count + batchSize - 1) / batchSize }

    /// The example order of `epoch`.
    public func order(epoch: Int) -> [Int] {
        var rng = RandomSource(seed: seed &+ 0x9E37 &* UInt64(epoch + 1))
        return Array(0..<count).shuffled(using: &rng)
    }

    /// The example indices of optimizer step `step` (counted from the start of training).
    public mutating func indices(step: Int) -> [Int] {
        let epoch = step / stepsPerEpoch
        let order: [Int]
        if let current, current.epoch == epoch {
            order = current.order
        } else {
            order = self.order(epoch: epoch)
            current = (epoch, order)
        }
        let offset = (step % stepsPerEpoch) * batchSize
        return Array(order[offset..<min(offset + batchSize, count)])
    }
}
