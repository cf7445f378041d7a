import Foundation
import PRMCore
import PRMModel
import PRMTestSupport
@testable import PRMTraining

/// Small randomly initialised reward models on the real MiniLM tokenizer, for fast training tests.
enum TinyModels {
    static func backboneFolder(hidden: Int = 32, layers: Int = 1) throws -> URL { try TinyBackbones.bert(hidden: hidden, layers: layers) }
    static func gpt2Folder() throws -> URL { try TinyBackbones.gpt2() }

    static func rewardModel(_ settings: TrainingSettings, users: Int, folder: URL, seed: UInt64 = 7) throws -> RewardModel {
        let model = try RewardModel(backboneConfig: folder.appendingPathComponent("config.json"),
                                    tokenizerFile: folder.appendingPathComponent("tokenizer.json"),
                                    config: settings.rewardModelConfig(users: users))
        Backbones.initializeRandomly(model.parameters, seed: seed)
        model.initializeUserModelAndHead(seed: seed)
        return model
    }

    /// Token ids of a text, no special tokens.
    static func ids(_ model: RewardModel, _ text: String) -> [Int32] {
        model.tokenizer.encode(text, addSpecialTokens: false).map(Int32.init)
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
        s.dropout = 0
        s.logEvery = 1000
        return s
    }
}
