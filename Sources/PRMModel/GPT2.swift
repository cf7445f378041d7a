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

    enum CodingKeys: String, CodingKey {
        case vocabSize = "vocab_size", nPositions = "n_positions", nCtx = "n_ctx", nEmbd = "n_embd", nLayer = "n_layer"
        case nHead = "n_head", nInner = "n_inner", layerNormEpsilon = "layer_norm_epsilon"
        case activationFunction = "activation_function", eosTokenID = "eos_token_id"
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        vocabSize = try c.decode(Int.self, forKey: .vocabSize)
        nPositions = try c.decodeIfPresent(Int.self, forKey: .nPositions) ?? c.decode(Int.self, forKey: .nCtx)
        nEmbd = try c.decode(Int.self, forKey: .nEmbd)
        nLayer = try c.decode(Int.self, forKey: .nLayer)
        nHead = try c.decode(Int.self, forKey: .nHead)
        nInner = try c.decodeIfPresent(Int.self, forKey: .nInner)
        layerNormEpsilon = try c.decodeIfPresent(Float.self, forKey: .layerNormEpsilon) ?? 1e-5
        activationFunction = try c.decodeIfPresent(String.self, forKey: .activationFunction) ?? "gelu_new"
        eosTokenID = try c.decodeIfPresent(Int.self, forKey: .eosTokenID)
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
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
        return self
    }
}

/// Keys and values of a prefix, per layer, for incremental decoding and for scoring many
/// continuations of one shared prefix.
public final class KVCache {
    public private(set) var count = 0
    let keys: [GrowableBuffer], values: [GrowableBuffer]
    let width: Int

    init(layers: Int, width: Int) {
        keys = (0..<layers).map { _ in GrowableBuffer() }
        values = (0..<layers).map { _ in GrowableBuffer() }
        self.width = width
    }

    /// Room for `rows` rows per layer, the cached ones kept. A decoder that knows its longest
    /// sequence reserves it once, and every later append writes in place.
    public func reserve(rows: Int) {
        let C = width
        guard keys.first.map({ $0.capacity < rows * C }) ?? false else { return }
        for buffer in keys + values {
            let kept = Array(UnsafeBufferPointer(start: buffer.data, count: count * C))
            let data = buffer.ensure(rows * C)
            kept.withUnsafeBufferPointer { if let base = $0.baseAddress { data.update(from: base, count: kept.count) } }
        }
    }

    /// Appends rows (T, C) of keys and values from a packed (T, 3C) QKV block.
    func append(layer: Int, qkv: UnsafePointer<Float>, rows T: Int, at start: Int) {
        let C = width
        // Grows geometrically when nothing was reserved: amortised, never per token.
        if keys[layer].capacity < (start + T) * C { reserve(rows: 2 * (start + T)) }
        let k = keys[layer], v = values[layer]
        for t in 0..<T {
            (k.data + (start + t) * C).update(from: qkv + t * 3 * C + C, count: C)
            (v.data + (start + t) * C).update(from: qkv + t * 3 * C + 2 * C, count: C)
        }
    }

    func setCount(_ n: Int) { count = n }
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

    public var configObject: [String: Any] {
        var object: [String: Any] = [
            "model_type": "gpt2", "architectures": ["GPT2Model"], "vocab_size": config.vocabSize,
            "n_positions": config.nPositions, "n_embd": config.nEmbd, "n_layer": config.nLayer, "n_head": config.nHead,
            "layer_norm_epsilon": config.layerNormEpsilon, "activation_function": config.activationFunction]
        if let inner = config.nInner { object["n_inner"] = inner }
        if let eos = config.eosTokenID { object["eos_token_id"] = eos }
        return object
    }

    // MARK: - Training forward / backward over a packed batch

    public func forward(embeddings: UnsafePointer<Float>, batch: PackedBatch, training: Bool) -> UnsafePointer<Float> {
        precondition(batch.lengths.allSatisfy { $0 <= maxPositions }, "sequence longer than \(maxPositions) positions")
        self.batch = batch
        positions = batch.lengths.flatMap { (0..<$0).map(Int32.init) }
        hiddenDropout.begin(training: training)
        return run(embeddings: embeddings, positions: positions, cache: nil) { l, a, N in
            let C = config.nEmbd
            Attention.forward(out: a.attention.ensure(N * C), probs: a.probs.ensure(batch.probsCount(heads: config.nHead)),
                              qkv: a.qkv.data, batch: batch, NH: config.nHead, C: C, causal: true)
        }
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

    // MARK: - KV-cached inference

    public func makeCache() -> KVCache { KVCache(layers: config.nLayer, width: config.nEmbd) }

    /// Runs `embeddings` (T, C) as the next tokens after what `cache` holds, appends their keys and
    /// values, and returns their hidden states (T, C). Incremental decoding is repeated calls.
    public func extend(_ cache: KVCache, embeddings: UnsafePointer<Float>, count T: Int) -> UnsafePointer<Float> {
        let P = cache.count
        precondition(P + T <= maxPositions, "sequence longer than \(maxPositions) positions")
        let out = forwardAfterPrefix(cache, embeddings: embeddings, batch: PackedBatch(lengths: [T]), append: true)
        cache.setCount(P + T)
        return out
    }

    /// Hidden states (N, C) of several continuations, each following the cached prefix; the cache
    /// is read, not changed. The prefix is computed once however many continuations there are.
    public func continuations(after cache: KVCache, embeddings: UnsafePointer<Float>, batch: PackedBatch) -> UnsafePointer<Float> {
        precondition(batch.lengths.allSatisfy { cache.count + $0 <= maxPositions }, "sequence longer than \(maxPositions) positions")
        return forwardAfterPrefix(cache, embeddings: embeddings, batch: batch, append: false)
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
        hiddenDropout.begin(training: false)
        let (C, NH) = (config.nEmbd, config.nHead)
        let hs = C / NH
        let hidden = run(embeddings: embeddings, positions: positions, cache: nil) { l, a, N in
            let qkv = UnsafePointer(a.qkv.data)
            for b in 0..<B { own[b].append(layer: l, qkv: qkv + b * 3 * C, rows: 1, at: own[b].count) }
            let out = a.attention.ensure(N * C)
            BLAS.singleThreaded {
                Parallel.forEach(B * NH) { item in
                    let (b, h) = (item / NH, item % NH)
                    let (prefix, mine) = (prefixes[b], own[b])
                    let (P, R) = (prefix.count, mine.count + 1)
                    let probs = UnsafeMutablePointer<Float>.allocate(capacity: P + R)
                    defer { probs.deallocate() }
                    Attention.attendHeadStep(out: out + b * C + h * hs, probs: probs, q: qkv + b * 3 * C + h * hs,
                                             prefixK: prefix.keys[l].data + h * hs, prefixV: prefix.values[l].data + h * hs, ldPrefix: C, P: P,
                                             ownK: mine.keys[l].data + h * hs, ownV: mine.values[l].data + h * hs, ldOwn: C, R: R, hs: hs)
                }
            }
        }
        for cache in own { cache.setCount(cache.count + 1) }
        return hidden
    }

    private func forwardAfterPrefix(_ cache: KVCache, embeddings: UnsafePointer<Float>, batch: PackedBatch, append: Bool) -> UnsafePointer<Float> {
        let P = cache.count
        let cachedPositions = batch.lengths.flatMap { (0..<$0).map { Int32(P + $0) } }
        hiddenDropout.begin(training: false)
        let (C, NH) = (config.nEmbd, config.nHead)
        let hs = C / NH
        return run(embeddings: embeddings, positions: cachedPositions, cache: append ? cache : nil) { l, a, N in
            let out = a.attention.ensure(N * C)
            let qkv = UnsafePointer(a.qkv.data)
            let prefixK = UnsafePointer(cache.keys[l].data), prefixV = UnsafePointer(cache.values[l].data)
            BLAS.singleThreaded {
                Parallel.forEach(batch.count * NH) { item in
                    let (b, h) = (item / NH, item % NH)
                    let T = batch.lengths[b]
                    let q = qkv + batch.starts[b] * 3 * C + h * hs
                    let probs = UnsafeMutablePointer<Float>.allocate(capacity: max(1, T * (P + T)))
                    defer { probs.deallocate() }
                    Attention.attendHeadAfterPrefix(out: out + batch.starts[b] * C + h * hs, ldo: C, probs: probs,
                                                    q: q, k: q + C, v: q + 2 * C, ld: 3 * C,
                                                    prefixK: prefixK + h * hs, prefixV: prefixV + h * hs, ldPrefix: C,
                                                    P: P, T: T, hs: hs)
                }
            }
        }
    }

    /// The shared layer stack: embeddings + positions, blocks (attention supplied by the caller:
    /// packed training attention or attention after a cached prefix), final LayerNorm.
    private func run(embeddings: UnsafePointer<Float>, positions: [Int32], cache: KVCache?,
                     attention: (Int, BlockActivations, Int) -> Void) -> UnsafePointer<Float> {
        let (N, C, I) = (positions.count, config.nEmbd, config.inner)
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
            attention(l, a, N)
            if let cache { cache.append(layer: l, qkv: a.qkv.data, rows: N, at: cache.count) }
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
}
