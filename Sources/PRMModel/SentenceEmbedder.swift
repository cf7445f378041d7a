import Foundation
import PRMCore
import PRMTokenizers

/// Mean-pooled, L2-normalised sentence embeddings (the sentence-transformers pipeline of
/// all-MiniLM-L6-v2): tokenize, pack ragged batches, encode with the backbone's inference pass,
/// pool each sequence over its own tokens. Not for concurrent use: it reuses its buffers.
public final class SentenceEmbedder {
    public let model: LoadedBackbone
    /// Longest sequence kept, special tokens included (all-MiniLM-L6-v2 was trained at 128… 256).
    public let maxTokens: Int
    /// Tokens per packed batch; bounds activation memory (the backbone's buffers and these).
    public let tokensPerBatch: Int

    private var ids: [Int32] = []            // (N) the batch's token ids, back to back
    private let inputs = GrowableBuffer()    // (N, C) their embeddings
    private let pooled = GrowableBuffer()    // (B, C) mean-pooled, then normalised in place
    private let norms = GrowableBuffer()     // (B)

    public init(model: LoadedBackbone, maxTokens: Int = 256, tokensPerBatch: Int = 8192) {
        self.model = model
        self.maxTokens = min(maxTokens, model.backbone.maxPositions)
        self.tokensPerBatch = max(tokensPerBatch, self.maxTokens)
    }

    /// Token ids for each text, truncated to `maxTokens` (special tokens kept).
    public func tokenize(_ texts: [String]) -> [[Int32]] {
        let tokenizer = model.tokenizer
        let room = maxTokens - tokenizer.specialTokensPerSequence
        return tokenizer.encodeBatch(texts, addSpecialTokens: false).map { ids in
            tokenizer.addingSpecialTokens(Array(ids.prefix(room))).map(Int32.init)
        }
    }

    /// One embedding per text, in input order.
    public func embed(_ texts: [String], progress: ProgressBar? = nil) -> [[Float]] {
        embed(tokenized: tokenize(texts), progress: progress)
    }

    public func embed(tokenized: [[Int32]], progress: ProgressBar? = nil) -> [[Float]] {
        var results = [[Float]](repeating: [], count: tokenized.count)
        for group in PackedBatch.lengthGroups(tokenized.map(\.count), tokensPerBatch: tokensPerBatch) {
            let vectors = encode(group.map { tokenized[$0] })
            for (slot, index) in group.enumerated() { results[index] = vectors[slot] }
            progress?.advance(by: group.count)
        }
        return results
    }

    /// Encodes one packed batch: hidden states → mean pool → L2 normalise.
    public func encode(_ sequences: [[Int32]]) -> [[Float]] {
        let backbone = model.backbone
        let C = backbone.hiddenSize
        let batch = PackedBatch(lengths: sequences.map(\.count))
        ids.removeAll(keepingCapacity: true)
        for sequence in sequences { ids.append(contentsOf: sequence) }
        let inputs = self.inputs.ensure(batch.tokens * C)
        backbone.embedTokens(out: inputs, ids: ids, parameters: model.parameters)
        let hidden = backbone.infer(embeddings: inputs, batch: batch)
        let pooled = self.pooled.ensure(batch.count * C)
        MeanPool.forward(out: pooled, inp: hidden, spans: batch.sequenceSpans, C: C)
        L2Normalize.forward(out: pooled, norms: norms.ensure(batch.count), inp: pooled, B: batch.count, C: C)
        return (0..<batch.count).map { Array(UnsafeBufferPointer(start: pooled + $0 * C, count: C)) }
    }
}
