import Foundation
import PRMCore

/// Loading a `LlamaModel` from a GGUF file (llama.cpp's `llama` architecture): the config from
/// `llama.*` metadata, tensors renamed to Hugging Face's and dequantized to Float32.
///
/// llama.cpp's convert_hf_to_gguf.py permutes the rows of q_proj and k_proj so that its RoPE can
/// rotate adjacent pairs (x[2j], x[2j+1]); Hugging Face rotates halves (x[j], x[j + D/2]). Within
/// each head, GGUF row 2j + s holds Hugging Face row s·D/2 + j; the loader puts the rows back, so
/// the model computes in Hugging Face's convention (checked against a numpy reference that rotates
/// adjacent pairs on the file's rows as they are: Tests/Reference/smollm2_reference.py).
extension LlamaModel {
    /// Architectures whose GGUF tensors and metadata this loader maps.
    public static let ggufArchitectures = ["llama"]

    public static func load(gguf file: GGUFFile) throws -> LlamaModel {
        let model = LlamaModel(config: try ggufConfig(file))
        try readWeights(file, into: model.parameters, embeddings: model.embeddings, layers: model.layers, finalNorm: model.finalNorm,
                        lmHead: model.lmHead, config: model.config)
        return model
    }

    /// Reads the file's tensors into the handles of a model declared for its config (`LlamaModel`'s
    /// or `LlamaBackbone`'s), q and k rows put back in Hugging Face's order.
    static func readWeights(_ file: GGUFFile, into p: Parameters, embeddings: Parameters.Handle, layers: [LlamaWeights.Layer],
                            finalNorm: Parameters.Handle, lmHead: Parameters.Handle?, config: LlamaConfig) throws {
        func read(_ name: String, _ handle: Parameters.Handle, unpermuteHeads heads: Int? = nil) throws {
            let entry = p.entry(handle)
            let destination = p.value(handle)
            try file.read(name, into: destination, shape: entry.shape)
            if let heads { unpermute(destination, rows: entry.shape[0], columns: entry.shape[1], heads: heads) }
        }
        do {
            try read("token_embd.weight", embeddings)
            for (l, w) in layers.enumerated() {
                let b = "blk.\(l)."
                try read(b + "attn_norm.weight", w.inputNorm)
                try read(b + "attn_q.weight", w.q, unpermuteHeads: config.numAttentionHeads)
                try read(b + "attn_k.weight", w.k, unpermuteHeads: config.numKeyValueHeads)
                try read(b + "attn_v.weight", w.v)
                try read(b + "attn_output.weight", w.o)
                try read(b + "ffn_norm.weight", w.postNorm)
                try read(b + "ffn_gate.weight", w.gate)
                try read(b + "ffn_up.weight", w.up)
                try read(b + "ffn_down.weight", w.down)
            }
            try read("output_norm.weight", finalNorm)
            if let lmHead { try read("output.weight", lmHead) }
        } catch let error as GGUFError {
            throw ModelError(error.description, cause: nil)
        }
        p.markChanged()
    }

    /// The config from `<arch>.*` metadata; tied embeddings when the file has no `output.weight`.
    static func ggufConfig(_ file: GGUFFile) throws -> LlamaConfig {
        do {
            let arch = try file.string("general.architecture")
            guard ggufArchitectures.contains(arch) else {
                throw ModelError(file: file.url, "key 'general.architecture': unknown architecture '\(arch)' (supported: \(ggufArchitectures.joined(separator: ", ")))")
            }
            let heads = try file.int(arch + ".attention.head_count")
            let embedding = try file.int(arch + ".embedding_length")
            let tokens = try file.strings("tokenizer.ggml.tokens").count
            let vocabulary = file.contains(key: arch + ".vocab_size") ? try file.int(arch + ".vocab_size") : tokens
            let config = LlamaConfig(
                modelType: "llama", vocabSize: vocabulary, hiddenSize: embedding,
                intermediateSize: try file.int(arch + ".feed_forward_length"),
                numHiddenLayers: try file.int(arch + ".block_count"),
                numAttentionHeads: heads,
                numKeyValueHeads: file.contains(key: arch + ".attention.head_count_kv") ? try file.int(arch + ".attention.head_count_kv") : heads,
                rmsNormEps: Float(try file.double(arch + ".attention.layer_norm_rms_epsilon")),
                ropeTheta: file.contains(key: arch + ".rope.freq_base") ? try file.double(arch + ".rope.freq_base") : 10_000,
                maxPositionEmbeddings: try file.int(arch + ".context_length"),
                tieWordEmbeddings: !file.contains("output.weight"),
                bosTokenID: file.contains(key: "tokenizer.ggml.bos_token_id") ? try file.int("tokenizer.ggml.bos_token_id") : nil,
                eosTokenID: file.contains(key: "tokenizer.ggml.eos_token_id") ? try file.int("tokenizer.ggml.eos_token_id") : nil)
            if file.contains(key: arch + ".rope.dimension_count") {
                let rotated = try file.int(arch + ".rope.dimension_count")
                try require(rotated == config.headDim, file.url, "key '\(arch).rope.dimension_count': partial RoPE (\(rotated) of \(config.headDim) dimensions) is not implemented")
            }
            if let scaling = file.metadata[arch + ".rope.scaling.type"]?.string, scaling != "none" {
                throw ModelError(file: file.url, "key '\(arch).rope.scaling.type': RoPE scaling '\(scaling)' is not implemented")
            }
            try require(vocabulary == tokens, file.url, "key '\(arch).vocab_size': \(vocabulary) differs from the \(tokens) tokens of tokenizer.ggml.tokens")
            return try config.validated(file.url)
        } catch let error as GGUFError {
            throw ModelError(error.description, cause: nil)
        }
    }

    /// Puts convert_hf_to_gguf's q/k row permutation back: in each head of D rows, row 2j + s of
    /// the file is Hugging Face's row s·D/2 + j.
    static func unpermute(_ weight: UnsafeMutablePointer<Float>, rows: Int, columns: Int, heads: Int) {
        let D = rows / heads, half = D / 2
        var head = [Float](repeating: 0, count: D * columns)
        for h in 0..<heads {
            let base = weight + h * D * columns
            head.withUnsafeMutableBufferPointer { copy in
                copy.baseAddress!.update(from: base, count: D * columns)
                for j in 0..<half {
                    for s in 0..<2 {
                        (base + (s * half + j) * columns).update(from: copy.baseAddress! + (2 * j + s) * columns, count: columns)
                    }
                }
            }
        }
    }
}
