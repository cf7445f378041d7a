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
        let encoded = EncodedComparison.encode(Self.data.comparisons, with: InputPreparer(model: model, users: users))
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
        let inputs = EncodedComparison.encode(Self.data.comparisons.prefix(6).map { $0 }, with: InputPreparer(model: trainer.model, users: users)).flatMap {
            [$0.personalized().chosen, $0.generic().rejected]
        } + [RewardInput(user: 0, explicit: TinyModels.ids(trainer.model, "I like short answers."), prompt: [], reply: TinyModels.ids(trainer.model, "ok"))]
        XCTAssertEqual(trainer.model.forward(inputs), loaded.forward(inputs))
        XCTAssertEqual(loaded.config, trainer.model.config)
    }

    /// Stopped mid-epoch, saved, loaded and resumed: bit-identical to an uninterrupted run, with
    /// and without dropout (its masks are a function of seed, step and micro-batch).
    func testResumeEqualsAnUninterruptedRun() throws {
        let folder = try TinyModels.backboneFolder()
        for dropout: Float in [0, 0.2] {
            var settings = TinyModels.settings(.softPrompt, .individual)
            settings.epochs = 2
            settings.dropout = dropout
            settings.microBatch = 8
            let users = UserTable(ids: Self.data.comparisons.map(\.userID))

            let whole = try TinyModels.rewardModel(settings, users: users.count, folder: folder)
            let encoded = EncodedComparison.encode(Self.data.comparisons, with: InputPreparer(model: whole, users: users))
            try Trainer(model: whole, users: users, settings: settings, train: encoded).run()

            let first = try TinyModels.rewardModel(settings, users: users.count, folder: folder)
            let interrupted = try Trainer(model: first, users: users, settings: settings, train: encoded)
            try interrupted.run(untilStep: interrupted.stepsPerEpoch + 3)  // stop mid-epoch
            let out = try TestSupport.temporaryDirectory("resume")
            try TrainingState.save(interrupted, to: out)

            let (restored, restoredUsers, _) = try Checkpoint.load(out)
            let resumed = try Trainer(model: restored, users: restoredUsers, settings: try TrainingState.load(from: out).settings, train: encoded)
            try TrainingState.load(from: out).restore(into: resumed, from: out)
            XCTAssertEqual(resumed.optimizer.step, interrupted.stepsPerEpoch + 3)
            try resumed.run()
            XCTAssertEqual(resumed.optimizer.step, resumed.totalSteps)
            XCTAssertEqual(restored.parameters.values.array, whole.parameters.values.array,
                           "dropout \(dropout): resumed parameters differ from the uninterrupted run")
            if dropout > 0 {
                // The masks matter: without dropout the same run ends elsewhere.
                var plain = settings
                plain.dropout = 0
                let other = try TinyModels.rewardModel(plain, users: users.count, folder: folder)
                try Trainer(model: other, users: users, settings: plain, train: encoded).run()
                XCTAssertNotEqual(other.parameters.values.array, whole.parameters.values.array)
            }
        }
    }

    /// The whole training loss by finite differences: α on the user's term, 1 − α on the generic
    /// user's, averaged over a batch that micro-batches of 2 split unevenly (5 = 2 + 2 + 1).
    func testTrainingLossGradientMatchesFiniteDifferences() throws {
        for aggregator in [Aggregator.linearHead, .softPrompt] {
            var settings = TinyModels.settings(aggregator, .individual)
            settings.alpha = 0.3
            settings.microBatch = 2
            let users = UserTable(ids: Self.data.comparisons.map(\.userID))
            let model = try TinyModels.rewardModel(settings, users: users.count, folder: TinyModels.backboneFolder(hidden: 16))
            var rng = RandomSource(seed: 8)
            for entry in model.parameters.entries where entry.group == .user {
                for i in 0..<entry.count { model.parameters.values[entry.offset + i] += 0.3 * rng.nextNormal() }
            }
            let encoded = EncodedComparison.encode(Self.data.comparisons, with: InputPreparer(model: model, users: users))
            let batch = [0, 30, 77, 120, 181].map { encoded[$0] }
            let trainer = try Trainer(model: model, users: users, settings: settings, train: encoded)
            func loss() -> Double {
                var total = 0.0
                for c in batch {
                    let r = model.forward([c.personalized().chosen, c.personalized().rejected, c.generic().chosen, c.generic().rejected]).map(Double.init)
                    let softplus = { (x: Double) in log1p(exp(x)) }
                    total += Double(settings.alpha) * softplus(r[1] - r[0]) + Double(1 - settings.alpha) * softplus(r[3] - r[2])
                }
                return total / Double(batch.count)
            }
            model.parameters.zeroGrad()
            let accumulated = trainer.accumulateGradients(batch, step: 0)
            XCTAssertEqual(Double(accumulated.loss) / Double(batch.count), loss(), accuracy: 1e-5, "\(aggregator): the loss itself")
            let p = model.parameters
            var seed: UInt64 = 3
            let probes = p.entries.map { $0.offset + $0.count / 2 }
            let noise = FiniteDifferences.noise(values: p.values.data, analytic: p.grads.data, indices: probes, step: 3e-3, loss: loss)
            var failures = 0
            for entry in p.entries where entry.group != .backbone || entry.name.contains("layer.0") {
                let indices = entry.group == .backbone ? FiniteDifferences.sample(entry.count, 8, seed: &seed) : Array(0..<entry.count)
                let floor = FiniteDifferences.floor(analytic: p.grads.data + entry.offset, count: entry.count, noiseFloor: noise)
                let wrong = FiniteDifferences.disagreements(values: p.values.data, analytic: p.grads.data, indices: indices.map { entry.offset + $0 },
                                                            step: 3e-3, relativeTolerance: 3e-2, absoluteFloor: floor, loss: loss)
                for d in wrong.prefix(3) { XCTFail("\(aggregator): \(entry.name)\(d)") }
                failures += wrong.count
            }
            XCTAssertEqual(failures, 0, "\(aggregator)")
        }
    }

    func testResumeRefusesDifferentData() throws {
        let folder = try TinyModels.backboneFolder()
        var settings = TinyModels.settings()
        settings.epochs = 1
        let users = UserTable(ids: Self.data.comparisons.map(\.userID))
        let model = try TinyModels.rewardModel(settings, users: users.count, folder: folder)
        let encoded = EncodedComparison.encode(Self.data.comparisons, with: InputPreparer(model: model, users: users))
        let trainer = try Trainer(model: model, users: users, settings: settings, train: encoded)
        try trainer.run(untilStep: 2)
        let out = try TestSupport.temporaryDirectory("resume-data")
        try TrainingState.save(trainer, to: out)
        let other = try Trainer(model: model, users: users, settings: settings, train: Array(encoded.dropLast()))
        XCTAssertThrowsError(try TrainingState.load(from: out).restore(into: other, from: out)) { error in
            XCTAssertTrue("\(error)".contains("training data differ"), "\(error)")
        }
    }

    /// A batch whose loss is NaN (its one comparison is from a user whose vector holds NaN) is
    /// skipped and counted, the run goes on, and the epoch end refuses to write the checkpoint:
    /// the weights still hold the NaN, and a folder of non-finite weights is worse than none.
    func testPoisonedBatchIsSkippedAndNoNonFiniteCheckpointIsWritten() throws {
        let folder = try TinyModels.backboneFolder()
        var settings = TinyModels.settings(.linearHead, .individual)
        settings.epochs = 1
        var comparisons = Self.data.comparisons
        var poisoned = comparisons[0]
        poisoned.userID = "poisoned"
        comparisons.append(poisoned)
        let users = UserTable(ids: comparisons.map(\.userID))
        let model = try TinyModels.rewardModel(settings, users: users.count, folder: folder)
        let table = try XCTUnwrap(model.parameters.handle(named: "user.embeddings"))
        let row = model.userModel.rowSize
        for i in 0..<row { model.parameters.value(table)[users.index(of: "poisoned") * row + i] = .nan }
        let encoded = EncodedComparison.encode(comparisons, with: InputPreparer(model: model, users: users))
        let trainer = try Trainer(model: model, users: users, settings: settings, train: encoded)
        let out = try TestSupport.temporaryDirectory("poisoned")
        XCTAssertThrowsError(try trainer.run { _ in try TrainingState.save(trainer, to: out) }) { error in
            XCTAssertTrue("\(error)".contains("not writing a checkpoint"), "\(error)")
        }
        XCTAssertEqual(trainer.skippedUpdates, 1, "the one batch holding the poisoned comparison")
        XCTAssertEqual(trainer.optimizer.step, trainer.totalSteps, "the other steps ran")
        XCTAssertFalse(FileManager.default.fileExists(atPath: out.appendingPathComponent("model.safetensors").path))
    }
}
