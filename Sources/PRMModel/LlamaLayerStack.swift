import PRMCore

/// The inference pass of a Llama-family decoder, shared by `LlamaModel` (generation from token
/// ids: a prompt into its KV cache, then decoding steps) and `LlamaBackbone` (a reward model's
/// scoring from input embeddings: packed ragged batches, or the N replies of one prompt after
/// the prompt's cache). Nothing is kept for a backward pass: one set of buffers, sized by the
/// largest batch seen, serves every layer — the residual stream is updated in place, each
/// sublayer's RMSNorm overwrites the same buffer — and attention scores live one
/// (sequence, head) at a time per worker. Without a prefix, a layer runs the training pass's
/// kernels in its order (`LlamaBackbone.forward`), so scoring equals it exactly.
final class LlamaLayerStack {
    /// A layer's matrices in the order of the pass: q|k|v and gate|up are each one stacked matrix
    /// (`LlamaWeights` declares their tensors consecutively), so each is one product.
    enum Matrix: Int, CaseIterable {
        case qkv, output, gateUp, down

        /// The kind of product `--int8-products` names it by.
        var product: MatrixProduct {
            switch self {
            case .qkv: return .qkv
            case .output: return .attentionOutput
            case .gateUp: return .ffnUp
            case .down: return .ffnDown
            }
        }
    }

    let config: LlamaConfig
    let layers: [LlamaWeights.Layer]
    let finalNorm: Parameters.Handle

    private let x = GrowableBuffer()         // (N, C) the residual stream
    private let normed = GrowableBuffer()    // (N, C) its RMSNorm: each sublayer's input, last the hidden states
    private let qkv = GrowableBuffer()       // (N, Q + 2K) queries | keys | values
    private let attended = GrowableBuffer()  // (N, Q)
    private let dense = GrowableBuffer()     // (N, C) a projection's output
    private let gateUp = GrowableBuffer()    // (N, 2I)
    private let activated = GrowableBuffer() // (N, I) silu(gate) · up
    private let scratch = GrowableBuffer()   // attention scores, one block per worker
    /// At bf16 and int8, per layer its matrices (`Matrix` order) prepared for `precision`; at
    /// fp32 the products read the parameters directly. The model that owns the stack (`LlamaModel`,
    /// `LlamaBackbone`) selects the precision; the language model's head stays fp32.
    private let lowPrecision = LowPrecisionWeights()

    init(config: LlamaConfig, weights: LlamaWeights) {
        (self.config, layers, finalNorm) = (config, weights.layers, weights.finalNorm)
    }

    /// The number format of the layers' matrix products.
    var precision: Precision { lowPrecision.precision }

    /// Selects the layers' precision (`--precision`), refusing one the CPU does not run natively
    /// or a change once the fp32 matrices were released; prepares them now when `parameters` are
    /// bound (at load, rather than by the first request).
    func usePrecision(_ precision: Precision, parameters: Parameters?) throws {
        try lowPrecision.select(precision)
        if let parameters { _ = lowPrecisionMatrices(parameters) }
    }

    /// Every layer's matrices at `precision` (nil at fp32), made once; their fp32 values are released (`LowPrecisionWeights`).
    func lowPrecisionMatrices(_ p: Parameters) -> [[LowPrecisionLinear]]? {
        let (C, I, Q, W) = (config.hiddenSize, config.intermediateSize, config.queryWidth, rowWidth)
        return lowPrecision.prepared {
            layers.map { w in
                precondition(p.value(w.v) == p.value(w.q) + (W - config.keyWidth) * C, "q, k and v weights are not one block")
                if let qBias = w.qBias, let vBias = w.vBias {
                    precondition(p.value(vBias) == p.value(qBias) + W - config.keyWidth, "q, k and v biases are not one block")
                }
                precondition(p.value(w.up) == p.value(w.gate) + I * C, "gate and up weights are not one block")
                let shapes: [(Parameters.Handle, outputs: Int, inputs: Int)] = [(w.q, W, C), (w.o, C, Q), (w.gate, 2 * I, C), (w.down, C, I)]
                return zip(Matrix.allCases, shapes).map { matrix, shape in
                    lowPrecision.linear(matrix.product, of: p, weight: p.value(shape.0), outputs: shape.outputs, inputs: shape.inputs)
                }
            }
        }
    }

    /// Width of a packed row of queries, keys and values.
    var rowWidth: Int { config.queryWidth + 2 * config.keyWidth }

    private var shape: GroupedAttention.Shape {
        GroupedAttention.Shape(heads: config.numAttentionHeads, keyValueHeads: config.numKeyValueHeads, headSize: config.headDim)
    }

    /// Hidden states (N, C) of a packed batch whose every sequence follows `cache`'s rows (none
    /// without a cache); `input` writes the batch's input embeddings (N, C). With `appending`, the
    /// batch's keys and values are added to the cache (one sequence: the cache's next tokens).
    func packed(_ batch: PackedBatch, after cache: KVCache?, appending: Bool, parameters: Parameters,
                input: (UnsafeMutablePointer<Float>) -> Void) -> UnsafePointer<Float> {
        let P = cache?.count ?? 0
        precondition(P + batch.maxLength <= config.maxPositionEmbeddings, "sequence longer than \(config.maxPositionEmbeddings) positions")
        precondition(!appending || (cache != nil && batch.count <= 1), "one sequence extends a cache")
        let (Q, K) = (config.queryWidth, config.keyWidth)
        let probs = scratch.ensure(GroupedAttention.inferenceScratch(batch: batch, prefixCount: P))
        let positions = batch.lengths.flatMap { (0..<$0).map { Int32(P + $0) } }
        let hidden = layerStack(rows: batch.tokens, positions: positions, parameters: parameters, input: input) { l, qkv, out in
            let prefix = cache.map { GroupedAttention.Prefix(keys: $0.keys[l].data, values: $0.values[l].data, count: P) }
            GroupedAttention.infer(out: out, scratch: probs, qkv: qkv, batch: batch, shape: shape, prefix: prefix)
            if appending, let cache {
                cache.append(layer: l, keys: qkv + Q, values: qkv + Q + K, rowStride: rowWidth, rows: batch.tokens, at: P)
            }
        }
        if appending, let cache { cache.setCount(P + batch.tokens) }
        return hidden
    }

    /// One decoding step for B sequences at once: sequence b is `prefixes[b]` (read, never
    /// changed: a prompt's cache shared by its samples) followed by `own[b]`, and `input` writes
    /// its next token's embedding (B, C). Appends each token's keys and values to `own[b]` and
    /// returns hidden states (B, C); the B tokens go through every projection as one batch.
    func decodeStep(prefixes: [KVCache], own: [KVCache], parameters: Parameters,
                    input: (UnsafeMutablePointer<Float>) -> Void) -> UnsafePointer<Float> {
        precondition(prefixes.count == own.count, "one prefix per sequence")
        let B = own.count
        let positions = (0..<B).map { Int32(prefixes[$0].count + own[$0].count) }
        precondition(positions.allSatisfy { Int($0) < config.maxPositionEmbeddings }, "sequence longer than \(config.maxPositionEmbeddings) positions")
        let (NH, D, W) = (config.numAttentionHeads, config.headDim, rowWidth)
        let group = NH / config.numKeyValueHeads
        let (Q, K) = (config.queryWidth, config.keyWidth)
        let longest = (positions.max().map { Int($0) } ?? 0) + 1
        let probs = scratch.ensure(Parallel.workers * longest)
        let hidden = layerStack(rows: B, positions: positions, parameters: parameters, input: input) { l, qkv, out in
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

    /// The layers over N rows at `positions`: x = input; per layer
    /// x += o(attention(rope(norm_qk(qkv(RMSNorm(x)))))), then x += down(silu(gate) · up) over
    /// RMSNorm(x); hidden = RMSNorm(x). The caller's attention reads the packed rows (N, Q + 2K)
    /// and writes (N, Q). The products run at `precision`.
    private func layerStack(rows N: Int, positions: [Int32], parameters p: Parameters,
                            input: (UnsafeMutablePointer<Float>) -> Void,
                            attention: (_ layer: Int, _ qkv: UnsafeMutablePointer<Float>, _ out: UnsafeMutablePointer<Float>) -> Void)
        -> UnsafePointer<Float> {
        let (C, I, Q, K, D, W) = (config.hiddenSize, config.intermediateSize, config.queryWidth, config.keyWidth, config.headDim, rowWidth)
        let eps = config.rmsNormEps
        let x = self.x.ensure(N * C), h = normed.ensure(N * C), qkv = self.qkv.ensure(N * W)
        let attended = self.attended.ensure(N * Q), dense = self.dense.ensure(N * C)
        let gateUp = self.gateUp.ensure(N * 2 * I), activated = self.activated.ensure(N * I)
        input(x)
        let rotation = RotaryTable(positions: positions, headSize: D, base: config.ropeTheta)
        let prepared = lowPrecisionMatrices(p)
        /// out (N, outputs) = inp (N, inputs) · Wᵀ (+ bias) for one of layer l's matrices.
        func project(_ l: Int, _ matrix: Matrix, _ weight: Parameters.Handle, bias: Parameters.Handle?, out: UnsafeMutablePointer<Float>,
                     inp: UnsafePointer<Float>, inputs: Int, outputs: Int) {
            let bias = bias.map { UnsafePointer(p.value($0)) }
            if let prepared {
                prepared[l][matrix.rawValue].forward(out: out, inp: inp, rows: N, bias: bias, scratch: lowPrecision.scratch)
            } else {
                Linear.forward(out: out, inp: inp, weight: p.value(weight), bias: bias, N: N, C: inputs, OC: outputs)
            }
        }
        for (l, w) in layers.enumerated() {
            RMSNorm.forward(out: h, inp: x, weight: p.value(w.inputNorm), N: N, C: C, eps: eps)
            project(l, .qkv, w.q, bias: w.qBias, out: qkv, inp: h, inputs: C, outputs: W)
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
            project(l, .output, w.o, bias: nil, out: dense, inp: attended, inputs: Q, outputs: C)
            Residual.forward(out: x, a: x, b: dense, count: N * C)
            RMSNorm.forward(out: h, inp: x, weight: p.value(w.postNorm), N: N, C: C, eps: eps)
            project(l, .gateUp, w.gate, bias: nil, out: gateUp, inp: h, inputs: C, outputs: 2 * I)
            SwiGLU.forward(out: activated, gateUp: gateUp, N: N, I: I)
            project(l, .down, w.down, bias: nil, out: dense, inp: activated, inputs: I, outputs: C)
            Residual.forward(out: x, a: x, b: dense, count: N * C)
        }
        RMSNorm.forward(out: h, inp: x, weight: p.value(finalNorm), N: N, C: C, eps: eps)
        return UnsafePointer(h)
    }
}
