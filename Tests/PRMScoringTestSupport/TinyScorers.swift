import Foundation
import PRMCore
import PRMModel
import PRMScoring
import PRMTestSupport

/// A scorer over a tiny random BERT reward model (linear head, individual users "ann" and
/// "bob"), the same on every call: what the service and its clients are tested against.
public enum TinyScorers {
    public static let users = UserTable(ids: ["ann", "bob"])

    /// The users' vectors are moved off their shared start so that each user scores differently.
    public static func linearHead(cacheEntries: Int = 0) throws -> Scorer {
        let folder = try TinyBackbones.bert()
        let config = RewardModelConfig(aggregator: .linearHead,
                                       userModel: UserModelConfig(kind: .individual, tokens: 1, users: users.count, clusters: 2, sharedGeneric: true),
                                       maxLength: 48)
        let model = try RewardModel(backboneConfig: folder.appendingPathComponent("config.json"),
                                    tokenizerFile: folder.appendingPathComponent("tokenizer.json"), config: config)
        Backbones.initializeRandomly(model.parameters, seed: 3)
        model.initializeUserModelAndHead(seed: 3)
        var rng = RandomSource(seed: 4)
        for entry in model.parameters.entries where entry.group == .user {
            for i in 0..<entry.count { model.parameters.values[entry.offset + i] += 0.1 * rng.nextNormal() }
        }
        return Scorer(model: model, users: users, cacheEntries: cacheEntries)
    }
}
