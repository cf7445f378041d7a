import Foundation
import XCTest
import PRMCore
import PRMTestSupport
@testable import PRMModel

/// Hugging Face folders of the Llama family loaded by prm against Hugging Face `transformers`
/// itself: tiny random llama (F32, sequence classification), qwen2 (BF16, q/k/v biases) and qwen3
/// (F16, q/k norm, sequence classification) written with their outputs by
/// Tests/Reference/make_llama_family.py (committed; no torch needed here). Bad folders fail with
/// one error naming the file and the tensor or key.
final class LlamaFamilyReferenceTests: XCTestCase {
    static let fixtures = TestSupport.repoRoot.appendingPathComponent("Tests/Fixtures/llama-family")

    static func inputs() throws -> [[Int32]] {
        struct Inputs: Decodable { let ids: [[Int32]] }
        return try JSONDecoder().decode(Inputs.self, from: Data(contentsOf: fixtures.appendingPathComponent("inputs.json"))).ids
    }

    func testHiddenStatesEqualTransformers() throws {
        let inputs = try Self.inputs()
        for name in ["llama", "qwen2", "qwen3"] {
            let loaded = try Backbones.load(folder: Self.fixtures.appendingPathComponent(name))
            XCTAssertEqual(loaded.backbone.modelType, name)
            let reference = try SafetensorsFile(contentsOf: Self.fixtures.appendingPathComponent("\(name)-reference.safetensors"))
            let C = loaded.backbone.hiddenSize
            let batch = PackedBatch(lengths: inputs.map(\.count))
            let embeddings = Tensor(shape: [batch.tokens, C])
            loaded.backbone.embedTokens(out: embeddings.data, ids: inputs.flatMap { $0 }, parameters: loaded.parameters)
            for training in [false, true] {
                let hidden = training ? loaded.backbone.forward(embeddings: embeddings.data, batch: batch, training: true)
                                      : loaded.backbone.infer(embeddings: embeddings.data, batch: batch)
                for (b, ids) in inputs.enumerated() {
                    let expected = Tensor(shape: [ids.count, C])
                    try reference.read("hidden.\(b)", into: expected.data, shape: [ids.count, C])
                    var worst: Float = 0
                    for i in 0..<ids.count * C { worst = max(worst, abs(hidden[batch.starts[b] * C + i] - expected[i])) }
                    XCTAssertLessThanOrEqual(worst, 1e-4, "\(name) sequence \(b) training \(training)")
                }
            }
        }
    }

    /// A `…ForSequenceClassification` folder's score head is the generic user's: its reward is
    /// Hugging Face's logit, for the linear head (uniform and individual users) and the soft prompt's head alike.
    func testScoreHeadIsTheGenericUsersReward() throws {
        let inputs = try Self.inputs()
        for name in ["llama", "qwen3"] {
            let folder = Self.fixtures.appendingPathComponent(name)
            let reference = try SafetensorsFile(contentsOf: Self.fixtures.appendingPathComponent("\(name)-reference.safetensors"))
            for kind in [UserModelKind.uniform, .individual] {
                let config = RewardModelConfig(aggregator: .linearHead, userModel: UserModelConfig(kind: kind, tokens: 1, users: 2), maxLength: 32)
                let model = try RewardModel.pretrained(backbone: folder, config: config, seed: 1)
                let rewards = model.forward(inputs.map { RewardInput(user: 0, prompt: Array($0.prefix(1)), reply: Array($0.dropFirst())) })
                for (b, reward) in rewards.enumerated() {
                    var expected: Float = 0
                    try reference.read("score.\(b)", into: &expected, shape: [1])
                    XCTAssertEqual(reward, expected, accuracy: 1e-4, "\(name) \(kind) sequence \(b)")
                }
            }
        }
    }

    // MARK: - Bad folders

    /// A copy of a fixture folder with config.json edited.
    func folder(_ name: String, editing edit: (inout [String: Any]) -> Void) throws -> URL {
        let copy = try TestSupport.temporaryDirectory("prm-llama-bad").appendingPathComponent(name)
        try FileManager.default.copyItem(at: Self.fixtures.appendingPathComponent(name), to: copy)
        let url = copy.appendingPathComponent("config.json")
        var config = try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as! [String: Any]
        edit(&config)
        try JSONSerialization.data(withJSONObject: config).write(to: url)
        return copy
    }

    func assertLoadFails(_ folder: URL, mentioning parts: [String], file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try Backbones.load(folder: folder), file: file, line: line) { error in
            let message = "\(error)"
            for part in parts { XCTAssertTrue(message.contains(part), "'\(message)' does not mention '\(part)'", file: file, line: line) }
        }
    }

    func testBadFoldersNameTheFileAndTheTensorOrKey() throws {
        assertLoadFails(try folder("llama") { $0["intermediate_size"] = 44 },
                        mentioning: ["model.safetensors", "model.layers.0.mlp.gate_proj.weight"])
        assertLoadFails(try folder("llama") { $0["num_hidden_layers"] = 3 }, mentioning: ["model.safetensors", "model.layers.2.input_layernorm.weight"])
        assertLoadFails(try folder("qwen2") { $0["model_type"] = "falcon" }, mentioning: ["config.json", "model_type", "falcon"])
        assertLoadFails(try folder("llama") { $0["model_type"] = "mistral"; $0["sliding_window"] = 4096 },
                        mentioning: ["config.json", "sliding_window"])
        assertLoadFails(try folder("qwen2") { $0["rope_parameters"] = ["rope_type": "yarn", "rope_theta": 10_000.0] },
                        mentioning: ["config.json", "rope_parameters", "yarn"])
        assertLoadFails(try folder("qwen3") { $0["num_key_value_heads"] = 3 }, mentioning: ["config.json", "num_key_value_heads"])
    }

    /// Mistral without a sliding window is the llama decoder.
    func testMistralWithoutSlidingWindowLoads() throws {
        let loaded = try Backbones.load(folder: try folder("llama") { $0["model_type"] = "mistral"; $0["sliding_window"] = NSNull() })
        XCTAssertEqual(loaded.backbone.modelType, "mistral")
    }
}
