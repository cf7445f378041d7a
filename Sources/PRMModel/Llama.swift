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

    // Inference buffers reused by every layer and call, sized by the largest batch seen.
    private let x = GrowableBuffer()         // (N, C) the residual stream
    private let normed = GrowableBuffer()    // (N, C) its RMSNorm: each sublayer's input, last the hidden states
    private let qkv = GrowableBuffer()       // (N, Q + 2K) queries | keys | values
    private let attended = GrowableBuffer()  // (N, Q)
    private let dense = GrowableBuffer()     // (N, C) a projection's output
    private let gate = GrowableBuffer(), up = GrowableBuffer()  // (N, I)
    private let scratch = GrowableBuffer()   // attention scores, one block per worker
    /// At bf16 and int8, per layer its matrices (`InferenceMatrix` order) prepared for
    /// `inferencePrecision`; the LM head stays fp32.
    private let lowPrecision = LowPrecisionWeights()
    public var inferencePrecision: Precision { lowPrecision.precision }

    /// A layer's matrices in the order of the forward pass; q, k and v are one matrix (their
    /// tensors, and their biases, are declared consecutively), so a row's activations are
    /// quantized once for all three.
    enum InferenceMatrix: Int, CaseIterable {
        case qkv, output, gate, up, down

        var product: MatrixProduct {
            switch self {
            case .qkv: return .qkv
            case .output: return .attentionOutput
            case .gate, .up: return .ffnUp
            case .down: return .ffnDown
            }
        }
    }

    /// The tensor names of a Hugging Face checkpoint, declared in a fresh parameter buffer.
    public init(config: LlamaConfig) {
        self.config = config
        var layout = Parameters.Layout()
        let weights = LlamaWeights(config: config, layout: &layout, prefix: "model.", languageModelHead: true)
        (embeddings, layers, finalNorm, lmHead) = (weights.embeddings, weights.layers, weights.finalNorm, weights.lmHead)
        parameters = Parameters(layout)
    }

    public var vocabularySize: Int { config.vocabSize }
    public var maxPositions: Int { config.maxPositionEmbeddings }

    /// Bytes of weights one decoding step reads (every matrix once, the embedding table as the
    /// tied head), for memory-bandwidth ratios: the layers' prepared matrices at bf16 and int8.
    public var weightBytesPerToken: Int {
        let floats = parameters.count * MemoryLayout<Float>.size
        guard let prepared = lowPrecisionMatrices() else { return floats }
        let matrices = prepared.joined()
        return floats - matrices.reduce(0) { $0 + $1.inputs * $1.outputs * MemoryLayout<Float>.size } + matrices.reduce(0) { $0 + $1.bytes }
    }

    public func makeCache() -> KVCache { KVCache(layers: config.numHiddenLayers, width: config.keyWidth) }

    // MARK: - Inference

    /// Runs `tokens` as the next tokens after what `cache` holds, appends their keys and values,
    /// and returns their hidden states (T, C) after the final norm. Incremental decoding is
    /// repeated calls; a fresh cache computes a whole sequence.
    public func extend(_ cache: KVCache, tokens: [Int32]) -> UnsafePointer<Float> {
        let (P, T) = (cache.count, tokens.count)
        precondition(P + T <= maxPositions, "sequence longer than \(maxPositions) positions")
        let (NH, D, W) = (config.numAttentionHeads, config.headDim, rowWidth)
        let group = NH / config.numKeyValueHeads
        let (Q, K) = (config.queryWidth, config.keyWidth)
        let block = T * (P + T)
        let probs = scratch.ensure(Parallel.workers * block)
        let hidden = blocks(tokens: tokens, positions: (0..<T).map { Int32(P + $0) }) { l, qkv, out in
            let prefixK = UnsafePointer(cache.keys[l].data), prefixV = UnsafePointer(cache.values[l].data)
            Parallel.forEachItem(NH) { worker, h in
                let g = h / group
                Attention.attendHeadAfterPrefix(out: out + h * D, ldo: Q, probs: probs + worker * block,
                                                q: qkv + h * D, k: qkv + Q + g * D, v: qkv + Q + K + g * D, ld: W,
                                                prefixK: prefixK + g * D, prefixV: prefixV + g * D, ldPrefix: K, P: P, T: T, hs: D)
            }
            cache.append(layer: l, keys: qkv + Q, values: qkv + Q + K, rowStride: W, rows: T, at: P)
        }
        cache.setCount(P + T)
        return hidden
    }

    /// One decoding step for B sequences at once: sequence b is `prefixes[b]` (read, never
    /// changed: a prompt's cache shared by its samples) followed by `own[b]`, and `tokens[b]` is
    /// its next token. Appends each token's keys and values to `own[b]` and returns hidden states
    /// (B, C); the B tokens go through every projection as one batch.
    public func decodeStep(prefixes: [KVCache], own: [KVCache], tokens: [Int32]) -> UnsafePointer<Float> {
        precondition(prefixes.count == own.count && own.count == tokens.count, "one prefix and one token per sequence")
        let B = own.count
        let positions = (0..<B).map { Int32(prefixes[$0].count + own[$0].count) }
        precondition(positions.allSatisfy { Int($0) < maxPositions }, "sequence longer than \(maxPositions) positions")
        let (NH, D, W) = (config.numAttentionHeads, config.headDim, rowWidth)
        let group = NH / config.numKeyValueHeads
        let (Q, K) = (config.queryWidth, config.keyWidth)
        let longest = (positions.max().map { Int($0) } ?? 0) + 1
        let probs = scratch.ensure(Parallel.workers * longest)
        let hidden = blocks(tokens: tokens, positions: positions) { l, qkv, out in
            for b in 0..<B {
                own[b].append(layer: l, keys: qkv + b * W + Q, values: qkv + b * W + Q + K, rowStride: W, rows: 1, at: own[b].count)
            }
            Parallel.forEachItem(B * NH) { worker, item in
                let (b, h) = (item / NH, item % NH)
                let g = h / group
                let (prefix, mine) = (prefixes[b], own[b])
                Attention.attendHeadStep(out: out + b * Q + h * D, probs: probs + worker * longest, q: qkv + b * W + h * D,
                                         prefixK: prefix.keys[l].data + g * D, prefixV: prefix.values[l].data + g * D, ldPrefix: K,
                                         P: prefix.count, ownK: mine.keys[l].data + g * D, ownV: mine.values[l].data + g * D,
                                         ldOwn: K, R: mine.count + 1, hs: D)
            }
        }
        for cache in own { cache.setCount(cache.count + 1) }
        return hidden
    }

    /// logits (N, V) = hidden (N, C) · headᵀ (the embedding table when tied).
    public func logits(out: UnsafeMutablePointer<Float>, hidden: UnsafePointer<Float>, N: Int) {
        Linear.forward(out: out, inp: hidden, weight: parameters.value(lmHead ?? embeddings), bias: nil,
                       N: N, C: config.hiddenSize, OC: config.vocabSize)
    }

    /// Selects the precision of the layers' matrix products (`--precision`), preparing the weights
    /// for it now; refuses a precision the CPU does not run natively.
    public func useInferencePrecision(_ precision: Precision) throws {
        try lowPrecision.select(precision)
        _ = lowPrecisionMatrices()
    }

    /// Every layer's matrices at `inferencePrecision` (nil at fp32), made once; their fp32 values are released (`LowPrecisionWeights`).
    private func lowPrecisionMatrices() -> [[LowPrecisionLinear]]? {
        let p = parameters
        let (C, I, Q, W) = (config.hiddenSize, config.intermediateSize, config.queryWidth, rowWidth)
        return lowPrecision.prepared {
            layers.map { w in
                precondition(p.value(w.v) == p.value(w.q) + (W - config.keyWidth) * C, "q, k and v weights are not one block")
                if let qBias = w.qBias, let vBias = w.vBias {
                    precondition(p.value(vBias) == p.value(qBias) + W - config.keyWidth, "q, k and v biases are not one block")
                }
                let shapes: [(Parameters.Handle, outputs: Int, inputs: Int)] = [(w.q, W, C), (w.o, C, Q), (w.gate, I, C), (w.up, I, C), (w.down, C, I)]
                return zip(InferenceMatrix.allCases, shapes).map { matrix, shape in
                    lowPrecision.linear(matrix.product, of: p, weight: p.value(shape.0), outputs: shape.outputs, inputs: shape.inputs)
                }
            }
        }
    }

    /// Width of a packed row of queries, keys and values.
    private var rowWidth: Int { config.queryWidth + 2 * config.keyWidth }

    /// The layer stack over N rows at `positions`: x = embed(tokens); per layer
    /// x += o(attention(rope(q), rope(k), v)) over RMSNorm(x), then x += down(silu(gate)·up) over
    /// RMSNorm(x); the caller's attention reads the packed rows (N, Q + 2K) and writes (N, Q).
    private func blocks(tokens: [Int32], positions: [Int32],
                        attention: (_ layer: Int, _ qkv: UnsafeMutablePointer<Float>, _ out: UnsafeMutablePointer<Float>) -> Void)
        -> UnsafePointer<Float> {
        let N = tokens.count
        let (C, I, Q, K, D, W) = (config.hiddenSize, config.intermediateSize, config.queryWidth, config.keyWidth, config.headDim, rowWidth)
        let eps = config.rmsNormEps
        let p = parameters
        let x = self.x.ensure(N * C), h = normed.ensure(N * C), qkv = self.qkv.ensure(N * W)
        let attended = self.attended.ensure(N * Q), dense = self.dense.ensure(N * C)
        let gate = self.gate.ensure(N * I), up = self.up.ensure(N * I)
        tokens.withUnsafeBufferPointer { Embedding.forward(out: x, ids: $0.baseAddress!, table: p.value(embeddings), N: N, C: C) }
        let rotation = RotaryTable(positions: positions, headSize: D, base: config.ropeTheta)
        let prepared = lowPrecisionMatrices(), lowScratch = lowPrecision.scratch
        /// out (N, outputs) = inp (N, inputs) · Wᵀ for one of layer l's matrices, at `inferencePrecision`.
        func project(_ l: Int, _ matrix: InferenceMatrix, _ weight: Parameters.Handle, out: UnsafeMutablePointer<Float>,
                     inp: UnsafePointer<Float>, inputs: Int, outputs: Int) {
            if let prepared {
                prepared[l][matrix.rawValue].forward(out: out, inp: inp, rows: N, bias: nil, scratch: lowScratch)
            } else {
                Linear.forward(out: out, inp: inp, weight: p.value(weight), bias: nil, N: N, C: inputs, OC: outputs)
            }
        }
        for (l, w) in layers.enumerated() {
            RMSNorm.forward(out: h, inp: x, weight: p.value(w.inputNorm), N: N, C: C, eps: eps)
            if let prepared {
                // q, k, v and their biases are each one block: one product writes whole rows of qkv.
                prepared[l][InferenceMatrix.qkv.rawValue].forward(out: qkv, inp: h, rows: N, bias: w.qBias.map { UnsafePointer(p.value($0)) },
                                                                  scratch: lowScratch)
            } else {
                // Q, K and V side by side in each row: three sgemms into column blocks of qkv.
                for (weight, bias, column, width) in [(w.q, w.qBias, 0, Q), (w.k, w.kBias, Q, K), (w.v, w.vBias, Q + K, K)] {
                    BLAS.gemm(transB: true, m: N, n: width, k: C, a: h, lda: C, b: p.value(weight), ldb: C, beta: 0, c: qkv + column, ldc: W)
                    if let bias { for n in 0..<N { for j in 0..<width { qkv[n * W + column + j] += p.value(bias)[j] } } }
                }
            }
            if let qNorm = w.qNorm, let kNorm = w.kNorm {
                // Qwen3: each head's queries and keys are RMS-normalised before the rotation.
                for n in 0..<N {
                    let row = qkv + n * W
                    RMSNorm.forward(out: row, inp: row, weight: p.value(qNorm), N: Q / D, C: D, eps: eps)
                    RMSNorm.forward(out: row + Q, inp: row + Q, weight: p.value(kNorm), N: K / D, C: D, eps: eps)
                }
            }
            rotation.apply(qkv, rows: N, rowStride: W, heads: (Q + K) / D)
            attention(l, qkv, attended)
            project(l, .output, w.o, out: dense, inp: attended, inputs: Q, outputs: C)
            for i in 0..<N * C { x[i] += dense[i] }
            RMSNorm.forward(out: h, inp: x, weight: p.value(w.postNorm), N: N, C: C, eps: eps)
            project(l, .gate, w.gate, out: gate, inp: h, inputs: C, outputs: I)
            project(l, .up, w.up, out: up, inp: h, inputs: C, outputs: I)
            for i in 0..<N * I { gate[i] = gate[i] / (1 + VectorMath.exp(-gate[i])) * up[i] }
            project(l, .down, w.down, out: dense, inp: gate, inputs: I, outputs: C)
            for i in 0..<N * C { x[i] += dense[i] }
        }
        RMSNorm.forward(out: h, inp: x, weight: p.value(finalNorm), N: N, C: C, eps: eps)
        return UnsafePointer(h)
    }
}
