import Foundation
import XCTest
import PRMModel
import PRMTestSupport
@testable import PRMTraining

/// `--pooled-scale auto`: the rule, and what it measures on the two real backbones.
final class PooledScaleChoiceTests: XCTestCase {
    /// Up to twice the recipe's spread (and below it) the scale stays 1; above, the ratio to two digits.
    func testTheScaleIsOneNearTheRecipeAndTheRatioOutsideIt() {
        let recipe = PooledScaleChoice.recipeSpread
        XCTAssertEqual(PooledScaleChoice(spread: recipe).scale, 1)
        XCTAssertEqual(PooledScaleChoice(spread: recipe * 1.9).scale, 1)
        XCTAssertEqual(PooledScaleChoice(spread: recipe / 1.9).scale, 1)
        XCTAssertEqual(PooledScaleChoice(spread: recipe * 4).scale, 0.25)
        XCTAssertEqual(PooledScaleChoice(spread: 383.1).scale, 0.063, accuracy: 1e-7)  // 24 / 383.1 = 0.06265
        XCTAssertEqual(PooledScaleChoice(spread: recipe / 3).scale, 1, "a smaller state is not enlarged")
        XCTAssertEqual(PooledScaleChoice(spread: 0).scale, 1, "a backbone whose replies all pool alike gets no scale")
        XCTAssertEqual(PooledScaleChoice(spread: .infinity).scale, 1)
        XCTAssertEqual(PooledScaleChoice.twoSignificantDigits(0.0012345), 0.0012, accuracy: 1e-12)
        XCTAssertEqual(PooledScaleChoice.twoSignificantDigits(37.6), 38, accuracy: 1e-9)
    }

    /// MiniLM, where the recipe was chosen, keeps 1; SmolLM2's last-token state is scaled down by
    /// about the ratio bench/pooled_scale.py measured independently with transformers (18.2).
    func testAutoKeepsMiniLMAndScalesSmolLM2() throws {
        let data = try PreferenceDataset.load(TestSupport.lengthprefDirectory.appendingPathComponent("train.jsonl"))
        let users = UserTable(ids: data.userIDs)
        var settings = TrainingSettings()
        XCTAssertNil(settings.pooledScale, "auto is the default")
        for (backbone, scales) in [(try TestSupport.miniLMDirectory(), Float(1)...1), (try TestSupport.smolLM2File(), 0.045...0.075)] {
            var run = settings
            var probes: [RewardModelConfig] = []
            let choice = try XCTUnwrap(try PooledScaleChoice.resolve(&run, users: users, comparisons: data.comparisons, template: data.template) {
                probes.append($0)
                return try RewardModel.pretrained(backbone: backbone, config: $0, seed: 1)
            })
            XCTAssertTrue(scales.contains(choice.scale), "\(backbone.lastPathComponent): \(choice.description)")
            XCTAssertEqual(run.pooledScale, choice.scale)
            XCTAssertEqual(probes.map(\.replyCounts), [0], "the probe pools the backbone's state alone")
            XCTAssertEqual(probes.map(\.pooledScale), [1])
            XCTAssertEqual(run.replyCounts, settings.replyCounts, "the run keeps its own structure")
        }
        settings.pooledScale = 0.5
        XCTAssertNil(try PooledScaleChoice.resolve(&settings, users: users, comparisons: data.comparisons, template: data.template) { _ in
            XCTFail("a given scale is not measured")
            throw TrainingError("unreachable")
        })
        XCTAssertEqual(settings.pooledScale, 0.5)
    }
}
