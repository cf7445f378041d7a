import Foundation
import XCTest
import PRMCore
import PRMModel
import PRMScoring
import PRMScoringTestSupport
import PRMTestSupport

/// Llama-family reward models (the tiny llama, Qwen2 and Qwen3 of Tests/Fixtures/llama-family,
/// random weights) scoring at bf16 and int8 through the `Scorer` (`LlamaBackbone` on
/// `LlamaLayerStack`'s prepared matrices, real oneDNN kernels) against the same model at fp32:
/// pooled states, scores and the order of each prompt's replies stay close, a shared prompt
/// scores as the replies computed one by one do at the same precision, and the fp32 matrices are
/// released (fingerprint unchanged, another precision refused).
///
/// Bounds are measured worst values with a margin, as in `LowPrecisionInferenceTests` and
/// `DecoderLowPrecisionTests` (measured values in each call's comment). A wrong scale, layout,
/// bias block or row offset gives cosines far below them and score errors of the order of the
/// spread.
final class LlamaLowPrecisionScoringTests: XCTestCase {
    static let variants = ["llama", "qwen2", "qwen3"]

    /// Two prompts with several replies each (byte-level tokens inside the fixtures' 64
    /// positions), for a known user, the generic user and a user text.
    static let items: [ScoringItem] = {
        var items: [ScoringItem] = []
        let replies = ["Hello there.", "Hi! How can I help?", "Hey.", "Good day to you, friend.", "Yo", "Greetings, what is up?"]
        for (prompt, replies) in [("Human: hi\n\nAssistant:", replies),
                                  ("Human: egg?\n\nAssistant:", ["Boil it.", "Nine minutes, then cold water.", "Fry it.", "Poach it gently."])] {
            for user in ["ann", nil] as [String?] {
                items += replies.map { ScoringItem(userID: user, prompt: prompt, response: $0) }
            }
            items += replies.prefix(3).map { ScoringItem(userID: "bob", userInfo: "Short.", prompt: prompt, response: $0) }
        }
        return items
    }()

    /// The fixture folder's reward model with the weights `ScorerTests.model` gives it (a fresh
    /// model per call: bf16 and int8 release the fp32 matrices).
    static func model(_ variant: String, precision: Precision) throws -> RewardModel {
        let folder = TestSupport.repoRoot.appendingPathComponent("Tests/Fixtures/llama-family/\(variant)")
        let model = try ScorerTests.model(.linearHead, .individual, folder: folder, maxLength: 64)
        try model.backbone.useInferencePrecision(precision)
        return model
    }

    static func scorer(_ variant: String, precision: Precision) throws -> Scorer {
        Scorer(model: try model(variant, precision: precision), users: ScorerTests.users)
    }

    /// Measured (worst over the three variants): pooled cosine bf16 0.999999, int8 0.999994; max
    /// |Δscore| / fp32's score spread bf16 0.0006, int8 0.0017; every pair ordered as at fp32;
    /// shared prompts against one item at a time 2.4e-7 of the spread.
    func testTinyLlamaFamilyScoresAtLowPrecisionStayCloseToFP32() throws {
        for variant in Self.variants {
            let reference = try Self.scorer(variant, precision: .fp32)
            for (precision, cosine, scoreError, ordered) in [(Precision.bf16, 0.99999, 0.003, 1.0), (.int8, 0.9999, 0.01, 0.95)] {
                let low = try Self.scorer(variant, precision: precision)
                XCTAssertEqual(low.model.backbone.inferencePrecision, precision)
                let agreement = LowPrecisionAgreement(low: low, reference: reference, items: Self.items)
                print("\(variant) \(precision): \(agreement)")
                XCTAssertEqual(agreement.failures(cosine: cosine, scoreError: scoreError, ordered: ordered, sharing: 1e-5), [], "\(variant) \(precision): \(agreement)")
            }
        }
    }

    /// bf16 and int8 release the backbone's fp32 layer matrices (whole pages only: these tiny
    /// matrices share pages, so `SmolLM2LowPrecisionTests` checks that the values are gone) and
    /// keep the embeddings; the fingerprint names the weights as loaded; another precision (or int8
    /// plan) is refused afterwards, naming what to do. The training forward pass would read
    /// released weights and is not offered (`LlamaBackbone.forward`'s precondition).
    func testLowPrecisionReleasesTheFP32MatricesAndRefusesAnotherPrecision() throws {
        let fp32 = try Self.model("qwen2", precision: .fp32)
        let int8 = try Self.model("qwen2", precision: .int8)
        XCTAssertFalse(fp32.parameters.hasReleasedValues)
        XCTAssertTrue(int8.parameters.hasReleasedValues)
        XCTAssertEqual(ModelFingerprint.of(int8, users: ScorerTests.users), ModelFingerprint.of(fp32, users: ScorerTests.users))
        let embeddings = int8.backbone.wordEmbeddings
        XCTAssertEqual(int8.parameters.value(embeddings)[100], fp32.parameters.value(embeddings)[100])
        for other in [Precision.fp32, .bf16] {
            XCTAssertThrowsError(try int8.backbone.useInferencePrecision(other)) { error in
                XCTAssertTrue("\(error)".contains("load it again to infer at \(other)"), "\(error)")
            }
        }
        Int8Plan.products = [.qkv, .ffnDown]
        defer { Int8Plan.products = Int8Plan.defaultProducts }
        XCTAssertThrowsError(try int8.backbone.useInferencePrecision(.int8)) { error in
            XCTAssertTrue("\(error)".contains("load it again"), "\(error)")
        }
        XCTAssertEqual(int8.backbone.inferencePrecision, .int8)
    }

    /// A mixed `--int8-products` plan: the products left out run at bf16, so its scores are
    /// neither all-int8's nor bf16's, and stay within int8's bounds of fp32.
    func testMixedInt8PlanOnALlamaRewardModel() throws {
        let reference = try Self.scorer("llama", precision: .fp32)
        Int8Plan.products = [.qkv, .ffnUp]
        defer { Int8Plan.products = Int8Plan.defaultProducts }
        let mixed = try Self.scorer("llama", precision: .int8)
        Int8Plan.products = Int8Plan.defaultProducts
        let int8 = try Self.scorer("llama", precision: .int8), bf16 = try Self.scorer("llama", precision: .bf16)
        let agreement = LowPrecisionAgreement(low: mixed, reference: reference, items: Self.items)
        XCTAssertEqual(agreement.failures(cosine: 0.9999, scoreError: 0.01, ordered: 0.95, sharing: 1e-5), [], "mixed plan: \(agreement)")
        let scores = [mixed, int8, bf16].map { $0.score(Self.items).map(\.score) }
        XCTAssertNotEqual(scores[0], scores[1], "the mixed plan ran every product at int8")
        XCTAssertNotEqual(scores[0], scores[2], "the mixed plan ran every product at bf16")
    }
}
