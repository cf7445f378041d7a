import Foundation
import PRMCore

/// A Llama-family decoder (llama, mistral, qwen2, qwen3; `LlamaConfig`) as a reward model's
/// backbone: training forward and backward over a packed batch of input embeddings, each layer an
/// explicit pair of PRMCore kernels (RMSNorm, the stacked q|k|v projection with Qwen2's biases,
/// Qwen3's per-head q/k RMSNorm, RoPE, grouped-query attention, the o projection, RMSNorm, the
/// stacked gate|up projection, SwiGLU, down). Hugging Face tensor names without the "model."
/// prefix a `…ForCausalLM` or `…ForSequenceClassification` file adds, and no LM head.
///
/// Scoring (`infer`, and a shared prompt's KV cache with its replies after it: `extendPrefix`,
/// `continuationStates`) runs `LlamaLayerStack`, `LlamaModel`'s inference pass: one layer's buffers,
/// no attention probabilities kept, nothing shared with the training activations, so scoring
/// between a training forward and its backward leaves the backward's inputs alone. Its packed
/// pass equals the training forward exactly (checked in LlamaBackboneTests). At `--precision`
/// bf16 or int8 scoring runs the stack's prepared matrices and the fp32 ones are released, so the
/// training pass is refused from then on (LlamaLowPrecisionScoringTests).
public final class LlamaBackbone: Backbone {
    public let config: LlamaConfig
    public let attending = Attending.causal
    public var computesParameterGradients = true
    public let hiddenDropout: HiddenDropout
    public let weightPrefixes = ["model.", ""]
    let weights: LlamaWeights

    /// What one layer's backward pass reads.
    final class LayerActivations {
        let h1 = GrowableBuffer(), rstd1 = GrowableBuffer()       // the attention's RMSNorm
        let projected = GrowableBuffer(), qkRstd = GrowableBuffer() // q|k|v before Qwen3's q/k norm, its 1/rms per head
        let qkv = GrowableBuffer(), probs = GrowableBuffer(), attended = GrowableBuffer()
        let residual1 = GrowableBuffer()
        let h2 = GrowableBuffer(), rstd2 = GrowableBuffer()       // the MLP's RMSNorm
        let gateUp = GrowableBuffer(), activated = GrowableBuffer()
        let residual2 = GrowableBuffer()
    }

    /// The training forward's activations.
    final class Activations {
        var batch = PackedBatch(lengths: [])
        var rotation = RotaryTable(positions: [], headSize: 2, base: 1)
        let input = GrowableBuffer(), dense = GrowableBuffer()
        let hidden = GrowableBuffer(), finalRstd = GrowableBuffer()
        let layers: [LayerActivations]
        init(layers: Int) { self.layers = (0..<layers).map { _ in LayerActivations() } }
    }

    private let training: Activations
    /// Scoring's pass, with buffers of its own.
    private let stack: LlamaLayerStack
    private var parameters: Parameters?
    private var params: Parameters {
        guard let parameters else { preconditionFailure("LlamaBackbone used before bind(_:)") }
        return parameters
    }
    private let dx = GrowableBuffer(), dNormed = GrowableBuffer(), dWide = GrowableBuffer(), dActivated = GrowableBuffer()
    private let dQKV = GrowableBuffer(), dProjected = GrowableBuffer(), dAttended = GrowableBuffer()

    public init(config: LlamaConfig, layout: inout Parameters.Layout) {
        self.config = config
        weights = LlamaWeights(config: config, layout: &layout, prefix: "", languageModelHead: false)
        training = Activations(layers: config.numHiddenLayers)
        stack = LlamaLayerStack(config: config, weights: weights)
        hiddenDropout = HiddenDropout(sites: 2 * config.numHiddenLayers)
    }

    public func bind(_ parameters: Parameters) { self.parameters = parameters }

    /// The precision of scoring's matrix products (`infer`, `extendPrefix`, `continuationStates`).
    public var inferencePrecision: Precision { stack.precision }

    /// Selects scoring's precision (`--precision`), preparing the layers' matrices at bf16 or int8
    /// once bound (`LlamaLayerStack.usePrecision`); their fp32 values are then released, so the
    /// backbone is inference-only from then on.
    public func useInferencePrecision(_ precision: Precision) throws {
        try stack.usePrecision(precision, parameters: parameters)
    }

    public var modelType: String { config.modelType }
    public var hiddenSize: Int { config.hiddenSize }
    public var vocabularySize: Int { config.vocabSize }
    public var maxPositions: Int { config.maxPositionEmbeddings }
    public var wordEmbeddings: Parameters.Handle { weights.embeddings }
    public var encodableConfig: any Encodable { config }

    private var attentionShape: GroupedAttention.Shape {
        GroupedAttention.Shape(heads: config.numAttentionHeads, keyValueHeads: config.numKeyValueHeads, headSize: config.headDim)
    }
    /// Width of a row of q|k|v.
    private var rowWidth: Int { config.queryWidth + 2 * config.keyWidth }

    public func forward(embeddings: UnsafePointer<Float>, batch: PackedBatch, training isTraining: Bool) -> UnsafePointer<Float> {
        precondition(inferencePrecision == .fp32, "this \(modelType) backbone infers at \(inferencePrecision) and its fp32 matrices were "
                     + "released; the training forward pass needs a model loaded at fp32")
        hiddenDropout.begin(training: isTraining)
        return layers(embeddings: embeddings, batch: batch)
    }

    public func infer(embeddings: UnsafePointer<Float>, batch: PackedBatch) -> UnsafePointer<Float> {
        stack.packed(batch, after: nil, appending: false, parameters: params, input: copy(embeddings, rows: batch.tokens))
    }

    // MARK: - A shared prefix (PrefixSharingBackbone)

    public func makePrefixCache() -> KVCache { KVCache(layers: config.numHiddenLayers, width: config.keyWidth) }

    /// Runs `embeddings` (count, C) as the next rows after what `cache` holds and appends their
    /// keys and values.
    public func extendPrefix(_ cache: KVCache, embeddings: UnsafePointer<Float>, count: Int) {
        _ = stack.packed(PackedBatch(lengths: [count]), after: cache, appending: true, parameters: params, input: copy(embeddings, rows: count))
    }

    /// Hidden states (N, C) of several continuations, each following the cached prefix; the cache
    /// is read, not changed. The prefix is computed once however many continuations there are.
    public func continuationStates(after cache: KVCache, embeddings: UnsafePointer<Float>, batch: PackedBatch) -> UnsafePointer<Float> {
        stack.packed(batch, after: cache, appending: false, parameters: params, input: copy(embeddings, rows: batch.tokens))
    }

    /// Writes `rows` input embeddings as the layer stack's input.
    private func copy(_ embeddings: UnsafePointer<Float>, rows: Int) -> (UnsafeMutablePointer<Float>) -> Void {
        { [hiddenSize] x in x.update(from: embeddings, count: rows * hiddenSize) }
    }

    // MARK: - Training

    /// x = embeddings; per layer x += drop(o(attention(rope(norm_qk(qkv(RMSNorm(x))))))), then
    /// x += drop(down(silu(gate) · up)) over RMSNorm(x); hidden = RMSNorm(x).
    private func layers(embeddings: UnsafePointer<Float>, batch: PackedBatch) -> UnsafePointer<Float> {
        let (a, dropout) = (training, hiddenDropout)
        precondition(batch.maxLength <= maxPositions, "sequence longer than \(maxPositions) positions")
        let (N, C, I, Q, K, D, W) = (batch.tokens, config.hiddenSize, config.intermediateSize, config.queryWidth, config.keyWidth,
                                     config.headDim, rowWidth)
        let eps = config.rmsNormEps
        let p = params
        a.batch = batch
        a.rotation = RotaryTable(positions: batch.lengths.flatMap { (0..<$0).map(Int32.init) }, headSize: D, base: config.ropeTheta)
        let x0 = a.input.ensure(N * C)
        x0.update(from: embeddings, count: N * C)
        var x = UnsafePointer(x0)
        for (l, (w, s)) in zip(weights.layers, a.layers).enumerated() {
            RMSNorm.forward(out: s.h1.ensure(N * C), rstd: s.rstd1.ensure(N), inp: x, weight: p.value(w.inputNorm), N: N, C: C, eps: eps)
            let qkv = s.qkv.ensure(N * W)
            Linear.forward(out: qkv, inp: s.h1.data, weight: p.value(w.q), bias: w.qBias.map { UnsafePointer(p.value($0)) }, N: N, C: C, OC: W)
            if let qNorm = w.qNorm, let kNorm = w.kNorm {
                let projected = s.projected.ensure(N * W)
                projected.update(from: qkv, count: N * W)
                normalizeQueriesAndKeys(qkv, rstd: s.qkRstd.ensure(N * (Q + K) / D), projected: projected, qNorm: p.value(qNorm),
                                        kNorm: p.value(kNorm), N: N)
            }
            a.rotation.apply(qkv, rows: N, rowStride: W, heads: (Q + K) / D)
            GroupedAttention.forward(out: s.attended.ensure(N * Q), probs: s.probs.ensure(batch.probsCount(heads: config.numAttentionHeads)),
                                     qkv: qkv, batch: batch, shape: attentionShape)
            let dense = a.dense.ensure(N * C)
            Linear.forward(out: dense, inp: s.attended.data, weight: p.value(w.o), bias: nil, N: N, C: Q, OC: C)
            dropout.forward(dense, site: 2 * l, count: N * C)
            Residual.forward(out: s.residual1.ensure(N * C), a: x, b: dense, count: N * C)
            RMSNorm.forward(out: s.h2.ensure(N * C), rstd: s.rstd2.ensure(N), inp: s.residual1.data, weight: p.value(w.postNorm), N: N, C: C, eps: eps)
            Linear.forward(out: s.gateUp.ensure(N * 2 * I), inp: s.h2.data, weight: p.value(w.gate), bias: nil, N: N, C: C, OC: 2 * I)
            SwiGLU.forward(out: s.activated.ensure(N * I), gateUp: s.gateUp.data, N: N, I: I)
            Linear.forward(out: dense, inp: s.activated.data, weight: p.value(w.down), bias: nil, N: N, C: I, OC: C)
            dropout.forward(dense, site: 2 * l + 1, count: N * C)
            Residual.forward(out: s.residual2.ensure(N * C), a: s.residual1.data, b: dense, count: N * C)
            x = UnsafePointer(s.residual2.data)
        }
        RMSNorm.forward(out: a.hidden.ensure(N * C), rstd: a.finalRstd.ensure(N), inp: x, weight: p.value(weights.finalNorm), N: N, C: C, eps: eps)
        return UnsafePointer(a.hidden.data)
    }

    /// Qwen3: each head's queries and keys RMS-normalised (one gain per head dimension), from the
    /// projections as computed into qkv; 1/rms per (row, head) into rstd ((NH + NKV) per row).
    private func normalizeQueriesAndKeys(_ qkv: UnsafeMutablePointer<Float>, rstd: UnsafeMutablePointer<Float>, projected: UnsafePointer<Float>,
                                         qNorm: UnsafePointer<Float>, kNorm: UnsafePointer<Float>, N: Int) {
        let (NH, NKV, D, W, eps) = (config.numAttentionHeads, config.numKeyValueHeads, config.headDim, rowWidth, config.rmsNormEps)
        for n in 0..<N {
            let (row, source, r) = (qkv + n * W, projected + n * W, rstd + n * (NH + NKV))
            RMSNorm.forward(out: row, rstd: r, inp: source, weight: qNorm, N: NH, C: D, eps: eps)
            RMSNorm.forward(out: row + NH * D, rstd: r + NH, inp: source + NH * D, weight: kNorm, N: NKV, C: D, eps: eps)
        }
    }

    public func backward(dhidden: UnsafePointer<Float>) -> UnsafePointer<Float> {
        let a = training
        let (N, C, I, Q, K, D, W) = (a.batch.tokens, config.hiddenSize, config.intermediateSize, config.queryWidth, config.keyWidth,
                                     config.headDim, rowWidth)
        let p = params
        func g(_ h: Parameters.Handle?) -> UnsafeMutablePointer<Float>? { computesParameterGradients ? h.map { p.grad($0) } : nil }
        let dx = self.dx.zeroed(N * C)
        let last = weights.layers.isEmpty ? UnsafePointer(a.input.data) : UnsafePointer(a.layers[weights.layers.count - 1].residual2.data)
        RMSNorm.backward(dinp: dx, dweight: g(weights.finalNorm), dout: dhidden, inp: last, weight: p.value(weights.finalNorm),
                         rstd: a.finalRstd.data, N: N, C: C)
        for l in stride(from: weights.layers.count - 1, through: 0, by: -1) {
            let (w, s) = (weights.layers[l], a.layers[l])
            let input = l == 0 ? UnsafePointer(a.input.data) : UnsafePointer(a.layers[l - 1].residual2.data)
            // residual2 = residual1 + drop(down(silu(gate) · up)) over RMSNorm(residual1): dx is d residual2.
            let dDown = hiddenDropout.backward(dx, site: 2 * l + 1, count: N * C)
            let dActivated = self.dActivated.zeroed(N * I)
            Linear.backward(dinp: dActivated, dweight: g(w.down), dbias: nil, dout: dDown, inp: s.activated.data, weight: p.value(w.down),
                            N: N, C: I, OC: C)
            let dGateUp = dWide.zeroed(N * 2 * I)
            SwiGLU.backward(dgateUp: dGateUp, dout: dActivated, gateUp: s.gateUp.data, N: N, I: I)
            let dH2 = dNormed.zeroed(N * C)
            Linear.backward(dinp: dH2, dweight: g(w.gate), dbias: nil, dout: dGateUp, inp: s.h2.data, weight: p.value(w.gate), N: N, C: C, OC: 2 * I)
            RMSNorm.backward(dinp: dx, dweight: g(w.postNorm), dout: dH2, inp: s.residual1.data, weight: p.value(w.postNorm),
                             rstd: s.rstd2.data, N: N, C: C)
            // residual1 = input + drop(o(attention)): dx is now d residual1.
            let dO = hiddenDropout.backward(dx, site: 2 * l, count: N * C)
            let dAttended = self.dAttended.zeroed(N * Q)
            Linear.backward(dinp: dAttended, dweight: g(w.o), dbias: nil, dout: dO, inp: s.attended.data, weight: p.value(w.o), N: N, C: Q, OC: C)
            var dqkv = dQKV.zeroed(N * W)
            GroupedAttention.backward(dqkv: dqkv, dout: dAttended, qkv: s.qkv.data, probs: s.probs.data, batch: a.batch, shape: attentionShape)
            a.rotation.backward(dqkv, rows: N, rowStride: W, heads: (Q + K) / D)
            if let qNorm = w.qNorm, let kNorm = w.kNorm {
                dqkv = normalizeQueriesAndKeysBackward(dqkv, s: s, qNorm: qNorm, kNorm: kNorm, N: N, g: g)
            }
            let dH1 = dNormed.zeroed(N * C)
            Linear.backward(dinp: dH1, dweight: g(w.q), dbias: g(w.qBias), dout: dqkv, inp: s.h1.data, weight: p.value(w.q), N: N, C: C, OC: W)
            RMSNorm.backward(dinp: dx, dweight: g(w.inputNorm), dout: dH1, inp: input, weight: p.value(w.inputNorm), rstd: s.rstd1.data, N: N, C: C)
        }
        return UnsafePointer(dx)
    }

    /// The gradient of q|k|v as projected, from that of the normalised queries and keys (values pass through).
    private func normalizeQueriesAndKeysBackward(_ dqkv: UnsafeMutablePointer<Float>, s: LayerActivations, qNorm: Parameters.Handle,
                                                 kNorm: Parameters.Handle, N: Int,
                                                 g: (Parameters.Handle?) -> UnsafeMutablePointer<Float>?) -> UnsafeMutablePointer<Float> {
        let (NH, NKV, D, W, K) = (config.numAttentionHeads, config.numKeyValueHeads, config.headDim, rowWidth, config.keyWidth)
        let p = params
        let dProjected = self.dProjected.zeroed(N * W)
        for n in 0..<N {
            let (d, source, dSource, r) = (dqkv + n * W, s.projected.data + n * W, dProjected + n * W, s.qkRstd.data + n * (NH + NKV))
            RMSNorm.backward(dinp: dSource, dweight: g(qNorm), dout: d, inp: source, weight: p.value(qNorm), rstd: r, N: NH, C: D)
            RMSNorm.backward(dinp: dSource + NH * D, dweight: g(kNorm), dout: d + NH * D, inp: source + NH * D, weight: p.value(kNorm),
                             rstd: r + NH, N: NKV, C: D)
            (dSource + (NH + NKV) * D).update(from: d + (NH + NKV) * D, count: K)
        }
        return dProjected
    }
}
