import PRMCore

/// The tensors of a Llama-family decoder declared in a layout under Hugging Face's names, shared
/// by the inference model (`LlamaModel`, names under "model." with its LM head) and the training
/// backbone (`LlamaBackbone`, bare names as a reward model's checkpoint stores them, no head).
///
/// q, k and v (and their biases) are declared one after another, as are gate and up: the flat
/// buffer then holds each pair or triple as one stacked matrix, which the training path multiplies
/// with one sgemm.
struct LlamaWeights {
    struct Layer {
        let inputNorm, q, k, v, o, postNorm, gate, up, down: Parameters.Handle
        let qBias, kBias, vBias, qNorm, kNorm: Parameters.Handle?
    }

    let embeddings: Parameters.Handle
    let layers: [Layer]
    let finalNorm: Parameters.Handle
    let lmHead: Parameters.Handle?

    init(config: LlamaConfig, layout: inout Parameters.Layout, prefix: String, languageModelHead: Bool) {
        let (C, I, Q, K, D) = (config.hiddenSize, config.intermediateSize, config.queryWidth, config.keyWidth, config.headDim)
        embeddings = layout.add(prefix + "embed_tokens.weight", [config.vocabSize, C])
        layers = (0..<config.numHiddenLayers).map { l in
            let p = prefix + "layers.\(l)."
            func optional(_ name: String, _ shape: [Int], _ present: Bool) -> Parameters.Handle? { present ? layout.add(p + name, shape) : nil }
            return Layer(
                inputNorm: layout.add(p + "input_layernorm.weight", [C]),
                q: layout.add(p + "self_attn.q_proj.weight", [Q, C]), k: layout.add(p + "self_attn.k_proj.weight", [K, C]),
                v: layout.add(p + "self_attn.v_proj.weight", [K, C]), o: layout.add(p + "self_attn.o_proj.weight", [C, Q]),
                postNorm: layout.add(p + "post_attention_layernorm.weight", [C]),
                gate: layout.add(p + "mlp.gate_proj.weight", [I, C]), up: layout.add(p + "mlp.up_proj.weight", [I, C]),
                down: layout.add(p + "mlp.down_proj.weight", [C, I]),
                qBias: optional("self_attn.q_proj.bias", [Q], config.attentionBias),
                kBias: optional("self_attn.k_proj.bias", [K], config.attentionBias),
                vBias: optional("self_attn.v_proj.bias", [K], config.attentionBias),
                qNorm: optional("self_attn.q_norm.weight", [D], config.queryKeyNorm),
                kNorm: optional("self_attn.k_norm.weight", [D], config.queryKeyNorm))
        }
        finalNorm = layout.add(prefix + "norm.weight", [C])
        lmHead = languageModelHead && !config.tieWordEmbeddings ? layout.add("lm_head.weight", [config.vocabSize, C]) : nil
        let entries = layout.entries
        func follows(_ next: Parameters.Handle?, _ first: Parameters.Handle?) -> Bool {
            guard let next, let first else { return next == nil && first == nil }
            return entries[next.index].offset == entries[first.index].offset + entries[first.index].count
        }
        precondition(layers.allSatisfy { follows($0.k, $0.q) && follows($0.v, $0.k) && follows($0.up, $0.gate)
            && follows($0.kBias, $0.qBias) && follows($0.vBias, $0.kBias) }, "stacked projections must be adjacent")
    }
}
