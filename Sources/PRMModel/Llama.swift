import Foundation
import PRMCore

/// Hugging Face `LlamaConfig` and its relatives that share the decoder (`qwen2`: q/k/v biases,
/// `qwen3`: per-head q/k RMSNorm and an explicit head size, `mistral` without a sliding window):
/// only what the decoder needs, and the keys that would change the computation refused.
public struct LlamaConfig: Codable, Sendable, Equatable {
    public var modelType: String
    public var vocabSize: Int
    public var hiddenSize: Int
    public var intermediateSize: Int
    public var numHiddenLayers: Int
    public var numAttentionHeads: Int
    public var numKeyValueHeads: Int
    public var headDim: Int
    public var rmsNormEps: Float
    public var ropeTheta: Double
    public var maxPositionEmbeddings: Int
    public var tieWordEmbeddings: Bool
    /// Biases on the q, k and v projections (Qwen2 always; Llama's `attention_bias`).
    public var attentionBias: Bool
    /// RMSNorm of each head's queries and keys before RoPE (Qwen3).
    public var queryKeyNorm: Bool
    public var hiddenAct: String
    public var bosTokenID: Int?
    public var eosTokenID: Int?

    public static let modelTypes = ["llama", "mistral", "qwen2", "qwen3"]

    enum CodingKeys: String, CodingKey {
        case modelType = "model_type", vocabSize = "vocab_size", hiddenSize = "hidden_size", intermediateSize = "intermediate_size"
        case numHiddenLayers = "num_hidden_layers", numAttentionHeads = "num_attention_heads", numKeyValueHeads = "num_key_value_heads"
        case headDim = "head_dim", rmsNormEps = "rms_norm_eps", ropeTheta = "rope_theta"
        case maxPositionEmbeddings = "max_position_embeddings", tieWordEmbeddings = "tie_word_embeddings"
        case attentionBias = "attention_bias", hiddenAct = "hidden_act", bosTokenID = "bos_token_id", eosTokenID = "eos_token_id"
        case ropeScaling = "rope_scaling", slidingWindow = "sliding_window", useSlidingWindow = "use_sliding_window"
        case mlpBias = "mlp_bias", ropeParameters = "rope_parameters"
    }

    /// transformers ≥ 5 writes RoPE's settings as one object instead of `rope_theta`/`rope_scaling`.
    private struct RopeParameters: Decodable {
        let rope_type: String?
        let rope_theta: Double?
    }

    public init(modelType: String, vocabSize: Int, hiddenSize: Int, intermediateSize: Int, numHiddenLayers: Int,
                numAttentionHeads: Int, numKeyValueHeads: Int, headDim: Int? = nil, rmsNormEps: Float, ropeTheta: Double,
                maxPositionEmbeddings: Int, tieWordEmbeddings: Bool, attentionBias: Bool = false, queryKeyNorm: Bool = false,
                bosTokenID: Int? = nil, eosTokenID: Int? = nil) {
        (self.modelType, self.vocabSize, self.hiddenSize, self.intermediateSize) = (modelType, vocabSize, hiddenSize, intermediateSize)
        (self.numHiddenLayers, self.numAttentionHeads, self.numKeyValueHeads) = (numHiddenLayers, numAttentionHeads, numKeyValueHeads)
        self.headDim = headDim ?? hiddenSize / max(1, numAttentionHeads)
        (self.rmsNormEps, self.ropeTheta, self.maxPositionEmbeddings) = (rmsNormEps, ropeTheta, maxPositionEmbeddings)
        (self.tieWordEmbeddings, self.attentionBias, self.queryKeyNorm) = (tieWordEmbeddings, attentionBias, queryKeyNorm)
        hiddenAct = "silu"
        (self.bosTokenID, self.eosTokenID) = (bosTokenID, eosTokenID)
    }

    /// Decodes with each model type's Hugging Face defaults; a config this decoder would compute
    /// differently from (RoPE scaling, a sliding window, MLP biases) is refused, naming the key.
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        modelType = try c.decode(String.self, forKey: .modelType)
        vocabSize = try c.decode(Int.self, forKey: .vocabSize)
        hiddenSize = try c.decode(Int.self, forKey: .hiddenSize)
        intermediateSize = try c.decode(Int.self, forKey: .intermediateSize)
        numHiddenLayers = try c.decode(Int.self, forKey: .numHiddenLayers)
        numAttentionHeads = try c.decode(Int.self, forKey: .numAttentionHeads)
        numKeyValueHeads = try c.decodeIfPresent(Int.self, forKey: .numKeyValueHeads) ?? numAttentionHeads
        headDim = try c.decodeIfPresent(Int.self, forKey: .headDim) ?? hiddenSize / max(1, numAttentionHeads)
        rmsNormEps = try c.decodeIfPresent(Float.self, forKey: .rmsNormEps) ?? 1e-6
        ropeTheta = try c.decodeIfPresent(Double.self, forKey: .ropeTheta) ?? 10_000
        maxPositionEmbeddings = try c.decodeIfPresent(Int.self, forKey: .maxPositionEmbeddings) ?? 2048
        tieWordEmbeddings = try c.decodeIfPresent(Bool.self, forKey: .tieWordEmbeddings) ?? false
        attentionBias = try modelType == "qwen2" || (c.decodeIfPresent(Bool.self, forKey: .attentionBias) ?? false)
        queryKeyNorm = modelType == "qwen3"
        hiddenAct = try c.decodeIfPresent(String.self, forKey: .hiddenAct) ?? "silu"
        bosTokenID = try? c.decodeIfPresent(Int.self, forKey: .bosTokenID)
        eosTokenID = try? c.decodeIfPresent(Int.self, forKey: .eosTokenID)
        func refuseUnlessNull(_ key: CodingKeys, _ why: String) throws {
            if c.contains(key), try !c.decodeNil(forKey: key) {
                throw DecodingError.dataCorruptedError(forKey: key, in: c, debugDescription: why)
            }
        }
        try refuseUnlessNull(.ropeScaling, "rope_scaling is not implemented (only plain RoPE)")
        if c.contains(.ropeParameters), try !c.decodeNil(forKey: .ropeParameters) {
            let rope = try c.decode(RopeParameters.self, forKey: .ropeParameters)
            guard (rope.rope_type ?? "default") == "default" else {
                throw DecodingError.dataCorruptedError(forKey: .ropeParameters, in: c,
                                                       debugDescription: "rope_type '\(rope.rope_type ?? "")' is not implemented (only plain RoPE)")
            }
            ropeTheta = rope.rope_theta ?? ropeTheta
        }
        if modelType == "mistral" || modelType.hasPrefix("qwen") {
            let slides = try modelType == "mistral" || (c.decodeIfPresent(Bool.self, forKey: .useSlidingWindow) ?? false)
            if slides { try refuseUnlessNull(.slidingWindow, "sliding-window attention is not implemented") }
        }
        if try c.decodeIfPresent(Bool.self, forKey: .mlpBias) ?? false {
            throw DecodingError.dataCorruptedError(forKey: .mlpBias, in: c, debugDescription: "mlp_bias true is not implemented")
        }
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(modelType, forKey: .modelType)
        try c.encode(vocabSize, forKey: .vocabSize)
        try c.encode(hiddenSize, forKey: .hiddenSize)
        try c.encode(intermediateSize, forKey: .intermediateSize)
        try c.encode(numHiddenLayers, forKey: .numHiddenLayers)
        try c.encode(numAttentionHeads, forKey: .numAttentionHeads)
        try c.encode(numKeyValueHeads, forKey: .numKeyValueHeads)
        try c.encode(headDim, forKey: .headDim)
        try c.encode(rmsNormEps, forKey: .rmsNormEps)
        try c.encode(ropeTheta, forKey: .ropeTheta)
        try c.encode(maxPositionEmbeddings, forKey: .maxPositionEmbeddings)
        try c.encode(tieWordEmbeddings, forKey: .tieWordEmbeddings)
        try c.encode(attentionBias, forKey: .attentionBias)
        try c.encode(hiddenAct, forKey: .hiddenAct)
        try c.encodeIfPresent(bosTokenID, forKey: .bosTokenID)
        try c.encodeIfPresent(eosTokenID, forKey: .eosTokenID)
    }

    var queryWidth: Int { numAttentionHeads * headDim }
    var keyWidth: Int { numKeyValueHeads * headDim }

    func validated(_ url: URL) throws -> LlamaConfig {
        try require(Self.modelTypes.contains(modelType), url, "unknown architecture model_type '\(modelType)' (supported: \(Self.modelTypes.joined(separator: ", ")))")
        try require(hiddenSize > 0 && intermediateSize > 0 && numHiddenLayers > 0 && vocabSize > 0 && maxPositionEmbeddings > 0,
                    url, "sizes must be positive")
        try require(numAttentionHeads > 0 && numKeyValueHeads > 0 && numAttentionHeads % numKeyValueHeads == 0, url,
                    "num_attention_heads \(numAttentionHeads) is not a multiple of num_key_value_heads \(numKeyValueHeads)")
        try require(headDim > 0 && headDim % 2 == 0, url, "head_dim \(headDim) must be positive and even (RoPE rotates pairs)")
        try require(hiddenAct == "silu", url, "unsupported hidden_act '\(hiddenAct)' (supported: silu)")
        return self
    }
}

/// A Llama-family causal decoder (pre-RMSNorm, RoPE in Hugging Face's rotate-half convention,
/// grouped-query attention, SwiGLU MLP), Hugging Face tensor names, weights (out, in).
/// Inference only: a prompt extends a `KVCache` (`extend`), and the samples of a prompt decode
/// together over its shared cache (`decodeStep`); training forward/backward is `LlamaBackbone`'s.
public final class LlamaModel {
    public let config: LlamaConfig
    public let parameters: Parameters

    public let embeddings: Parameters.Handle
    let finalNorm: Parameters.Handle
    let lmHead: Parameters.Handle?
    let layers: [LlamaWeights.Layer]

    /// The layer stack's inference pass and its buffers, reused by every call; at bf16 and int8
    /// its prepared matrices (the LM head stays fp32).
    private let stack: LlamaLayerStack
    public var inferencePrecision: Precision { stack.precision }

    /// The tensor names of a Hugging Face checkpoint, declared in a fresh parameter buffer.
    public init(config: LlamaConfig) {
        self.config = config
        var layout = Parameters.Layout()
        let weights = LlamaWeights(config: config, layout: &layout, prefix: "model.", languageModelHead: true)
        (embeddings, layers, finalNorm, lmHead) = (weights.embeddings, weights.layers, weights.finalNorm, weights.lmHead)
        stack = LlamaLayerStack(config: config, weights: weights)
        parameters = Parameters(layout)
    }

    public var vocabularySize: Int { config.vocabSize }
    public var maxPositions: Int { config.maxPositionEmbeddings }

    /// Bytes of weights one decoding step reads (every matrix once, the embedding table as the
    /// tied head), for memory-bandwidth ratios: the layers' prepared matrices at bf16 and int8.
    public var weightBytesPerToken: Int {
        let floats = parameters.count * MemoryLayout<Float>.size
        guard let prepared = stack.lowPrecisionMatrices(parameters) else { return floats }
        let matrices = prepared.joined()
        return floats - matrices.reduce(0) { $0 + $1.inputs * $1.outputs * MemoryLayout<Float>.size } + matrices.reduce(0) { $0 + $1.bytes }
    }

    public func makeCache() -> KVCache { KVCache(layers: config.numHiddenLayers, width: config.keyWidth) }

    // MARK: - Inference

    /// Runs `tokens` as the next tokens after what `cache` holds, appends their keys and values,
    /// and returns their hidden states (T, C) after the final norm. Incremental decoding is
    /// repeated calls; a fresh cache computes a whole sequence.
    public func extend(_ cache: KVCache, tokens: [Int32]) -> UnsafePointer<Float> {
        stack.packed(PackedBatch(lengths: [tokens.count]), after: cache, appending: true, parameters: parameters, input: embed(tokens))
    }

    /// One decoding step for B sequences at once: sequence b is `prefixes[b]` (read, never
    /// changed: a prompt's cache shared by its samples) followed by `own[b]`, and `tokens[b]` is
    /// its next token. Appends each token's keys and values to `own[b]` and returns hidden states
    /// (B, C); the B tokens go through every projection as one batch.
    public func decodeStep(prefixes: [KVCache], own: [KVCache], tokens: [Int32]) -> UnsafePointer<Float> {
        precondition(prefixes.count == own.count && own.count == tokens.count, "one prefix and one token per sequence")
        return stack.decodeStep(prefixes: prefixes, own: own, parameters: parameters, input: embed(tokens))
    }

    /// Writes the token embeddings of `tokens` as a layer stack's input rows.
    private func embed(_ tokens: [Int32]) -> (UnsafeMutablePointer<Float>) -> Void {
        { [parameters, embeddings, config] x in
            tokens.withUnsafeBufferPointer { Embedding.forward(out: x, ids: $0.baseAddress!, table: parameters.value(embeddings), N: tokens.count, C: config.hiddenSize) }
        }
    }

    /// logits (N, V) = hidden (N, C) · headᵀ (the embedding table when tied).
    public func logits(out: UnsafeMutablePointer<Float>, hidden: UnsafePointer<Float>, N: Int) {
        Linear.forward(out: out, inp: hidden, weight: parameters.value(lmHead ?? embeddings), bias: nil,
                       N: N, C: config.hiddenSize, OC: config.vocabSize)
    }

    /// Selects the precision of the layers' matrix products (`--precision`), preparing the weights
    /// for it now; refuses a precision the CPU does not run natively.
    public func useInferencePrecision(_ precision: Precision) throws {
        try stack.usePrecision(precision, parameters: parameters)
    }
}
