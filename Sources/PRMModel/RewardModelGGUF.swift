import Foundation
import PRMCore
import PRMTokenizers

/// A reward model on a llama.cpp GGUF file (SmolLM2): the `LlamaBackbone` of the file's config
/// with its weights dequantized to Float32 (q/k rows in Hugging Face's order, as `LlamaModel`
/// loads them), and the file's tokenizer written out as tokenizer.json, so the checkpoint is an
/// ordinary folder that reloads without the GGUF file.
extension RewardModel {
    static func pretrained(gguf url: URL, config: RewardModelConfig, seed: UInt64, initialization: FreshInitialization) throws -> RewardModel {
        let file: GGUFFile
        do { file = try GGUFFile(contentsOf: url) } catch let error as GGUFError { throw ModelError(error.description, cause: nil) }
        let llama = try LlamaModel.ggufConfig(file)
        var layout = Parameters.Layout()
        let backbone = LlamaBackbone(config: llama, layout: &layout)
        let tokenizerJSON: Data
        do { tokenizerJSON = try GGUFTokenizer.tokenizerJSON(file) } catch let error as GGUFError { throw ModelError(error.description, cause: nil) }
        let model = try RewardModel(backbone: backbone, layout: layout, describedBy: url, tokenizerJSON: tokenizerJSON, from: url, config: config)
        let w = backbone.weights
        try LlamaModel.readWeights(file, into: model.parameters, embeddings: w.embeddings, layers: w.layers, finalNorm: w.finalNorm,
                                   lmHead: nil, config: llama)
        model.initializeUserModelAndHead(seed: seed, initialization: initialization)
        return model
    }
}
