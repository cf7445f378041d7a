import Foundation
import PRMCore
import PRMTokenizers

/// Whether a backbone's tokens attend both ways (BERT) or only backwards (GPT-2): it decides
/// which hidden state summarises a sequence (the pooled one or the last token's).
public enum Attending: String, Codable, Sendable {
    case bidirectional, causal
}

/// A transformer that maps input embeddings of a packed ragged batch to hidden states, with
/// an explicit backward pass. Embeddings are the input (not token ids) so that soft-prompt user
/// vectors can stand in the first positions (P-RLHF App. F.2); positions then apply as usual.
public protocol Backbone: AnyObject {
    var modelType: String { get }
    var attending: Attending { get }
    var hiddenSize: Int { get }
    var vocabularySize: Int { get }
    var maxPositions: Int { get }
    /// The token-embedding table (V, C); user vectors and explicit user text are embedded with it.
    var wordEmbeddings: Parameters.Handle { get }
    /// False when the backbone is frozen: backward then still returns input gradients (for soft
    /// prompts) but skips every weight-gradient sgemm.
    var computesParameterGradients: Bool { get set }
    /// Dropout on hidden states while training (never at inference); masks are drawn from its
    /// seed at each training forward pass, which trainers set per step.
    var hiddenDropout: HiddenDropout { get }

    /// Points the model at its tensors once the shared parameter buffer is allocated.
    func bind(_ parameters: Parameters)
    /// hidden (N, C) for embeddings (N, C); valid until the next forward. Keeps every activation
    /// the backward pass needs (the training path).
    func forward(embeddings: UnsafePointer<Float>, batch: PackedBatch, training: Bool) -> UnsafePointer<Float>
    /// Inference: hidden (N, C) for embeddings (N, C), equal to `forward(…, training: false)` up to
    /// float rounding, keeping nothing for a backward pass. A few buffers sized by the largest batch
    /// seen are reused; attention scores live one (sequence, head) at a time per worker. Valid
    /// until the next `infer`; independent of `forward`'s activations.
    func infer(embeddings: UnsafePointer<Float>, batch: PackedBatch) -> UnsafePointer<Float>
    /// The number format of `infer`'s matrix products: fp32 unless `useInferencePrecision` chose another.
    var inferencePrecision: Precision { get }
    /// Selects `infer`'s precision (`--precision`), preparing the weights for it once, here;
    /// refuses a precision the CPU does not run natively or the backbone does not implement.
    /// bf16 and int8 make the model inference-only: the fp32 layer matrices are released as their
    /// copies are made (`LowPrecisionWeights`), and another precision is refused afterwards.
    func useInferencePrecision(_ precision: Precision) throws
    /// Accumulates parameter gradients from dhidden (N, C) and returns d embeddings (N, C).
    /// A backbone that lists `gradientSegments` reports each through
    /// `Parameters.onGradientsFinished` as soon as the pass has finished it.
    func backward(dhidden: UnsafePointer<Float>) -> UnsafePointer<Float>
    /// The ranges of the gradient buffer `backward` finishes one after the other and reports, in
    /// that order (BERT: its layers, top down); empty for a backbone that reports none.
    var gradientSegments: [Range<Int>] { get }
    /// Key prefixes under which Hugging Face files may store this backbone's tensors.
    var weightPrefixes: [String] { get }
    /// The Hugging Face config describing this backbone, encoded into checkpoints' config.json.
    var encodableConfig: any Encodable { get }
}

extension Backbone {
    /// Backbones that do not report finished gradients: a data-parallel step sums them all after
    /// the backward pass.
    public var gradientSegments: [Range<Int>] { [] }

    /// Token embeddings for ids: out (N, C) = wte[ids].
    public func embedTokens(out: UnsafeMutablePointer<Float>, ids: [Int32], parameters: Parameters) {
        ids.withUnsafeBufferPointer { buffer in
            guard let base = buffer.baseAddress else { return }
            Embedding.forward(out: out, ids: base, table: parameters.value(wordEmbeddings), N: ids.count, C: hiddenSize)
        }
    }
}

/// A backbone loaded from a Hugging Face folder, with its tokenizer and parameters.
public struct LoadedBackbone {
    public let backbone: any Backbone
    public let tokenizer: any Tokenizer
    public let parameters: Parameters
    public let folder: URL
}

/// Maps `model_type` to an architecture and loads Hugging Face folders
/// (config.json, model.safetensors, tokenizer.json).
public enum Backbones {
    /// Builds a backbone for a config.json, declaring its tensors in `layout`.
    public static func make(config url: URL, layout: inout Parameters.Layout) throws -> any Backbone {
        let type = try HFConfig.modelType(at: url)
        switch type {
        case "bert": return try BertModel(config: HFConfig.decode(BertConfig.self, from: url).validated(url), layout: &layout)
        case "gpt2": return try GPT2Model(config: HFConfig.decode(GPT2Config.self, from: url).validated(url), layout: &layout)
        case _ where LlamaConfig.modelTypes.contains(type):
            return try LlamaBackbone(config: HFConfig.decode(LlamaConfig.self, from: url).validated(url), layout: &layout)
        default:
            throw ModelError(file: url, "unknown architecture model_type '\(type)' (supported: \((["bert", "gpt2"] + LlamaConfig.modelTypes).joined(separator: ", ")))")
        }
    }

    /// Loads a whole folder: the backbone's own parameters only, prepared for inference at `precision`.
    public static func load(folder: URL, precision: Precision = .fp32) throws -> LoadedBackbone {
        var layout = Parameters.Layout()
        let backbone = try make(config: folder.appendingPathComponent("config.json"), layout: &layout)
        let parameters = Parameters(layout)
        backbone.bind(parameters)
        try loadWeights(into: parameters, group: .backbone, prefixes: backbone.weightPrefixes,
                        from: folder.appendingPathComponent("model.safetensors"))
        try backbone.useInferencePrecision(precision)
        let tokenizer = try loadTokenizer(folder: folder)
        return LoadedBackbone(backbone: backbone, tokenizer: tokenizer, parameters: parameters, folder: folder)
    }

    public static func loadTokenizer(folder: URL) throws -> any Tokenizer {
        try TokenizerLoader.load(contentsOf: folder.appendingPathComponent("tokenizer.json"))
    }

    /// GPT-2/BERT-style random initialisation for training from scratch and for tests:
    /// matrices and embeddings normal(0, 0.02), LayerNorm and RMSNorm gains 1, biases 0.
    public static func initializeRandomly(_ parameters: Parameters, group: Parameters.Group = .backbone, seed: UInt64) {
        var rng = RandomSource(seed: seed)
        for entry in parameters.entries where entry.group == group {
            let values = parameters.values.data + entry.offset
            let isGain = entry.shape.count == 1 && (entry.name.contains("LayerNorm.weight") || entry.name.contains("ln_") || entry.name.hasSuffix("norm.weight"))
                && entry.name.hasSuffix(".weight")
            for i in 0..<entry.count {
                values[i] = entry.shape.count >= 2 ? 0.02 * rng.nextNormal() : (isGain ? 1 : 0)
            }
        }
        parameters.markChanged()
    }

    /// Reads every tensor of `group` from a safetensors file, by name, checking shapes.
    /// The first prefix under which the file holds the first tensor is used for all of them.
    public static func loadWeights(into parameters: Parameters, group: Parameters.Group, prefixes: [String], from url: URL) throws {
        let file = try SafetensorsFile(contentsOf: url)
        let entries = parameters.entries.filter { $0.group == group }
        guard let first = entries.first else { return }
        guard let prefix = prefixes.first(where: { file.contains($0 + first.name) }) else {
            throw ModelError(file: url, "missing tensor '\(first.name)'")
        }
        for (index, entry) in parameters.entries.enumerated() where entry.group == group {
            let key = prefix + entry.name
            guard file.contains(key) else { throw ModelError(file: url, "missing tensor '\(key)'") }
            try file.read(key, into: parameters.value(Parameters.Handle(index: index)), shape: entry.shape)
        }
        parameters.markChanged()
    }
}
