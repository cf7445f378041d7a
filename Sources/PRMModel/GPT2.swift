import Foundation
import PRMCore

/// Hugging Face `GPT2Config` (only what the decoder needs).
public struct GPT2Config: Codable, Sendable {
    public var vocabSize: Int
    public var nPositions: Int
    public var nEmbd: Int
    public var nLayer: Int
    public var nHead: Int
    public var nInner: Int?
    public var layerNormEpsilon: Float
    public var activationFunction: String
    public var eosTokenID: Int?
    /// Keys whose non-default values change the computation in ways this decoder does not
    /// implement; read so that such a config is refused instead of silently computing something else.
    public var scaleAttnWeights: Bool
    public var scaleAttnByInverseLayerIdx: Bool
    public var reorderAndUpcastAttn: Bool
    public var addCrossAttention: Bool

    enum CodingKeys: String, CodingKey {
        case vocabSize = "vocab_size", nPositions = "n_positions", nCtx = "n_ctx", nEmbd = "n_embd", nLayer = "n_layer"
        case nHead = "n_head", nInner = "n_inner", layerNormEpsilon = "layer_norm_epsilon"
        case activationFunction = "activation_function", eosTokenID = "eos_token_id"
        case scaleAttnWeights = "scale_attn_weights", scaleAttnByInverseLayerIdx = "scale_attn_by_inverse_layer_idx"
        case reorderAndUpcastAttn = "reorder_and_upcast_attn", addCrossAttention = "add_cross_attention"
        /// Written for Hugging Face readers; the decoder itself never reads them.
        case modelType = "model_type", architectures
    }

    /// Hugging Face's defaults for the keys a config may leave out.
    static let defaultEpsilon: Float = 1e-5, defaultActivation = "gelu_new"

    /// A new decoder's config (`prm sft`), Hugging Face's defaults for the rest.
    public init(vocabSize: Int, nPositions: Int, nEmbd: Int, nLayer: Int, nHead: Int) {
        (self.vocabSize, self.nPositions, self.nEmbd, self.nLayer, self.nHead) = (vocabSize, nPositions, nEmbd, nLayer, nHead)
        layerNormEpsilon = Self.defaultEpsilon
        activationFunction = Self.defaultActivation
        (scaleAttnWeights, scaleAttnByInverseLayerIdx, reorderAndUpcastAttn, addCrossAttention) = (true, false, false, false)
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        vocabSize = try c.decode(Int.self, forKey: .vocabSize)
        nPositions = try c.decodeIfPresent(Int.self, forKey: .nPositions) ?? c.decode(Int.self, forKey: .nCtx)
        nEmbd = try c.decode(Int.self, forKey: .nEmbd)
        nLayer = try c.decode(Int.self, forKey: .nLayer)
        nHead = try c.decode(Int.self, forKey: .nHead)
        nInner = try c.decodeIfPresent(Int.self, forKey: .nInner)
        layerNormEpsilon = try c.decodeIfPresent(Float.self, forKey: .layerNormEpsilon) ?? Self.defaultEpsilon
        activationFunction = try c.decodeIfPresent(String.self, forKey: .activationFunction) ?? Self.defaultActivation
        eosTokenID = try c.decodeIfPresent(Int.self, forKey: .eosTokenID)
        scaleAttnWeights = try c.decodeIfPresent(Bool.self, forKey: .scaleAttnWeights) ?? true
        scaleAttnByInverseLayerIdx = try c.decodeIfPresent(Bool.self, forKey: .scaleAttnByInverseLayerIdx) ?? false
        reorderAndUpcastAttn = try c.decodeIfPresent(Bool.self, forKey: .reorderAndUpcastAttn) ?? false
        addCrossAttention = try c.decodeIfPresent(Bool.self, forKey: .addCrossAttention) ?? false
    }

    /// The keys a checkpoint's config.json has always held. The refused-unless-default keys are
    /// left out: only Hugging Face's defaults pass `validated`, so a reader's defaults agree.
    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode("gpt2", forKey: .modelType)
        try c.encode(["GPT2Model"], forKey: .architectures)
        try c.encode(vocabSize, forKey: .vocabSize)
        try c.encode(nPositions, forKey: .nPositions)
        try c.encode(nEmbd, forKey: .nEmbd)
        try c.encode(nLayer, forKey: .nLayer)
        try c.encode(nHead, forKey: .nHead)
        try c.encodeIfPresent(nInner, forKey: .nInner)
        try c.encode(layerNormEpsilon, forKey: .layerNormEpsilon)
        try c.encode(activationFunction, forKey: .activationFunction)
        try c.encodeIfPresent(eosTokenID, forKey: .eosTokenID)
    }

    var inner: Int { nInner ?? 4 * nEmbd }

    var geluForm: GELU.Form? {
        switch activationFunction {
        case "gelu_new", "gelu_pytorch_tanh": return .tanh
        case "gelu": return .erf
        default: return nil
        }
    }

    func validated(_ url: URL) throws -> GPT2Config {
        try require(nEmbd > 0 && nLayer > 0 && vocabSize > 0 && nPositions > 0 && inner > 0, url, "sizes must be positive")
        try require(nHead > 0 && nEmbd % nHead == 0, url, "n_embd \(nEmbd) is not divisible by n_head \(nHead)")
        try require(geluForm != nil, url, "unsupported activation_function '\(activationFunction)' (supported: gelu_new, gelu)")
        try require(scaleAttnWeights, url, "scale_attn_weights false is not implemented (attention is always scaled by 1/sqrt(head size))")
        try require(!scaleAttnByInverseLayerIdx, url, "scale_attn_by_inverse_layer_idx true is not implemented")
        try require(!reorderAndUpcastAttn, url, "reorder_and_upcast_attn true is not implemented")
        try require(!addCrossAttention, url, "add_cross_attention true is not implemented")
        return self
    }
}

/// A GPT-2-style causal decoder (pre-LN, learned positions), Hugging Face GPT-2 names and
/// Conv1D weight layouts ([in, out]) read as they are stored: sgemm takes the layout flag.
public final class GPT2Model: Backbone {
    public let config: GPT2Config
    public let modelType = "gpt2"
    public let attending = Attending.causal
    public var computesParameterGradients = true
    public let hiddenDropout: HiddenDropout
    public let weightPrefixes = ["", "transformer."]

    struct BlockWeights {
        let ln1Weight, ln1Bias, attnWeight, attnBias, projWeight, projBias: Parameters.Handle
        let ln2Weight, ln2Bias, fcWeight, fcBias, fcProjWeight, fcProjBias: Parameters.Handle
    }

    final class BlockActivations {
        let ln1 = GrowableBuffer(), ln1Mean = GrowableBuffer(), ln1Rstd = GrowableBuffer()
        let qkv = GrowableBuffer(), attention = GrowableBuffer(), probs = GrowableBuffer()
        let proj = GrowableBuffer(), residual1 = GrowableBuffer()
        let ln2 = GrowableBuffer(), ln2Mean = GrowableBuffer(), ln2Rstd = GrowableBuffer()
        let fc = GrowableBuffer(), gelu = GrowableBuffer(), fcProj = GrowableBuffer(), residual2 = GrowableBuffer()
    }

    public let wordEmbeddings: Parameters.Handle
    let positionEmbeddings, lnFWeight, lnFBias: Parameters.Handle
    let blocks: [BlockWeights]
    private let acts: [BlockActivations]
    private var parameters: Parameters?
    private var params: Parameters {
        guard let parameters else { preconditionFailure("GPT2Model used before bind(_:)") }
        return parameters
    }

    private var batch = PackedBatch(lengths: [])
    private var positions: [Int32] = []
    private let embeddingSum = GrowableBuffer()
    private let hidden = GrowableBuffer(), lnFMean = GrowableBuffer(), lnFRstd = GrowableBuffer()
    private let dx = GrowableBuffer(), dA = GrowableBuffer(), dB = GrowableBuffer()
    private let dWide = GrowableBuffer(), dWide2 = GrowableBuffer(), dQKV = GrowableBuffer()
    // Inference (packed, KV-cached and continuations alike): six buffers reused by every block and
    // batch, sized by the largest batch seen; the training activations above are never touched.
    private let inferX = GrowableBuffer()         // (N, C) the residual stream, updated in place
    private let inferNormed = GrowableBuffer()    // (N, C) its LayerNorm: each block's input, last the hidden states
    private let inferAttention = GrowableBuffer() // (N, C)
    private let inferDense = GrowableBuffer()     // (N, C) a projection's output before bias and residual
    private let inferWide = GrowableBuffer()      // (N, max(3C, I)): Q|K|V, then the MLP's inner activations
    private let inferScratch = GrowableBuffer()   // attention scores, one block per worker
    /// At bf16 and int8, per block its four matrices (`InferenceMatrix` order) prepared for
    /// `inferencePrecision`; at fp32 the blocks read their [in, out] weights directly.
    private let lowPrecision = LowPrecisionWeights()
    public var inferencePrecision: Precision { lowPrecision.precision }

    /// A block's matrices in the order of the forward pass.
    enum InferenceMatrix: Int, CaseIterable {
        case attention, projection, fc, fcProjection

        var product: MatrixProduct {
            switch self {
            case .attention: return .qkv
            case .projection: return .attentionOutput
            case .fc: return .ffnUp
            case .fcProjection: return .ffnDown
            }
        }
    }

    public init(config: GPT2Config, layout: inout Parameters.Layout) {
        self.config = config
        let (C, I) = (config.nEmbd, config.inner)
        wordEmbeddings = layout.add("wte.weight", [config.vocabSize, C])
        positionEmbeddings = layout.add("wpe.weight", [config.nPositions, C])
        var blocks: [BlockWeights] = []
        for l in 0..<config.nLayer {
            let p = "h.\(l)."
            blocks.append(BlockWeights(
                ln1Weight: layout.add(p + "ln_1.weight", [C]), ln1Bias: layout.add(p + "ln_1.bias", [C]),
                attnWeight: layout.add(p + "attn.c_attn.weight", [C, 3 * C]), attnBias: layout.add(p + "attn.c_attn.bias", [3 * C]),
                projWeight: layout.add(p + "attn.c_proj.weight", [C, C]), projBias: layout.add(p + "attn.c_proj.bias", [C]),
                ln2Weight: layout.add(p + "ln_2.weight", [C]), ln2Bias: layout.add(p + "ln_2.bias", [C]),
                fcWeight: layout.add(p + "mlp.c_fc.weight", [C, I]), fcBias: layout.add(p + "mlp.c_fc.bias", [I]),
                fcProjWeight: layout.add(p + "mlp.c_proj.weight", [I, C]), fcProjBias: layout.add(p + "mlp.c_proj.bias", [C])))
        }
        lnFWeight = layout.add("ln_f.weight", [C])
        lnFBias = layout.add("ln_f.bias", [C])
        self.blocks = blocks
        acts = blocks.map { _ in BlockActivations() }
        hiddenDropout = HiddenDropout(sites: 2 * config.nLayer)
    }

    public func bind(_ parameters: Parameters) { self.parameters = parameters }

    public var hiddenSize: Int { config.nEmbd }
    public var vocabularySize: Int { config.vocabSize }
    public var maxPositions: Int { config.nPositions }

    public var encodableConfig: any Encodable { config }

    // MARK: - Training forward / backward over a packed batch

    public func forward(embeddings: UnsafePointer<Float>, batch: PackedBatch, training: Bool) -> UnsafePointer<Float> {
        precondition(batch.lengths.allSatisfy { $0 <= maxPositions }, "sequence longer than \(maxPositions) positions")
        self.batch = batch
        positions = batch.lengths.flatMap { (0..<$0).map(Int32.init) }
        hiddenDropout.begin(training: training)
        let (N, C, I, NH) = (batch.tokens, config.nEmbd, config.inner, config.nHead)
        let eps = config.layerNormEpsilon
        let form = config.geluForm ?? .tanh
        let p = params
        let x0 = embeddingSum.ensure(N * C)
        x0.update(from: embeddings, count: N * C)
        positions.withUnsafeBufferPointer { Embedding.forward(out: x0, ids: $0.baseAddress!, table: p.value(positionEmbeddings), N: N, C: C, accumulate: true) }
        var x = UnsafePointer(x0)
        for (l, (w, a)) in zip(blocks, acts).enumerated() {
            LayerNorm.forward(out: a.ln1.ensure(N * C), mean: a.ln1Mean.ensure(N), rstd: a.ln1Rstd.ensure(N), inp: x,
                              weight: p.value(w.ln1Weight), bias: p.value(w.ln1Bias), N: N, C: C, eps: eps)
            Linear.forward(out: a.qkv.ensure(N * 3 * C), inp: a.ln1.data, weight: p.value(w.attnWeight), bias: p.value(w.attnBias),
                           N: N, C: C, OC: 3 * C, layout: .inOut)
            Attention.forward(out: a.attention.ensure(N * C), probs: a.probs.ensure(batch.probsCount(heads: NH)),
                              qkv: a.qkv.data, batch: batch, NH: NH, C: C, causal: true)
            Linear.forward(out: a.proj.ensure(N * C), inp: a.attention.data, weight: p.value(w.projWeight), bias: p.value(w.projBias),
                           N: N, C: C, OC: C, layout: .inOut)
            hiddenDropout.forward(a.proj.data, site: 2 * l, count: N * C)
            Residual.forward(out: a.residual1.ensure(N * C), a: x, b: a.proj.data, count: N * C)
            LayerNorm.forward(out: a.ln2.ensure(N * C), mean: a.ln2Mean.ensure(N), rstd: a.ln2Rstd.ensure(N), inp: a.residual1.data,
                              weight: p.value(w.ln2Weight), bias: p.value(w.ln2Bias), N: N, C: C, eps: eps)
            Linear.forward(out: a.fc.ensure(N * I), inp: a.ln2.data, weight: p.value(w.fcWeight), bias: p.value(w.fcBias),
                           N: N, C: C, OC: I, layout: .inOut)
            GELU.forward(out: a.gelu.ensure(N * I), inp: a.fc.data, count: N * I, form: form)
            Linear.forward(out: a.fcProj.ensure(N * C), inp: a.gelu.data, weight: p.value(w.fcProjWeight), bias: p.value(w.fcProjBias),
                           N: N, C: I, OC: C, layout: .inOut)
            hiddenDropout.forward(a.fcProj.data, site: 2 * l + 1, count: N * C)
            Residual.forward(out: a.residual2.ensure(N * C), a: a.residual1.data, b: a.fcProj.data, count: N * C)
            x = UnsafePointer(a.residual2.data)
        }
        LayerNorm.forward(out: hidden.ensure(N * C), mean: lnFMean.ensure(N), rstd: lnFRstd.ensure(N), inp: x,
                          weight: p.value(lnFWeight), bias: p.value(lnFBias), N: N, C: C, eps: eps)
        return UnsafePointer(hidden.data)
    }

    public func backward(dhidden: UnsafePointer<Float>) -> UnsafePointer<Float> {
        let (N, C, I, NH) = (batch.tokens, config.nEmbd, config.inner, config.nHead)
        let p = params
        let weights = computesParameterGradients
        let form = config.geluForm ?? .tanh
        func g(_ h: Parameters.Handle) -> UnsafeMutablePointer<Float>? { weights ? p.grad(h) : nil }

        // hidden = LN_f(x_L)
        let dx = self.dx.zeroed(N * C)
        let xL = blocks.isEmpty ? UnsafePointer(embeddingSum.data) : UnsafePointer(acts[blocks.count - 1].residual2.data)
        LayerNorm.backward(dinp: dx, dweight: g(lnFWeight), dbias: g(lnFBias), dout: dhidden, inp: xL,
                           weight: p.value(lnFWeight), mean: lnFMean.data, rstd: lnFRstd.data, N: N, C: C)
        for l in stride(from: blocks.count - 1, through: 0, by: -1) {
            let (w, a) = (blocks[l], acts[l])
            let input = l == 0 ? UnsafePointer(embeddingSum.data) : UnsafePointer(acts[l - 1].residual2.data)
            // x_out = res1 + fcProj(gelu(fc(LN2(res1)))): dx flows to res1 directly and through the MLP.
            let dGelu = dWide.zeroed(N * I)
            let dFCProj = hiddenDropout.backward(dx, site: 2 * l + 1, count: N * C)
            Linear.backward(dinp: dGelu, dweight: g(w.fcProjWeight), dbias: g(w.fcProjBias), dout: dFCProj, inp: a.gelu.data,
                            weight: p.value(w.fcProjWeight), N: N, C: I, OC: C, layout: .inOut)
            let dFC = dWide2.zeroed(N * I)
            GELU.backward(dinp: dFC, dout: dGelu, inp: a.fc.data, count: N * I, form: form)
            let dLN2 = dA.zeroed(N * C)
            Linear.backward(dinp: dLN2, dweight: g(w.fcWeight), dbias: g(w.fcBias), dout: dFC, inp: a.ln2.data,
                            weight: p.value(w.fcWeight), N: N, C: C, OC: I, layout: .inOut)
            LayerNorm.backward(dinp: dx, dweight: g(w.ln2Weight), dbias: g(w.ln2Bias), dout: dLN2, inp: a.residual1.data,
                               weight: p.value(w.ln2Weight), mean: a.ln2Mean.data, rstd: a.ln2Rstd.data, N: N, C: C)
            // res1 = x_in + proj(attn(LN1(x_in))): dx now holds d res1.
            let dAttention = dB.zeroed(N * C)
            let dProj = hiddenDropout.backward(dx, site: 2 * l, count: N * C)
            Linear.backward(dinp: dAttention, dweight: g(w.projWeight), dbias: g(w.projBias), dout: dProj, inp: a.attention.data,
                            weight: p.value(w.projWeight), N: N, C: C, OC: C, layout: .inOut)
            let dqkv = dQKV.zeroed(N * 3 * C)
            Attention.backward(dqkv: dqkv, dout: dAttention, qkv: a.qkv.data, probs: a.probs.data, batch: batch, NH: NH, C: C)
            let dLN1 = dA.zeroed(N * C)
            Linear.backward(dinp: dLN1, dweight: g(w.attnWeight), dbias: g(w.attnBias), dout: dqkv, inp: a.ln1.data,
                            weight: p.value(w.attnWeight), N: N, C: C, OC: 3 * C, layout: .inOut)
            LayerNorm.backward(dinp: dx, dweight: g(w.ln1Weight), dbias: g(w.ln1Bias), dout: dLN1, inp: input,
                               weight: p.value(w.ln1Weight), mean: a.ln1Mean.data, rstd: a.ln1Rstd.data, N: N, C: C)
        }
        // x_0 = embeddings + wpe[positions]: the embeddings' gradient is dx itself.
        if weights {
            positions.withUnsafeBufferPointer { Embedding.backward(dtable: p.grad(positionEmbeddings), dout: dx, ids: $0.baseAddress!, N: N, C: C) }
        }
        return UnsafePointer(dx)
    }

    // MARK: - Language-model head (tied to wte)

    /// logits (N, V) = hidden (N, C) · wteᵀ.
    public func logits(out: UnsafeMutablePointer<Float>, hidden: UnsafePointer<Float>, N: Int) {
        Linear.forward(out: out, inp: hidden, weight: params.value(wordEmbeddings), bias: nil, N: N, C: config.nEmbd, OC: config.vocabSize)
    }

    /// Accumulates dhidden (N, C) and d wte from dlogits (N, V).
    public func logitsBackward(dhidden: UnsafeMutablePointer<Float>, dlogits: UnsafePointer<Float>, hidden: UnsafePointer<Float>, N: Int) {
        Linear.backward(dinp: dhidden, dweight: computesParameterGradients ? params.grad(wordEmbeddings) : nil, dbias: nil,
                        dout: dlogits, inp: hidden, weight: params.value(wordEmbeddings), N: N, C: config.nEmbd, OC: config.vocabSize)
    }

    // MARK: - Inference: packed batches, KV cache, continuations

    /// The same function as `forward(…, training: false)` with nothing kept for a backward pass.
    public func infer(embeddings: UnsafePointer<Float>, batch: PackedBatch) -> UnsafePointer<Float> {
        precondition(batch.maxLength <= maxPositions, "sequence longer than \(maxPositions) positions")
        let (C, NH) = (config.nEmbd, config.nHead)
        let scratch = inferScratch.ensure(Attention.inferenceScratch(batch: batch))
        return inferBlocks(embeddings: embeddings, batch: batch, positions: .after(0), cache: nil) { _, qkv, out in
            Attention.infer(out: out, scratch: scratch, qkv: qkv, batch: batch, NH: NH, C: C, causal: true)
        }
    }

    public func makeCache() -> KVCache { KVCache(layers: config.nLayer, width: config.nEmbd) }

    /// Runs `embeddings` (T, C) as the next tokens after what `cache` holds, appends their keys and
    /// values, and returns their hidden states (T, C). Incremental decoding is repeated calls.
    public func extend(_ cache: KVCache, embeddings: UnsafePointer<Float>, count T: Int) -> UnsafePointer<Float> {
        let P = cache.count
        precondition(P + T <= maxPositions, "sequence longer than \(maxPositions) positions")
        let out = inferAfterPrefix(cache, embeddings: embeddings, batch: PackedBatch(lengths: [T]), append: true)
        cache.setCount(P + T)
        return out
    }

    /// Hidden states (N, C) of several continuations, each following the cached prefix; the cache
    /// is read, not changed. The prefix is computed once however many continuations there are.
    public func continuations(after cache: KVCache, embeddings: UnsafePointer<Float>, batch: PackedBatch) -> UnsafePointer<Float> {
        precondition(cache.count + batch.maxLength <= maxPositions, "sequence longer than \(maxPositions) positions")
        return inferAfterPrefix(cache, embeddings: embeddings, batch: batch, append: false)
    }

    /// One decoding step for B sequences at once: sequence b is `prefixes[b]` (read, never changed:
    /// a prompt's cache shared by all its samples) followed by `own[b]` (its reply so far), and
    /// `embeddings` (B, C) holds its next token. Appends each token's keys and values to `own[b]`
    /// and returns hidden states (B, C). The B tokens go through every linear layer as one batch.
    public func decodeStep(prefixes: [KVCache], own: [KVCache], embeddings: UnsafePointer<Float>) -> UnsafePointer<Float> {
        precondition(prefixes.count == own.count, "one prefix per sequence")
        let B = own.count
        let positions = (0..<B).map { Int32(prefixes[$0].count + own[$0].count) }
        precondition(positions.allSatisfy { Int($0) < maxPositions }, "sequence longer than \(maxPositions) positions")
        let (C, NH) = (config.nEmbd, config.nHead)
        let hs = C / NH
        // Each worker's probabilities for one (sequence, head): at most the longest sequence.
        let longest = (0..<B).map { prefixes[$0].count + own[$0].count + 1 }.max() ?? 1
        let scratch = inferScratch.ensure(Parallel.workers * longest)
        let batch = PackedBatch(lengths: Array(repeating: 1, count: B))
        let hidden = inferBlocks(embeddings: embeddings, batch: batch, positions: .explicit(positions), cache: nil) { l, qkv, out in
            for b in 0..<B { own[b].append(layer: l, qkv: qkv + b * 3 * C, rows: 1, at: own[b].count) }
            Parallel.forEachItem(B * NH) { worker, item in
                let (b, h) = (item / NH, item % NH)
                let (prefix, mine) = (prefixes[b], own[b])
                let (P, R) = (prefix.count, mine.count + 1)
                Attention.attendHeadStep(out: out + b * C + h * hs, probs: scratch + worker * longest, q: qkv + b * 3 * C + h * hs,
                                         prefixK: prefix.keys[l].data + h * hs, prefixV: prefix.values[l].data + h * hs, ldPrefix: C, P: P,
                                         ownK: mine.keys[l].data + h * hs, ownV: mine.values[l].data + h * hs, ldOwn: C, R: R, hs: hs)
            }
        }
        for cache in own { cache.setCount(cache.count + 1) }
        return hidden
    }

    /// Attention of each sequence over the cached prefix and its own earlier tokens, in two parts
    /// (no prefix copy); each worker scores in its own (T, P + T) slice of the scratch buffer.
    private func inferAfterPrefix(_ cache: KVCache, embeddings: UnsafePointer<Float>, batch: PackedBatch, append: Bool) -> UnsafePointer<Float> {
        let P = cache.count
        let (C, NH) = (config.nEmbd, config.nHead)
        let hs = C / NH
        let block = batch.maxLength * (P + batch.maxLength)
        let scratch = inferScratch.ensure(Parallel.workers * block)
        return inferBlocks(embeddings: embeddings, batch: batch, positions: .after(P), cache: append ? cache : nil) { l, qkv, out in
            let prefixK = UnsafePointer(cache.keys[l].data), prefixV = UnsafePointer(cache.values[l].data)
            Parallel.forEachItem(batch.count * NH) { worker, item in
                let (b, h) = (item / NH, item % NH)
                let q = qkv + batch.starts[b] * 3 * C + h * hs
                Attention.attendHeadAfterPrefix(out: out + batch.starts[b] * C + h * hs, ldo: C, probs: scratch + worker * block,
                                                q: q, k: q + C, v: q + 2 * C, ld: 3 * C,
                                                prefixK: prefixK + h * hs, prefixV: prefixV + h * hs, ldPrefix: C,
                                                P: P, T: batch.lengths[b], hs: hs)
            }
        }
    }

    /// Where the rows of an inference batch sit in their sequences.
    private enum RowPositions {
        /// Each packed sequence's rows follow this many cached tokens.
        case after(Int)
        /// One position per row (decoding steps of sequences of different lengths).
        case explicit([Int32])
    }

    /// The inference block stack: positions (`RowPositions`), blocks with the
    /// caller's attention over qkv (N, 3C) into out (N, C), keys and values appended to `cache`,
    /// final LayerNorm. Each LayerNorm is fused with the residual before it:
    /// x ← x + a·Wp + bp, h = LN2(x); x ← x + gelu(h·Wfc + bfc)·Wproj + bproj, h = LN1'(x) (LN_f last).
    private func inferBlocks(embeddings: UnsafePointer<Float>, batch: PackedBatch, positions: RowPositions, cache: KVCache?,
                             attention: (_ layer: Int, _ qkv: UnsafePointer<Float>, _ out: UnsafeMutablePointer<Float>) -> Void)
        -> UnsafePointer<Float> {
        let (N, C, I) = (batch.tokens, config.nEmbd, config.inner)
        let eps = config.layerNormEpsilon
        let form = config.geluForm ?? .tanh
        let p = params
        let x = inferX.ensure(N * C), h = inferNormed.ensure(N * C)
        let attended = inferAttention.ensure(N * C), dense = inferDense.ensure(N * C), wide = inferWide.ensure(N * max(3 * C, I))
        switch positions {
        case .after(let offset):
            Embedding.addPositions(out: x, inp: embeddings, table: p.value(positionEmbeddings), batch: batch, offset: offset, C: C)
        case .explicit(let ids):
            precondition(ids.count == N, "one position per row")
            x.update(from: embeddings, count: N * C)
            ids.withUnsafeBufferPointer { Embedding.forward(out: x, ids: $0.baseAddress!, table: p.value(positionEmbeddings), N: N, C: C, accumulate: true) }
        }
        // The LayerNorm each block starts with, and the final one after the last block.
        func norm(after l: Int) -> (Parameters.Handle, Parameters.Handle) {
            l + 1 < blocks.count ? (blocks[l + 1].ln1Weight, blocks[l + 1].ln1Bias) : (lnFWeight, lnFBias)
        }
        let (gain, shift) = norm(after: -1)
        ResidualLayerNorm.forward(out: h, sum: nil, inp: x, delta: nil, bias: nil, weight: p.value(gain), lnBias: p.value(shift),
                                  N: N, C: C, eps: eps)
        let project = projection(rows: N)
        for (l, w) in blocks.enumerated() {
            project(l, .attention, wide, h, p.value(w.attnBias))
            attention(l, wide, attended)
            if let cache { cache.append(layer: l, qkv: wide, rows: N, at: cache.count) }
            project(l, .projection, dense, attended, nil)
            ResidualLayerNorm.forward(out: h, sum: x, inp: x, delta: dense, bias: p.value(w.projBias),
                                      weight: p.value(w.ln2Weight), lnBias: p.value(w.ln2Bias), N: N, C: C, eps: eps)
            // At bf16 and int8 the fc matrix adds its bias and applies GELU as it writes.
            let fusesGELU = inferencePrecision != .fp32
            project(l, .fc, wide, h, fusesGELU ? p.value(w.fcBias) : nil)
            if !fusesGELU { GELU.forwardAddingBias(wide, bias: p.value(w.fcBias), N: N, I: I, form: form) }
            project(l, .fcProjection, dense, wide, nil)
            let (gain, shift) = norm(after: l)
            ResidualLayerNorm.forward(out: h, sum: x, inp: x, delta: dense, bias: p.value(w.fcProjBias),
                                      weight: p.value(gain), lnBias: p.value(shift), N: N, C: C, eps: eps)
        }
        return UnsafePointer(h)
    }

    /// out (N, out) = inp (N, in) · W (+ bias) for (block, matrix), at `inferencePrecision`.
    private func projection(rows N: Int)
        -> (Int, InferenceMatrix, UnsafeMutablePointer<Float>, UnsafePointer<Float>, UnsafePointer<Float>?) -> Void {
        if let prepared = lowPrecisionMatrices() {
            let scratch = lowPrecision.scratch
            return { block, matrix, out, inp, bias in
                prepared[block][matrix.rawValue].forward(out: out, inp: inp, rows: N, bias: bias, scratch: scratch)
            }
        }
        let p = params
        return { block, matrix, out, inp, bias in
            let (inputs, outputs) = self.sizes(matrix)
            Linear.forward(out: out, inp: inp, weight: p.value(self.weight(matrix, of: self.blocks[block])), bias: bias,
                           N: N, C: inputs, OC: outputs, layout: .inOut)
        }
    }

    /// A matrix's (in, out) sizes.
    private func sizes(_ matrix: InferenceMatrix) -> (inputs: Int, outputs: Int) {
        let (C, I) = (config.nEmbd, config.inner)
        switch matrix {
        case .attention: return (C, 3 * C)
        case .projection: return (C, C)
        case .fc: return (C, I)
        case .fcProjection: return (I, C)
        }
    }

    private func weight(_ matrix: InferenceMatrix, of block: BlockWeights) -> Parameters.Handle {
        switch matrix {
        case .attention: return block.attnWeight
        case .projection: return block.projWeight
        case .fc: return block.fcWeight
        case .fcProjection: return block.fcProjWeight
        }
    }

    public func useInferencePrecision(_ precision: Precision) throws {
        try lowPrecision.select(precision)
        // Prepared now, at load, rather than by the first request.
        if parameters != nil { _ = lowPrecisionMatrices() }
    }

    /// Every block's matrices at `inferencePrecision` (nil at fp32), made once; their fp32 values are released (`LowPrecisionWeights`).
    private func lowPrecisionMatrices() -> [[LowPrecisionLinear]]? {
        let p = params
        return lowPrecision.prepared {
            blocks.map { w in
                InferenceMatrix.allCases.map { matrix in
                    let (inputs, outputs) = sizes(matrix)
                    return lowPrecision.linear(matrix.product, of: p, weight: p.value(weight(matrix, of: w)), outputs: outputs, inputs: inputs,
                                               layout: .inOut, gelu: matrix == .fc ? config.geluForm ?? .tanh : nil)
                }
            }
        }
    }
}
