import PRMCore

/// A causal backbone that can compute a prefix once and run many continuations after it (the
/// KV cache): the reward model scores the N candidates of one prompt this way. A bidirectional
/// encoder cannot: every token attends to the reply.
public protocol PrefixSharingBackbone: Backbone {
    associatedtype PrefixCache
    func makePrefixCache() -> PrefixCache
    /// Appends `count` rows of input embeddings to the cache.
    func extendPrefix(_ cache: PrefixCache, embeddings: UnsafePointer<Float>, count: Int)
    /// Hidden states (N, C) of continuations after the cached prefix; the cache is unchanged.
    func continuationStates(after cache: PrefixCache, embeddings: UnsafePointer<Float>, batch: PackedBatch) -> UnsafePointer<Float>
}

extension GPT2Model: PrefixSharingBackbone {
    public func makePrefixCache() -> KVCache { makeCache() }

    public func extendPrefix(_ cache: KVCache, embeddings: UnsafePointer<Float>, count: Int) {
        _ = extend(cache, embeddings: embeddings, count: count)
    }

    public func continuationStates(after cache: KVCache, embeddings: UnsafePointer<Float>, batch: PackedBatch) -> UnsafePointer<Float> {
        continuations(after: cache, embeddings: embeddings, batch: batch)
    }
}

/// `LlamaBackbone` implements the protocol's methods itself (on `LlamaLayerStack`).
extension LlamaBackbone: PrefixSharingBackbone {}
