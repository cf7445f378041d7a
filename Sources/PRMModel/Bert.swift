import Foundation
import PRMCore

/// Hugging Face `BertConfig` (only what the encoder needs).
public struct BertConfig: Codable, Sendable {
    public var vocabSize: Int
    public var hiddenSize: Int
    public var numHiddenLayers: Int
    public var numAttentionHeads: Int
    public var intermediateSize: Int
    public var maxPositionEmbeddings: Int
    public var typeVocabSize: Int
    public var layerNormEps: Float
    public var hiddenAct: String
    /// Keys whose other values change the computation in ways this encoder does not implement;
    /// read so that such a config is refused instead of silently computing something else.
    public var positionEmbeddingType: String
    public var isDecoder: Bool
    public var addCrossAttention: Bool

    enum CodingKeys: String, CodingKey {
        case vocabSize = "vocab_size", hiddenSize = "hidden_size", numHiddenLayers = "num_hidden_layers"
        case numAttentionHeads = "num_attention_heads", intermediateSize = "intermediate_size"
        case maxPositionEmbeddings = "max_position_embeddings", typeVocabSize = "type_vocab_size"
        case layerNormEps = "layer_norm_eps", hiddenAct = "hidden_act"
        case positionEmbeddingType = "position_embedding_type", isDecoder = "is_decoder", addCrossAttention = "add_cross_attention"
        /// Written for Hugging Face readers; the encoder itself never reads them.
        case modelType = "model_type", architectures
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        vocabSize = try c.decode(Int.self, forKey: .vocabSize)
        hiddenSize = try c.decode(Int.self, forKey: .hiddenSize)
        numHiddenLayers = try c.decode(Int.self, forKey: .numHiddenLayers)
        numAttentionHeads = try c.decode(Int.self, forKey: .numAttentionHeads)
        intermediateSize = try c.decode(Int.self, forKey: .intermediateSize)
        maxPositionEmbeddings = try c.decodeIfPresent(Int.self, forKey: .maxPositionEmbeddings) ?? 512
        typeVocabSize = try c.decodeIfPresent(Int.self, forKey: .typeVocabSize) ?? 2
        layerNormEps = try c.decodeIfPresent(Float.self, forKey: .layerNormEps) ?? 1e-12
        hiddenAct = try c.decodeIfPresent(String.self, forKey: .hiddenAct) ?? "gelu"
        positionEmbeddingType = try c.decodeIfPresent(String.self, forKey: .positionEmbeddingType) ?? "absolute"
        isDecoder = try c.decodeIfPresent(Bool.self, forKey: .isDecoder) ?? false
        addCrossAttention = try c.decodeIfPresent(Bool.self, forKey: .addCrossAttention) ?? false
    }

    /// The keys a checkpoint's config.json has always held. The refused-unless-default keys are
    /// left out: only Hugging Face's defaults pass `validated`, so a reader's defaults agree.
    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode("bert", forKey: .modelType)
        try c.encode(["BertModel"], forKey: .architectures)
        try c.encode(vocabSize, forKey: .vocabSize)
        try c.encode(hiddenSize, forKey: .hiddenSize)
        try c.encode(numHiddenLayers, forKey: .numHiddenLayers)
        try c.encode(numAttentionHeads, forKey: .numAttentionHeads)
        try c.encode(intermediateSize, forKey: .intermediateSize)
        try c.encode(maxPositionEmbeddings, forKey: .maxPositionEmbeddings)
        try c.encode(typeVocabSize, forKey: .typeVocabSize)
        try c.encode(layerNormEps, forKey: .layerNormEps)
        try c.encode(hiddenAct, forKey: .hiddenAct)
    }

    func validated(_ url: URL) throws -> BertConfig {
        try require(hiddenSize > 0 && numHiddenLayers > 0 && vocabSize > 0 && intermediateSize > 0 && typeVocabSize > 0,
                    url, "sizes must be positive")
        try require(numAttentionHeads > 0 && hiddenSize % numAttentionHeads == 0, url,
                    "hidden_size \(hiddenSize) is not divisible by num_attention_heads \(numAttentionHeads)")
        try require(geluForm != nil, url, "unsupported hidden_act '\(hiddenAct)' (supported: gelu, gelu_new, gelu_pytorch_tanh)")
        try require(positionEmbeddingType == "absolute", url,
                    "position_embedding_type '\(positionEmbeddingType)' is not implemented (only 'absolute')")
        try require(!isDecoder, url, "is_decoder true is not implemented (a causal BERT); use a GPT-2 backbone")
        try require(!addCrossAttention, url, "add_cross_attention true is not implemented")
        return self
    }

    var geluForm: GELU.Form? {
        switch hiddenAct {
        case "gelu": return .erf
        case "gelu_new", "gelu_pytorch_tanh": return .tanh
        default: return nil
        }
    }
}

/// A BERT-family bidirectional encoder (post-LN), Hugging Face `BertModel` weights and names.
///
/// Forward per layer: qkv = x·Wqkv (Q, K, V weights are declared back to back so they form one
/// (3C, C) matrix: one sgemm, no copies); a = attention(qkv); x1 = LN(x + a·Wo);
/// x2 = LN(x1 + gelu(x1·Wi)·Wo2).
public final class BertModel: Backbone {
    public let config: BertConfig
    public let modelType = "bert"
    public let attending = Attending.bidirectional
    public var computesParameterGradients = true
    public let hiddenDropout: HiddenDropout
    public let weightPrefixes = ["", "bert."]

    struct LayerWeights {
        let qkvWeight, qkvBias, attnOutWeight, attnOutBias, ln1Weight, ln1Bias: Parameters.Handle
        let interWeight, interBias, outWeight, outBias, ln2Weight, ln2Bias: Parameters.Handle
    }

    /// Saved activations of one layer (shapes with N tokens).
    final class LayerActivations {
        let qkv = GrowableBuffer()       // (N, 3C)
        let attention = GrowableBuffer() // (N, C)
        let probs = GrowableBuffer()     // (Σ NH·T²)
        let attnOut = GrowableBuffer()   // (N, C) after dense (+ dropout)
        let residual1 = GrowableBuffer() // (N, C)
        let ln1 = GrowableBuffer()       // (N, C)
        let ln1Mean = GrowableBuffer(), ln1Rstd = GrowableBuffer() // (N)
        let inter = GrowableBuffer()     // (N, I) before GELU
        let gelu = GrowableBuffer()      // (N, I)
        let out = GrowableBuffer()       // (N, C) (+ dropout)
        let residual2 = GrowableBuffer() // (N, C)
        let ln2 = GrowableBuffer()       // (N, C): the layer's output
        let ln2Mean = GrowableBuffer(), ln2Rstd = GrowableBuffer()
    }

    public let wordEmbeddings: Parameters.Handle
    let positionEmbeddings, typeEmbeddings, embLNWeight, embLNBias: Parameters.Handle
    let layers: [LayerWeights]
    private var parameters: Parameters?
    private var params: Parameters {
        guard let parameters else { preconditionFailure("BertModel used before bind(_:)") }
        return parameters
    }

    // Activations of the last forward pass.
    private var batch = PackedBatch(lengths: [])
    private let embeddingSum = GrowableBuffer(), embLN = GrowableBuffer()
    private let embMean = GrowableBuffer(), embRstd = GrowableBuffer()
    private let acts: [LayerActivations]
    private var positions: [Int32] = [], types: [Int32] = []
    // Gradient scratch.
    private let dx = GrowableBuffer(), dA = GrowableBuffer(), dB = GrowableBuffer()
    private let dWide = GrowableBuffer(), dWide2 = GrowableBuffer(), dQKV = GrowableBuffer()
    // Inference: five buffers reused by every layer and batch, sized by the largest batch seen.
    private let inferX = GrowableBuffer()       // (N, C) the hidden state, updated in place
    private let inferAttention = GrowableBuffer() // (N, C)
    private let inferDense = GrowableBuffer()   // (N, C) a dense layer's output before bias and residual
    private let inferWide = GrowableBuffer()    // (N, max(3C, I)): Q|K|V, then the FFN's inner activations
    private let inferScratch = GrowableBuffer() // attention scores, one (T, T) block per worker
    /// The layer matrices transposed to [in, out], one block per layer: Wqkvᵀ (C, 3C), Woᵀ (C, C),
    /// Wiᵀ (C, I), Wo2ᵀ (I, C). dnnl_sgemm runs these shapes up to 1.7× faster with B
    /// untransposed (bench/README.md); ~42 MB for MiniLM. Made by the first `infer` and again
    /// whenever the parameters' version has changed since (loading, an optimizer step).
    private let inferWeights = GrowableBuffer()
    private var inferWeightsVersion: Int?
    /// At bf16 and int8, per layer its four matrices (`InferenceMatrix` order) prepared for
    /// `inferencePrecision`, used instead of `inferWeights` (which is then never made).
    private let lowPrecision = LowPrecisionWeights()
    public var inferencePrecision: Precision { lowPrecision.precision }

    /// A layer's matrices in the order of the forward pass.
    enum InferenceMatrix: Int, CaseIterable {
        case qkv, attentionOutput, intermediate, output

        var product: MatrixProduct {
            switch self {
            case .qkv: return .qkv
            case .attentionOutput: return .attentionOutput
            case .intermediate: return .ffnUp
            case .output: return .ffnDown
            }
        }
    }

    public init(config: BertConfig, layout: inout Parameters.Layout) {
        self.config = config
        let (C, I) = (config.hiddenSize, config.intermediateSize)
        wordEmbeddings = layout.add("embeddings.word_embeddings.weight", [config.vocabSize, C])
        positionEmbeddings = layout.add("embeddings.position_embeddings.weight", [config.maxPositionEmbeddings, C])
        typeEmbeddings = layout.add("embeddings.token_type_embeddings.weight", [config.typeVocabSize, C])
        embLNWeight = layout.add("embeddings.LayerNorm.weight", [C])
        embLNBias = layout.add("embeddings.LayerNorm.bias", [C])
        var layers: [LayerWeights] = []
        for l in 0..<config.numHiddenLayers {
            let p = "encoder.layer.\(l)."
            // Declared consecutively: query, key, value weights form one (3C, C) block, biases one (3C).
            let q = layout.add(p + "attention.self.query.weight", [C, C])
            _ = layout.add(p + "attention.self.key.weight", [C, C])
            _ = layout.add(p + "attention.self.value.weight", [C, C])
            let qb = layout.add(p + "attention.self.query.bias", [C])
            _ = layout.add(p + "attention.self.key.bias", [C])
            _ = layout.add(p + "attention.self.value.bias", [C])
            layers.append(LayerWeights(
                qkvWeight: q, qkvBias: qb,
                attnOutWeight: layout.add(p + "attention.output.dense.weight", [C, C]),
                attnOutBias: layout.add(p + "attention.output.dense.bias", [C]),
                ln1Weight: layout.add(p + "attention.output.LayerNorm.weight", [C]),
                ln1Bias: layout.add(p + "attention.output.LayerNorm.bias", [C]),
                interWeight: layout.add(p + "intermediate.dense.weight", [I, C]),
                interBias: layout.add(p + "intermediate.dense.bias", [I]),
                outWeight: layout.add(p + "output.dense.weight", [C, I]),
                outBias: layout.add(p + "output.dense.bias", [C]),
                ln2Weight: layout.add(p + "output.LayerNorm.weight", [C]),
                ln2Bias: layout.add(p + "output.LayerNorm.bias", [C])))
        }
        self.layers = layers
        acts = layers.map { _ in LayerActivations() }
        hiddenDropout = HiddenDropout(sites: 2 * config.numHiddenLayers)
    }

    public func bind(_ parameters: Parameters) { self.parameters = parameters }

    public var hiddenSize: Int { config.hiddenSize }
    public var vocabularySize: Int { config.vocabSize }
    public var maxPositions: Int { config.maxPositionEmbeddings }

    public var encodableConfig: any Encodable { config }

    public func forward(embeddings: UnsafePointer<Float>, batch: PackedBatch, training: Bool) -> UnsafePointer<Float> {
        let (N, C, I, NH) = (batch.tokens, config.hiddenSize, config.intermediateSize, config.numAttentionHeads)
        let eps = config.layerNormEps
        precondition(batch.lengths.allSatisfy { $0 <= maxPositions }, "sequence longer than \(maxPositions) positions")
        self.batch = batch
        hiddenDropout.begin(training: training)
        let p = params

        // Embeddings: inputs + position + token type 0, then LayerNorm.
        positions = batch.lengths.flatMap { (0..<$0).map(Int32.init) }
        types = [Int32](repeating: 0, count: N)
        let sum = embeddingSum.ensure(N * C)
        sum.update(from: embeddings, count: N * C)
        positions.withUnsafeBufferPointer { Embedding.forward(out: sum, ids: $0.baseAddress!, table: p.value(positionEmbeddings), N: N, C: C, accumulate: true) }
        types.withUnsafeBufferPointer { Embedding.forward(out: sum, ids: $0.baseAddress!, table: p.value(typeEmbeddings), N: N, C: C, accumulate: true) }
        LayerNorm.forward(out: embLN.ensure(N * C), mean: embMean.ensure(N), rstd: embRstd.ensure(N), inp: sum,
                          weight: p.value(embLNWeight), bias: p.value(embLNBias), N: N, C: C, eps: eps)

        var x = UnsafePointer(embLN.data)
        for (l, (w, a)) in zip(layers, acts).enumerated() {
            let qkv = a.qkv.ensure(N * 3 * C)
            Linear.forward(out: qkv, inp: x, weight: p.value(w.qkvWeight), bias: p.value(w.qkvBias), N: N, C: C, OC: 3 * C)
            Attention.forward(out: a.attention.ensure(N * C), probs: a.probs.ensure(batch.probsCount(heads: NH)),
                              qkv: qkv, batch: batch, NH: NH, C: C, causal: false)
            let attnOut = a.attnOut.ensure(N * C)
            Linear.forward(out: attnOut, inp: a.attention.data, weight: p.value(w.attnOutWeight), bias: p.value(w.attnOutBias), N: N, C: C, OC: C)
            hiddenDropout.forward(attnOut, site: 2 * l, count: N * C)
            Residual.forward(out: a.residual1.ensure(N * C), a: x, b: attnOut, count: N * C)
            LayerNorm.forward(out: a.ln1.ensure(N * C), mean: a.ln1Mean.ensure(N), rstd: a.ln1Rstd.ensure(N), inp: a.residual1.data,
                              weight: p.value(w.ln1Weight), bias: p.value(w.ln1Bias), N: N, C: C, eps: eps)
            Linear.forward(out: a.inter.ensure(N * I), inp: a.ln1.data, weight: p.value(w.interWeight), bias: p.value(w.interBias), N: N, C: C, OC: I)
            GELU.forward(out: a.gelu.ensure(N * I), inp: a.inter.data, count: N * I, form: config.geluForm ?? .erf)
            let out = a.out.ensure(N * C)
            Linear.forward(out: out, inp: a.gelu.data, weight: p.value(w.outWeight), bias: p.value(w.outBias), N: N, C: I, OC: C)
            hiddenDropout.forward(out, site: 2 * l + 1, count: N * C)
            Residual.forward(out: a.residual2.ensure(N * C), a: a.ln1.data, b: out, count: N * C)
            LayerNorm.forward(out: a.ln2.ensure(N * C), mean: a.ln2Mean.ensure(N), rstd: a.ln2Rstd.ensure(N), inp: a.residual2.data,
                              weight: p.value(w.ln2Weight), bias: p.value(w.ln2Bias), N: N, C: C, eps: eps)
            x = UnsafePointer(a.ln2.data)
        }
        return x
    }

    /// The same function as `forward(…, training: false)` with nothing kept for a backward pass:
    /// biases, residuals, GELU and LayerNorms are fused into the passes after each sgemm
    /// (x ← LN(x + a·Wo + bo); inner ← gelu(x·Wi + bi); x ← LN(x + inner·Wo2 + bo2)), and the
    /// matrices are read from their [in, out] copy. At bf16 or int8 (`useInferencePrecision`) the
    /// four products of each layer run on oneDNN's low-precision matmul (`LowPrecisionLinear`);
    /// everything between them stays fp32.
    public func infer(embeddings: UnsafePointer<Float>, batch: PackedBatch) -> UnsafePointer<Float> {
        let (N, C, I, NH) = (batch.tokens, config.hiddenSize, config.intermediateSize, config.numAttentionHeads)
        let eps = config.layerNormEps
        let form = config.geluForm ?? .erf
        precondition(batch.maxLength <= maxPositions, "sequence longer than \(maxPositions) positions")
        let p = params
        let x = inferX.ensure(N * C), attention = inferAttention.ensure(N * C), dense = inferDense.ensure(N * C)
        let wide = inferWide.ensure(N * max(3 * C, I)), scratch = inferScratch.ensure(Attention.inferenceScratch(batch: batch))
        let project = projection(batchTokens: N)

        // Embeddings: LN(inputs + position + token type 0); type 0's row is the LayerNorm's "bias" term.
        Embedding.addPositions(out: x, inp: embeddings, table: p.value(positionEmbeddings), batch: batch, C: C)
        ResidualLayerNorm.forward(out: x, sum: nil, inp: x, delta: nil, bias: p.value(typeEmbeddings),
                                  weight: p.value(embLNWeight), lnBias: p.value(embLNBias), N: N, C: C, eps: eps)
        for (l, w) in layers.enumerated() {
            project(l, .qkv, wide, x, p.value(w.qkvBias))
            Attention.infer(out: attention, scratch: scratch, qkv: wide, batch: batch, NH: NH, C: C, causal: false)
            project(l, .attentionOutput, dense, attention, nil)
            ResidualLayerNorm.forward(out: x, sum: nil, inp: x, delta: dense, bias: p.value(w.attnOutBias),
                                      weight: p.value(w.ln1Weight), lnBias: p.value(w.ln1Bias), N: N, C: C, eps: eps)
            // At bf16 and int8 the intermediate matrix adds its bias and applies GELU as it writes.
            let fusesGELU = inferencePrecision != .fp32
            project(l, .intermediate, wide, x, fusesGELU ? p.value(w.interBias) : nil)
            if !fusesGELU { GELU.forwardAddingBias(wide, bias: p.value(w.interBias), N: N, I: I, form: form) }
            project(l, .output, dense, wide, nil)
            ResidualLayerNorm.forward(out: x, sum: nil, inp: x, delta: dense, bias: p.value(w.outBias),
                                      weight: p.value(w.ln2Weight), lnBias: p.value(w.ln2Bias), N: N, C: C, eps: eps)
        }
        return UnsafePointer(x)
    }

    /// out (N, out) = inp (N, in) · W (+ bias) for (layer, matrix), at `inferencePrecision`.
    private func projection(batchTokens N: Int)
        -> (Int, InferenceMatrix, UnsafeMutablePointer<Float>, UnsafePointer<Float>, UnsafePointer<Float>?) -> Void {
        if let prepared = lowPrecisionMatrices() {
            let scratch = lowPrecision.scratch
            return { layer, matrix, out, inp, bias in
                prepared[layer][matrix.rawValue].forward(out: out, inp: inp, rows: N, bias: bias, scratch: scratch)
            }
        }
        let (C, I) = (config.hiddenSize, config.intermediateSize)
        let matrices = inferenceMatrices(), perLayer = 4 * C * C + 2 * C * I
        return { layer, matrix, out, inp, bias in
            let (offset, inputs, outputs) = self.placement(matrix)
            Linear.forward(out: out, inp: inp, weight: matrices + layer * perLayer + offset, bias: bias, N: N, C: inputs, OC: outputs,
                           layout: .inOut)
        }
    }

    /// A matrix's offset in a layer's block of `inferWeights`, and its (in, out) sizes.
    private func placement(_ matrix: InferenceMatrix) -> (offset: Int, inputs: Int, outputs: Int) {
        let (C, I) = (config.hiddenSize, config.intermediateSize)
        switch matrix {
        case .qkv: return (0, C, 3 * C)
        case .attentionOutput: return (3 * C * C, C, C)
        case .intermediate: return (4 * C * C, C, I)
        case .output: return (4 * C * C + C * I, I, C)
        }
    }

    public func useInferencePrecision(_ precision: Precision) throws {
        try lowPrecision.select(precision)
        // Prepared now, at load, rather than by the first request.
        if parameters != nil { _ = lowPrecisionMatrices() }
    }

    /// Every layer's matrices at `inferencePrecision` (nil at fp32), made once; their fp32 values are released (`LowPrecisionWeights`).
    private func lowPrecisionMatrices() -> [[LowPrecisionLinear]]? {
        let p = params
        let handles: [(LayerWeights) -> Parameters.Handle] = [\.qkvWeight, \.attnOutWeight, \.interWeight, \.outWeight]
        return lowPrecision.prepared {
            layers.map { w in
                InferenceMatrix.allCases.map { matrix in
                    let (_, inputs, outputs) = placement(matrix)
                    return lowPrecision.linear(matrix.product, of: p, weight: p.value(handles[matrix.rawValue](w)), outputs: outputs, inputs: inputs,
                                               gelu: matrix == .intermediate ? config.geluForm ?? .erf : nil)
                }
            }
        }
    }

    /// The [in, out] copy of every layer's matrices, remade when the parameters changed.
    private func inferenceMatrices() -> UnsafePointer<Float> {
        let p = params
        let (C, I) = (config.hiddenSize, config.intermediateSize)
        let perLayer = 4 * C * C + 2 * C * I
        let matrices = inferWeights.ensure(layers.count * perLayer)
        guard inferWeightsVersion != p.version else { return UnsafePointer(matrices) }
        for (l, w) in layers.enumerated() {
            let qkvT = matrices + l * perLayer, attnOutT = qkvT + 3 * C * C, interT = attnOutT + C * C, outT = interT + C * I
            Transpose.forward(out: qkvT, inp: p.value(w.qkvWeight), rows: 3 * C, columns: C)
            Transpose.forward(out: attnOutT, inp: p.value(w.attnOutWeight), rows: C, columns: C)
            Transpose.forward(out: interT, inp: p.value(w.interWeight), rows: I, columns: C)
            Transpose.forward(out: outT, inp: p.value(w.outWeight), rows: C, columns: I)
        }
        inferWeightsVersion = p.version
        return UnsafePointer(matrices)
    }

    /// Its layers' ranges, top down: the order `backward` finishes them.
    public var gradientSegments: [Range<Int>] {
        computesParameterGradients ? layers.reversed().map(gradientRange) : []
    }

    /// A layer's tensors in the flat buffer: declared consecutively, query weight to LN2 bias.
    func gradientRange(of layer: LayerWeights) -> Range<Int> {
        let last = params.entry(layer.ln2Bias)
        return params.entry(layer.qkvWeight).offset..<(last.offset + last.count)
    }

    public func backward(dhidden: UnsafePointer<Float>) -> UnsafePointer<Float> {
        let (N, C, I, NH) = (batch.tokens, config.hiddenSize, config.intermediateSize, config.numAttentionHeads)
        let p = params
        let weights = computesParameterGradients
        func g(_ h: Parameters.Handle) -> UnsafeMutablePointer<Float>? { weights ? p.grad(h) : nil }

        // dx: gradient w.r.t. the current layer's output; reused across layers.
        let dx = self.dx.ensure(N * C)
        dx.update(from: dhidden, count: N * C)
        for l in stride(from: layers.count - 1, through: 0, by: -1) {
            let (w, a) = (layers[l], acts[l])
            let input = l == 0 ? UnsafePointer(embLN.data) : UnsafePointer(acts[l - 1].ln2.data)
            // x2 = LN2(x1 + out)
            let dResidual2 = dA.zeroed(N * C)
            LayerNorm.backward(dinp: dResidual2, dweight: g(w.ln2Weight), dbias: g(w.ln2Bias), dout: dx, inp: a.residual2.data,
                               weight: p.value(w.ln2Weight), mean: a.ln2Mean.data, rstd: a.ln2Rstd.data, N: N, C: C)
            let dLN1 = dB.zeroed(N * C), dOut = dx
            dOut.update(repeating: 0, count: N * C)
            Residual.backward(da: dLN1, db: dOut, dout: dResidual2, count: N * C)
            let dOutDense = hiddenDropout.backward(dOut, site: 2 * l + 1, count: N * C)
            let dGelu = dWide.zeroed(N * I)
            Linear.backward(dinp: dGelu, dweight: g(w.outWeight), dbias: g(w.outBias), dout: dOutDense, inp: a.gelu.data,
                            weight: p.value(w.outWeight), N: N, C: I, OC: C)
            let dInter = dWide2.zeroed(N * I)
            GELU.backward(dinp: dInter, dout: dGelu, inp: a.inter.data, count: N * I, form: config.geluForm ?? .erf)
            Linear.backward(dinp: dLN1, dweight: g(w.interWeight), dbias: g(w.interBias), dout: dInter, inp: a.ln1.data,
                            weight: p.value(w.interWeight), N: N, C: C, OC: I)
            // x1 = LN1(x + attnOut)
            let dResidual1 = dA.zeroed(N * C)
            LayerNorm.backward(dinp: dResidual1, dweight: g(w.ln1Weight), dbias: g(w.ln1Bias), dout: dLN1, inp: a.residual1.data,
                               weight: p.value(w.ln1Weight), mean: a.ln1Mean.data, rstd: a.ln1Rstd.data, N: N, C: C)
            let dInput = dx, dAttnOut = dB.zeroed(N * C)
            dInput.update(repeating: 0, count: N * C)
            Residual.backward(da: dInput, db: dAttnOut, dout: dResidual1, count: N * C)
            let dAttnDense = hiddenDropout.backward(dAttnOut, site: 2 * l, count: N * C)
            let dAttention = dA.zeroed(N * C)
            Linear.backward(dinp: dAttention, dweight: g(w.attnOutWeight), dbias: g(w.attnOutBias), dout: dAttnDense,
                            inp: a.attention.data, weight: p.value(w.attnOutWeight), N: N, C: C, OC: C)
            let dqkv = dQKV.zeroed(N * 3 * C)
            Attention.backward(dqkv: dqkv, dout: dAttention, qkv: a.qkv.data, probs: a.probs.data, batch: batch, NH: NH, C: C)
            Linear.backward(dinp: dInput, dweight: g(w.qkvWeight), dbias: g(w.qkvBias), dout: dqkv, inp: input,
                            weight: p.value(w.qkvWeight), N: N, C: C, OC: 3 * C)
            if weights { p.onGradientsFinished?(gradientRange(of: w)) }
        }
        // Embedding LayerNorm, then the sum's position and type tables.
        let dSum = dA.zeroed(N * C)
        LayerNorm.backward(dinp: dSum, dweight: g(embLNWeight), dbias: g(embLNBias), dout: dx, inp: embeddingSum.data,
                           weight: p.value(embLNWeight), mean: embMean.data, rstd: embRstd.data, N: N, C: C)
        if weights {
            positions.withUnsafeBufferPointer { Embedding.backward(dtable: p.grad(positionEmbeddings), dout: dSum, ids: $0.baseAddress!, N: N, C: C) }
            types.withUnsafeBufferPointer { Embedding.backward(dtable: p.grad(typeEmbeddings), dout: dSum, ids: $0.baseAddress!, N: N, C: C) }
        }
        return UnsafePointer(dSum)
    }
}
