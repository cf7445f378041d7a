import Foundation
import XCTest
import PRMCore
import PRMModel
import PRMTestSupport
@testable import PRMTraining

/// Finite differences through the whole reward model: backbone, user model (every kind) and
/// aggregator (both), with explicit user text, generic-user inputs and shared sequences.
final class RewardModelGradientTests: XCTestCase {
    func testEveryUserModelAndAggregator() throws {
        let folder = try TinyModels.backboneFolder(hidden: 16)
        let cases: [(Aggregator, UserModelKind, Bool)] = [
            (.softPrompt, .uniform, true), (.softPrompt, .individual, true), (.softPrompt, .individual, false),
            (.softPrompt, .cluster, true), (.linearHead, .uniform, true), (.linearHead, .individual, true),
            (.linearHead, .individual, false), (.linearHead, .cluster, true),
        ]
        for (aggregator, kind, shared) in cases {
            var settings = TinyModels.settings(aggregator, kind)
            settings.sharedGeneric = shared
            let model = try TinyModels.rewardModel(settings, users: 3, folder: folder)
            perturb(model.parameters, group: .user, seed: 3)
            try check(model, label: "\(aggregator.rawValue)/\(kind.rawValue)/shared=\(shared)")
        }
    }

    /// The causal backbone reads the last token's state; both aggregators through GPT-2.
    func testCausalBackbone() throws {
        let folder = try TinyModels.gpt2Folder()
        for (aggregator, kind) in [(Aggregator.softPrompt, UserModelKind.individual), (.linearHead, .cluster)] {
            let settings = TinyModels.settings(aggregator, kind)
            let model = try RewardModel(backboneConfig: folder.appendingPathComponent("config.json"),
                                        tokenizerFile: folder.appendingPathComponent("tokenizer.json"),
                                        config: settings.rewardModelConfig(users: 3))
            try Backbones.loadWeights(into: model.parameters, group: .backbone, prefixes: model.backbone.weightPrefixes,
                                      from: folder.appendingPathComponent("model.safetensors"))
            model.initializeUserModelAndHead(seed: 1)
            XCTAssertEqual(model.backbone.attending, .causal)
            perturb(model.parameters, group: .user, seed: 5)
            try check(model, label: "gpt2 \(aggregator.rawValue)/\(kind.rawValue)")
        }
    }

    /// The learned reply counts added to h, with both aggregators on BERT and the linear head on
    /// GPT-2 (whose h is the last token's state, counts over the reply all the same).
    func testReplyCounts() throws {
        let folder = try TinyModels.backboneFolder(hidden: 16)
        for aggregator in Aggregator.allCases {
            var settings = TinyModels.settings(aggregator, .individual)
            settings.replyCounts = 3
            let model = try TinyModels.rewardModel(settings, users: 3, folder: folder)
            perturb(model.parameters, group: .user, seed: 7)
            try check(model, label: "\(aggregator.rawValue) with reply counts")
        }
        var settings = TinyModels.settings(.linearHead, .individual)
        settings.replyCounts = 2
        let gpt2 = try TinyModels.gpt2Folder()
        let model = try RewardModel(backboneConfig: gpt2.appendingPathComponent("config.json"),
                                    tokenizerFile: gpt2.appendingPathComponent("tokenizer.json"), config: settings.rewardModelConfig(users: 3))
        Backbones.initializeRandomly(model.parameters, seed: 2)
        model.initializeUserModelAndHead(seed: 2)
        perturb(model.parameters, group: .user, seed: 9)
        try check(model, label: "gpt2 linear-head with reply counts")
    }

    /// The shared interaction layer on h, after the reply counts, with both aggregators. Its output
    /// weights start at zero, so the head group is perturbed first: otherwise the gradient of its
    /// input weights would be checked only where it is zero.
    func testPooledInteractions() throws {
        let folder = try TinyModels.backboneFolder(hidden: 16)
        for aggregator in Aggregator.allCases {
            var settings = TinyModels.settings(aggregator, .individual)
            (settings.replyCounts, settings.interactions) = (2, 6)
            let model = try TinyModels.rewardModel(settings, users: 3, folder: folder)
            perturb(model.parameters, group: .user, seed: 11)
            perturb(model.parameters, group: .head, seed: 13)
            try check(model, label: "\(aggregator.rawValue) with interactions")
        }
    }

    /// A pooled scale other than 1 on both pooling kinds (window mean, last token), under the reply
    /// counts and the interaction layer that read the scaled state.
    func testPooledScale() throws {
        for folder in [try TinyModels.backboneFolder(hidden: 16), try TinyModels.gpt2Folder()] {
            var settings = TinyModels.settings(.linearHead, .individual)
            (settings.replyCounts, settings.interactions, settings.pooledScale) = (2, 6, 0.25)
            let model = try TinyModels.rewardModel(settings, users: 3, folder: folder)
            XCTAssertEqual(model.config.pooledScale, 0.25)
            perturb(model.parameters, group: .user, seed: 17)
            perturb(model.parameters, group: .head, seed: 19)
            try check(model, label: "\(model.backbone.modelType) with pooled scale 0.25")
        }
    }

    /// The mean pool over the reply's rows only, alone and with reply counts, with both aggregators.
    func testReplyPooling() throws {
        let folder = try TinyModels.backboneFolder(hidden: 16)
        for aggregator in Aggregator.allCases {
            for counts in [0, 2] {
                var settings = TinyModels.settings(aggregator, .individual)
                (settings.pooling, settings.replyCounts) = (.reply, counts)
                let model = try TinyModels.rewardModel(settings, users: 3, folder: folder)
                perturb(model.parameters, group: .user, seed: 5)
                try check(model, label: "\(aggregator.rawValue) pooling the reply, \(counts) reply counts")
            }
        }
    }

    /// Silent counts start near zero on a reply; the others near log(reply length).
    func testSilentCountsStartQuiet() throws {
        var settings = TinyModels.settings(.linearHead, .individual)
        settings.replyCounts = 4
        let model = try TinyModels.rewardModel(settings, users: 1, folder: try TinyModels.backboneFolder(hidden: 16))
        model.initializeUserModelAndHead(seed: 3, initialization: FreshInitialization(silentCounts: 2))
        let bias = try XCTUnwrap(model.parameters.entries.first { $0.name == "pool.count_bias" })
        XCTAssertEqual((0..<4).map { model.parameters.values.data[bias.offset + $0] }, [0, 0, -4, -4])
    }

    /// Users' offsets start at zero, or with a spread at that multiple of token-embedding rows;
    /// the generic user's row is the same either way.
    func testUserSpreadStartsOffsetsOnTheTokenScale() throws {
        let settings = TinyModels.settings(.linearHead, .individual)
        let model = try TinyModels.rewardModel(settings, users: 3, folder: try TinyModels.backboneFolder(hidden: 16))
        let table = try XCTUnwrap(model.parameters.entries.first { $0.name == "user.embeddings" })
        func rows() -> [[Float]] { (0..<4).map { u in (0..<16).map { model.parameters.values.data[table.offset + u * 16 + $0] } } }
        model.initializeUserModelAndHead(seed: 3)
        let zero = rows()
        XCTAssertEqual(zero.dropFirst().flatMap { $0 }.filter { $0 != 0 }.count, 0, "offsets start at zero")
        model.initializeUserModelAndHead(seed: 3, initialization: FreshInitialization(userSpread: 0.5))
        let spread = rows()
        XCTAssertEqual(spread[0], zero[0], "the generic user does not move")
        let words = try XCTUnwrap(model.parameters.entries.first { $0.name.hasSuffix("word_embeddings.weight") })
        let tokenRows = (0..<(words.count / 16)).map { r in (0..<16).map { model.parameters.values.data[words.offset + r * 16 + $0] } }
        for offset in spread.dropFirst() {
            XCTAssertTrue(tokenRows.contains { row in zip(row, offset).allSatisfy { abs(0.5 * $0 - $1) < 1e-7 } },
                          "each offset is half a token embedding row")
        }
    }

    /// Offsets start at zero; give every user table entry a value so each path carries signal.
    private func perturb(_ parameters: Parameters, group: Parameters.Group, seed: UInt64) {
        var rng = RandomSource(seed: seed)
        for entry in parameters.entries where entry.group == group {
            for i in 0..<entry.count { parameters.values[entry.offset + i] += 0.3 * rng.nextNormal() }
        }
    }

    private func check(_ model: RewardModel, label: String) throws {
        let ids = { (text: String) in TinyModels.ids(model, text) }
        let prompt = ids("Human: What should I cook tonight?\n\nAssistant:")
        let inputs = [
            RewardInput(user: 1, prompt: prompt, reply: ids("Pasta.")),
            RewardInput(user: 1, prompt: prompt, reply: ids("A warm bowl of soup with fresh bread.")),
            RewardInput(user: 2, explicit: ids("I am vegetarian."), prompt: prompt, reply: ids("Pasta.")),
            RewardInput(user: 0, prompt: prompt, reply: ids("Pasta.")),
            RewardInput(user: 3, prompt: ids("Human: hi\n\nAssistant:"), reply: ids("Hello there!")),
        ]
        let weights: [Float] = [0.7, -1.3, 0.4, 1.1, -0.6]
        func loss() -> Double {
            zip(model.forward(inputs), weights).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
        }
        _ = loss()
        model.parameters.zeroGrad()
        _ = model.forward(inputs, training: true)
        model.backward(dRewards: weights)
        let p = model.parameters
        let largest = p.grads.array.map(abs).max() ?? 0
        XCTAssertGreaterThan(largest, 0, "\(label): no gradient at all")
        // Each tensor against its own scale: every user/head float, 16 samples of each backbone
        // tensor, and 4 coordinates of every word-table row the inputs use (their text and
        // explicit-user-text tokens; special tokens included).
        var seed: UInt64 = 17
        let table = p.entry(model.backbone.wordEmbeddings), C = model.backbone.hiddenSize
        let noise = FiniteDifferences.noise(values: p.values.data, analytic: p.grads.data,
                                            indices: p.entries.filter { $0.name != table.name }.map { $0.offset + $0.count / 2 }, step: 3e-3, loss: loss)
        var wrong: [(String, FiniteDifferences.Disagreement)] = []
        func check(_ name: String, _ indices: [Int], scaleOf range: Range<Int>) {
            let floor = FiniteDifferences.floor(analytic: p.grads.data + range.lowerBound, count: range.count, noiseFloor: noise)
            wrong += FiniteDifferences.disagreements(values: p.values.data, analytic: p.grads.data, indices: indices, step: 3e-3,
                                                     relativeTolerance: 3e-2, absoluteFloor: floor, loss: loss).map { (name, $0) }
        }
        for entry in p.entries where entry.name != table.name {
            let range = entry.offset..<(entry.offset + entry.count)
            let indices = entry.group == .backbone ? FiniteDifferences.sample(entry.count, 16, seed: &seed).map { entry.offset + $0 } : Array(range)
            check(entry.name, indices, scaleOf: range)
        }
        let window = model.window
        let used = Set(inputs.flatMap { window.sequence(for: $0).sequence.explicit + window.sequence(for: $0).sequence.text })
        for id in used.sorted() {
            let row = table.offset + Int(id) * C
            check("\(table.name)[\(id)]", FiniteDifferences.sample(C, 4, seed: &seed).map { row + $0 }, scaleOf: row..<(row + C))
        }
        for (name, d) in wrong.prefix(5) { XCTFail("\(label): \(name)\(d)") }
        let failures = wrong.count
        XCTAssertEqual(failures, 0, "\(label): \(failures) gradient entries disagree")
    }
}
