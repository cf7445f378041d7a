import Foundation
import XCTest
import PRMCore
import PRMModel
import PRMScoring
import PRMTestSupport
@testable import PRMTraining

/// End-to-end training on synthetic two-group preferences with a tiny model.
final class TrainerTests: XCTestCase {
    /// 8 users, 2 of them minority (25%), 24 comparisons each.
    static let data = SyntheticPreferences.twoGroups(users: 8, minorityShare: 0.25, comparisonsPerUser: 24, seed: 1)

    func train(_ settings: TrainingSettings, folder: URL) throws -> (Trainer, EvaluationReport) {
        let users = UserTable(ids: Self.data.comparisons.map(\.userID))
        let model = try TinyModels.rewardModel(settings, users: users.count, folder: folder)
        let encoded = InputPreparer(model: model, users: users).encode(Self.data.comparisons)
        let trainer = try Trainer(model: model, users: users, settings: settings, train: encoded)
        try trainer.run()
        let report = Evaluator(model: model, users: users).evaluate(encoded, groups: Self.data.groups)
        return (trainer, report)
    }

    func testPersonalizedModelLearnsBothGroupsWhileVanillaCannot() throws {
        let folder = try TinyModels.backboneFolder()
        var personalized = TinyModels.settings(.linearHead, .individual)
        personalized.epochs = 12
        let (_, prm) = try train(personalized, folder: folder)
        let majority = try XCTUnwrap(prm.byGroup["majority"]), minority = try XCTUnwrap(prm.byGroup["minority"])
        XCTAssertGreaterThan(majority.accuracy, 0.95, "P-RM on the majority group\n\(prm.table())")
        XCTAssertGreaterThan(minority.accuracy, 0.95, "P-RM on the minority group\n\(prm.table())")

        var vanilla = personalized
        vanilla.makeVanilla()
        let (_, plain) = try train(vanilla, folder: folder)
        // One reward for everyone: it can at best side with the majority (75% of comparisons).
        XCTAssertLessThanOrEqual(plain.overall.accuracy, 0.75 + 0.03, "vanilla overall\n\(plain.table())")
        XCTAssertLessThan(try XCTUnwrap(plain.byGroup["minority"]).accuracy, 0.5, "vanilla on the minority group")
    }

    func testSoftPromptLearnsBothGroups() throws {
        let folder = try TinyModels.backboneFolder()
        var settings = TinyModels.settings(.softPrompt, .individual)
        settings.epochs = 12
        let (_, report) = try train(settings, folder: folder)
        XCTAssertGreaterThan(try XCTUnwrap(report.byGroup["majority"]).accuracy, 0.9, report.table())
        XCTAssertGreaterThan(try XCTUnwrap(report.byGroup["minority"]).accuracy, 0.9, report.table())
    }

    func testSaveThenLoadGivesIdenticalScores() throws {
        let folder = try TinyModels.backboneFolder()
        var settings = TinyModels.settings(.softPrompt, .cluster)
        settings.epochs = 1
        let (trainer, _) = try train(settings, folder: folder)
        let out = try TestSupport.temporaryDirectory("ckpt")
        try TrainingState.save(trainer, to: out)
        let (loaded, users, _) = try Checkpoint.load(out)
        XCTAssertEqual(users, trainer.users)
        let inputs = InputPreparer(model: trainer.model, users: users).encode(Self.data.comparisons.prefix(6).map { $0 }).flatMap {
            [$0.personalized().chosen, $0.generic().rejected]
        } + [RewardInput(user: 0, explicit: TinyModels.ids(trainer.model, "I like short answers."), prompt: [], reply: TinyModels.ids(trainer.model, "ok"))]
        XCTAssertEqual(trainer.model.forward(inputs), loaded.forward(inputs))
        XCTAssertEqual(loaded.config, trainer.model.config)
    }

    func testResumeEqualsAnUninterruptedRun() throws {
        let folder = try TinyModels.backboneFolder()
        var settings = TinyModels.settings(.softPrompt, .individual)
        settings.epochs = 2
        let users = UserTable(ids: Self.data.comparisons.map(\.userID))

        let whole = try TinyModels.rewardModel(settings, users: users.count, folder: folder)
        let encoded = InputPreparer(model: whole, users: users).encode(Self.data.comparisons)
        try Trainer(model: whole, users: users, settings: settings, train: encoded).run()

        let first = try TinyModels.rewardModel(settings, users: users.count, folder: folder)
        let interrupted = try Trainer(model: first, users: users, settings: settings, train: encoded)
        try interrupted.run(untilStep: interrupted.stepsPerEpoch + 3)  // stop mid-epoch
        let out = try TestSupport.temporaryDirectory("resume")
        try TrainingState.save(interrupted, to: out)

        let (restored, restoredUsers, _) = try Checkpoint.load(out)
        let resumed = try Trainer(model: restored, users: restoredUsers, settings: try TrainingState.settings(in: out), train: encoded)
        try TrainingState.restore(resumed, from: out)
        XCTAssertEqual(resumed.optimizer.step, interrupted.stepsPerEpoch + 3)
        try resumed.run()
        XCTAssertEqual(resumed.optimizer.step, resumed.totalSteps)
        XCTAssertEqual(restored.parameters.values.array, whole.parameters.values.array, "resumed parameters differ from the uninterrupted run")
    }

    func testResumeRefusesDifferentData() throws {
        let folder = try TinyModels.backboneFolder()
        var settings = TinyModels.settings()
        settings.epochs = 1
        let users = UserTable(ids: Self.data.comparisons.map(\.userID))
        let model = try TinyModels.rewardModel(settings, users: users.count, folder: folder)
        let encoded = InputPreparer(model: model, users: users).encode(Self.data.comparisons)
        let trainer = try Trainer(model: model, users: users, settings: settings, train: encoded)
        try trainer.run(untilStep: 2)
        let out = try TestSupport.temporaryDirectory("resume-data")
        try TrainingState.save(trainer, to: out)
        let other = try Trainer(model: model, users: users, settings: settings, train: Array(encoded.dropLast()))
        XCTAssertThrowsError(try TrainingState.restore(other, from: out)) { error in
            XCTAssertTrue("\(error)".contains("training data differ"), "\(error)")
        }
    }
}
