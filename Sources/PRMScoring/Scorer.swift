import Foundation
import PRMCore
import PRMModel

/// Scores (user, prompt, reply) items with a trained reward model: the one scoring path of
/// `prm score`, `prm eval`, the service and the PPO loop.
///
/// Preparation (`preparer`: tokenization, user resolution, the window) has no model state and
/// may run on any thread. `score` runs the model and must not overlap itself (the model keeps
/// per-instance buffers): identical sequences are computed once, h comes from the LRU cache when
/// it holds it, and the rest runs in packed batches of at most `tokensPerBatch` tokens.
public final class Scorer {
    public let model: RewardModel
    public let preparer: InputPreparer
    public let tokensPerBatch: Int
    private let cache: HiddenStateCache?
    public private(set) var statistics = ScorerStatistics()
    private let states = GrowableBuffer()

    /// - Parameters:
    ///   - tokensPerBatch: bound on the tokens of one packed batch (activation memory grows with it).
    ///   - cacheEntries: pooled states h to keep (0: no cache); each costs C floats and its key.
    ///   - cacheMemory: bytes the cache may use at most, which may lower `cacheEntries`; the cache
    ///     takes memory as it fills, not at start.
    public init(model: RewardModel, users: UserTable, tokensPerBatch: Int = 8192, cacheEntries: Int = 0, cacheMemory: Int = .max) {
        self.model = model
        preparer = InputPreparer(model: model, users: users)
        self.tokensPerBatch = max(tokensPerBatch, model.config.maxLength)
        let capacity = HiddenStateCache.capacity(entries: cacheEntries, memory: cacheMemory, width: model.backbone.hiddenSize,
                                                 maxTokens: model.config.maxLength)
        cache = capacity > 0 ? HiddenStateCache(capacity: capacity, width: model.backbone.hiddenSize) : nil
    }

    /// A scorer for a checkpoint folder written by `prm train`; one that `ModelProbe` finds
    /// cannot score (its scores would all be null) is refused, naming the folder. The backbone
    /// infers at `precision` (`Backbone.useInferencePrecision`).
    public convenience init(checkpoint: URL, precision: Precision = .fp32, template: TextTemplate? = nil, tokensPerBatch: Int = 8192,
                            cacheEntries: Int = 0, cacheMemory: Int = .max) throws {
        let (model, users, _) = try ModelProbe.load(checkpoint, precision: precision, template: template)
        self.init(model: model, users: users, tokensPerBatch: tokensPerBatch, cacheEntries: cacheEntries, cacheMemory: cacheMemory)
    }

    public var users: UserTable { preparer.users }
    public var cachedStates: Int { cache?.count ?? 0 }
    public var cacheCapacity: Int { cache?.capacity ?? 0 }

    /// Runs the model once on an empty item and starts every compute thread, touching neither
    /// the cache nor the statistics: a server calls it before it announces itself, so that a
    /// machine that cannot start `Compute.threads` threads, or a model that cannot run, fails
    /// at start-up rather than on the first request.
    public func warmUp() {
        Parallel.startWorkers()
        let item = preparer.prepare([ScoringItem(userID: nil, prompt: "", response: "")])
        let h = UnsafeMutablePointer<Float>.allocate(capacity: model.backbone.hiddenSize)
        defer { h.deallocate() }
        model.pooledStates(item.map(\.sequence), tokensPerBatch: tokensPerBatch, into: h)
    }

    /// Prepares and scores raw items.
    public func score(_ items: [ScoringItem]) -> [ScoredItem] {
        let prepared = preparer.prepare(items)
        return zip(prepared, score(prepared)).map { item, score in
            ScoredItem(score: score, knownUser: item.knownUser, truncated: item.truncated)
        }
    }

    /// One reward per prepared item, in order.
    public func score(_ items: [PreparedItem]) -> [Float] {
        let C = model.backbone.hiddenSize
        let (h, slotOfItem) = distinctStates(items)
        return zip(items, slotOfItem).map { item, slot in model.reward(pooled: h + slot * C, user: item.user) }
    }

    /// The pooled state h of each prepared item, C floats each in order, computed as `score`
    /// computes them (once per distinct sequence, through the cache): the service fits adapted
    /// users on exactly the h it scores them with.
    public func pooledStates(_ items: [PreparedItem]) -> [Float] {
        let C = model.backbone.hiddenSize
        let (h, slotOfItem) = distinctStates(items)
        var out = [Float](repeating: 0, count: items.count * C)
        out.withUnsafeMutableBufferPointer { buffer in
            for (i, slot) in slotOfItem.enumerated() { (buffer.baseAddress! + i * C).update(from: h + slot * C, count: C) }
        }
        return out
    }

    /// h of every distinct sequence of `items` (in `states`, valid until the next call), and
    /// each item's slot in it.
    private func distinctStates(_ items: [PreparedItem]) -> (h: UnsafeMutablePointer<Float>, slotOfItem: [Int]) {
        let C = model.backbone.hiddenSize
        var slots: [ModelSequence: Int] = [:]
        var unique: [ModelSequence] = []
        let slotOfItem = items.map { item in
            if let slot = slots[item.sequence] { return slot }
            slots[item.sequence] = unique.count
            unique.append(item.sequence)
            return unique.count - 1
        }
        let h = states.ensure(max(unique.count, 1) * C)
        var missing: [Int] = []
        for (slot, sequence) in unique.enumerated() where !(cache?.lookup(sequence, into: h + slot * C) ?? false) {
            missing.append(slot)
        }
        if !missing.isEmpty {
            let computed = UnsafeMutablePointer<Float>.allocate(capacity: missing.count * C)
            defer { computed.deallocate() }
            model.pooledStates(missing.map { unique[$0] }, tokensPerBatch: tokensPerBatch, into: computed)
            for (k, slot) in missing.enumerated() {
                (h + slot * C).update(from: computed + k * C, count: C)
                cache?.insert(unique[slot], computed + k * C)
            }
        }
        statistics.items += items.count
        statistics.uniqueSequences += unique.count
        if cache != nil {
            statistics.cacheHits += unique.count - missing.count
            statistics.cacheMisses += missing.count
        }
        statistics.tokensComputed += missing.reduce(0) { $0 + unique[$1].length }
        return (h, slotOfItem)
    }
}
