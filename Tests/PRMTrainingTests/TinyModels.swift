import Foundation
import PRMCore
import PRMModel
import PRMTestSupport
@testable import PRMTraining

/// Small randomly initialised reward models on the real MiniLM tokenizer, for fast training tests.
enum TinyModels {
    /// A folder with a tiny BERT config.json and all-MiniLM-L6-v2's tokenizer.json.
    static func backboneFolder(hidden: Int = 32, layers: Int = 1) throws -> URL {
        let folder = try TestSupport.temporaryDirectory("tiny-bert")
        let config: [String: Any] = ["model_type": "bert", "vocab_size": 30522, "hidden_size": hidden, "num_hidden_layers": layers,
                                     "num_attention_heads": 4, "intermediate_size": 2 * hidden, "max_position_embeddings": 128,
                                     "type_vocab_size": 2, "layer_norm_eps": 1e-12, "hidden_act": "gelu"]
        try JSONSerialization.data(withJSONObject: config).write(to: folder.appendingPathComponent("config.json"))
        try FileManager.default.copyItem(at: TestSupport.miniLMDirectory().appendingPathComponent("tokenizer.json"),
                                         to: folder.appendingPathComponent("tokenizer.json"))
        return folder
    }

    /// A random GPT-2 folder (Tests/Reference/make_gpt2.py) with a byte-level BPE trained on the corpus.
    static func gpt2Folder() throws -> URL {
        let folder = try TestSupport.temporaryDirectory("tiny-gpt2")
        let tokenizer = folder.appendingPathComponent("bpe.json")
        try TestSupport.runPython(TestSupport.referenceScript("train_bpe.py"),
                                  ["--corpus", TestSupport.lengthprefDirectory.appendingPathComponent("dev.jsonl").path,
                                   "--vocab-size", "400", "--out", tokenizer.path])
        try TestSupport.runPython(TestSupport.referenceScript("make_gpt2.py"),
                                  ["--out", folder.path, "--layers", "1", "--heads", "2", "--embd", "16", "--positions", "128",
                                   "--seed", "3", "--tokenizer", tokenizer.path])
        return folder
    }

    static func rewardModel(_ settings: TrainingSettings, users: Int, folder: URL, seed: UInt64 = 7) throws -> RewardModel {
        let model = try RewardModel(backboneConfig: folder.appendingPathComponent("config.json"),
                                    tokenizerFile: folder.appendingPathComponent("tokenizer.json"),
                                    config: settings.rewardModelConfig(users: users))
        Backbones.initializeRandomly(model.parameters, seed: seed)
        model.initializeUserModelAndHead(seed: seed)
        return model
    }

    /// Settings for quick runs of the tiny model.
    static func settings(_ aggregator: Aggregator = .softPrompt, _ kind: UserModelKind = .individual) -> TrainingSettings {
        var s = TrainingSettings()
        s.aggregator = aggregator
        s.userModel = kind
        s.userTokens = aggregator == .linearHead ? 1 : 2
        s.clusters = 2
        s.maxLength = 64
        s.learningRate = 1e-3
        s.userLearningRate = 3e-2
        s.batchSize = 16
        s.microBatch = 16
        s.warmupFraction = 0.05
        s.logEvery = 1000
        return s
    }
}
