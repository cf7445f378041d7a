import Foundation
import XCTest
import PRMCore
import PRMModel
import PRMScoring
import PRMTestSupport
@testable import PRMTraining

/// New users fitted on a few comparisons with everything trained frozen.
final class UserAdapterTests: XCTestCase {
    /// 8 trained users (2 minority); newcomers "new-majority" and "new-minority" with 12 each.
    static let trained = SyntheticPreferences.twoGroups(users: 8, minorityShare: 0.25, comparisonsPerUser: 24, seed: 1)
    static let newcomers: [Comparison] = SyntheticPreferences.twoGroups(users: 4, minorityShare: 0.5, comparisonsPerUser: 12, seed: 9)
        .comparisons.compactMap { c in
            var c = c
            switch c.userID {
            case "user-1": c.userID = "new-majority"
            case "user-4": c.userID = "new-minority"
            default: return nil
            }
            return c
        }

    func trainedModel(_ aggregator: Aggregator) throws -> (RewardModel, UserTable) {
        var settings = TinyModels.settings(aggregator, .individual)
        settings.epochs = 12
        let users = UserTable(ids: Self.trained.comparisons.map(\.userID))
        let model = try TinyModels.rewardModel(settings, users: users.count, folder: TinyModels.backboneFolder())
        try Trainer(model: model, users: users, settings: settings,
                    train: InputPreparer(model: model, users: users).encode(Self.trained.comparisons)).run()
        return (model, users)
    }

    /// Accuracy of `user` (and of the generic user) on comparisons.
    func accuracy(_ model: RewardModel, users: UserTable, user: Int, on data: [EncodedComparison]) -> (adapted: Double, generic: Double) {
        let r = model.forward(data.flatMap { c in
            [RewardInput(user: user, prompt: c.prompt, reply: c.chosen), RewardInput(user: user, prompt: c.prompt, reply: c.rejected),
             RewardInput(user: 0, prompt: c.prompt, reply: c.chosen), RewardInput(user: 0, prompt: c.prompt, reply: c.rejected)]
        })
        let n = Double(data.count)
        return (Double(data.indices.filter { r[4 * $0] > r[4 * $0 + 1] }.count) / n,
                Double(data.indices.filter { r[4 * $0 + 2] > r[4 * $0 + 3] }.count) / n)
    }

    /// Three comparisons flip a minority newcomer; a majority newcomer stays as good as the generic
    /// user; nothing trained moves, and the new users survive a save and load.
    func testLinearHeadNewcomersFromThreeComparisons() throws {
        let (model, users) = try trainedModel(.linearHead)
        let before = model.parameters.values.array
        let adapter = try UserAdapter(model: model, users: users)
        var table = users
        let encoded = InputPreparer(model: model, users: users).encode(Self.newcomers)
        var indices: [String: Int] = [:]
        for id in ["new-majority", "new-minority"] {
            let mine = encoded.filter { $0.userID == id }
            let index = try adapter.addUser(Array(mine.prefix(3)))
            table.add(id, index: index)
            indices[id] = index
            let result = accuracy(model, users: table, user: index, on: Array(mine.dropFirst(3)))
            if id == "new-minority" {
                XCTAssertLessThan(result.generic, 0.2, "the generic user sides with the majority")
                XCTAssertGreaterThan(result.adapted, 0.9, "adapted minority newcomer")
            } else {
                XCTAssertGreaterThanOrEqual(result.adapted, result.generic, "a majority newcomer loses nothing")
            }
        }
        XCTAssertEqual(model.parameters.values.array, before, "backbone, head and trained users are frozen")
        XCTAssertEqual(model.userModel.users, users.count + 2)
        XCTAssertEqual(indices.values.sorted(), [users.count + 1, users.count + 2])

        // Saved and loaded, the newcomers are ordinary users of the table.
        let folder = try TestSupport.temporaryDirectory("adapted")
        defer { try? FileManager.default.removeItem(at: folder) }
        try Checkpoint.save(model, users: table, to: folder)
        let (loaded, loadedUsers, _) = try Checkpoint.load(folder)
        XCTAssertEqual(loadedUsers, table)
        XCTAssertEqual(loaded.config.userModel.users, users.count + 2)
        XCTAssertEqual(loaded.userModel.addedUsers, 0)
        let probe = encoded.prefix(4).flatMap { c in indices.values.sorted().map { RewardInput(user: $0, prompt: c.prompt, reply: c.chosen) } }
        XCTAssertEqual(loaded.forward(probe), model.forward(probe))
    }

    /// The soft prompt: only the new user's tokens move, and they learn the minority preference.
    func testSoftPromptNewcomer() throws {
        let (model, users) = try trainedModel(.softPrompt)
        let before = model.parameters.values.array
        let adapter = try UserAdapter(model: model, users: users)
        let mine = InputPreparer(model: model, users: users).encode(Self.newcomers).filter { $0.userID == "new-minority" }
        let index = try adapter.addUser(Array(mine.prefix(3)))
        let result = accuracy(model, users: users, user: index, on: Array(mine.dropFirst(3)))
        XCTAssertLessThan(result.generic, 0.2)
        XCTAssertGreaterThan(result.adapted, 0.8)
        XCTAssertEqual(model.parameters.values.array, before, "only the added row may change")
    }

    /// Personalized fit of every comparison's own user, through the model's forward pass:
    /// comparisons ordered right and the summed −log σ(r_chosen − r_rejected).
    func ownFit(_ model: RewardModel, on data: [EncodedComparison]) -> (correct: Int, loss: Double) {
        let r = model.forward(data.flatMap { c in
            [RewardInput(user: c.user, explicit: c.explicit, prompt: c.prompt, reply: c.chosen),
             RewardInput(user: c.user, explicit: c.explicit, prompt: c.prompt, reply: c.rejected)]
        })
        let margins = data.indices.map { Double(r[2 * $0]) - Double(r[2 * $0 + 1]) }
        return (margins.filter { $0 > 0 }.count, margins.reduce(0) { $0 + log1p(exp(-$1)) })
    }

    /// Refitting seen users after a short SGD run fits their own training comparisons better,
    /// as the model itself scores them; the report agrees with the model; only the seen users'
    /// rows move (backbone, head and the generic user 0 do not); and a second refit from the same
    /// trained state is bit-identical.
    func testRefitSeenUsersFitsTheirTrainingComparisonsBetter() throws {
        var settings = TinyModels.settings(.linearHead, .individual)
        settings.epochs = 2  // joint SGD leaves the user vectors short of their fit
        let users = UserTable(ids: Self.trained.comparisons.map(\.userID))
        let model = try TinyModels.rewardModel(settings, users: users.count, folder: TinyModels.backboneFolder())
        let train = InputPreparer(model: model, users: users).encode(Self.trained.comparisons)
        try Trainer(model: model, users: users, settings: settings, train: train).run()
        let trained = model.parameters.values.array
        let before = ownFit(model, on: train)

        var adapt = AdaptSettings()
        adapt.priorScale = TrainingSettings().refitPriorScale
        let report = try UserAdapter(model: model, users: users, settings: adapt).refitSeenUsers(train)
        let after = ownFit(model, on: train)
        XCTAssertEqual(report.users, users.count)
        XCTAssertEqual(report.after.n, train.count)
        XCTAssertLessThan(after.loss, 0.9 * before.loss, "refitted vectors fit their training comparisons better")
        XCTAssertGreaterThanOrEqual(after.correct, before.correct)
        XCTAssertEqual(report.before.correct, before.correct, "the report's 'before' is the model as trained")
        XCTAssertEqual(report.after.correct, after.correct)
        XCTAssertEqual(report.before.loss, before.loss, accuracy: 1e-3 * before.loss)
        XCTAssertEqual(report.after.loss, after.loss, accuracy: 1e-3 * after.loss)

        let refitted = model.parameters.values.array
        let p = model.parameters
        let table = try XCTUnwrap(p.entries.first { $0.name == "user.embeddings" })
        let seenRows = (table.offset + model.userModel.rowSize)..<(table.offset + table.count)
        for i in refitted.indices where !seenRows.contains(i) {
            guard refitted[i] != trained[i] else { continue }
            XCTFail("parameter \(i) outside the seen users' rows changed: \(trained[i]) -> \(refitted[i])")
            break
        }
        XCTAssertNotEqual(Array(refitted[seenRows]), Array(trained[seenRows]))

        trained.withUnsafeBufferPointer { p.values.data.update(from: $0.baseAddress!, count: $0.count) }
        let again = try UserAdapter(model: model, users: users, settings: adapt).refitSeenUsers(train)
        XCTAssertEqual(model.parameters.values.array, refitted, "the refit is a deterministic function of the trained model and data")
        XCTAssertEqual(again, report)
    }

    func testRefitSeenUsersNeedsTheLinearHead() throws {
        let users = UserTable(ids: Self.trained.comparisons.map(\.userID))
        let model = try TinyModels.rewardModel(TinyModels.settings(.softPrompt, .individual), users: users.count,
                                               folder: TinyModels.backboneFolder())
        let train = InputPreparer(model: model, users: users).encode(Self.trained.comparisons)
        XCTAssertThrowsError(try UserAdapter(model: model, users: users).refitSeenUsers(train)) { error in
            XCTAssertTrue("\(error)".contains("needs the linear-head aggregator"), "\(error)")
        }
    }

    /// The dual Newton solution satisfies the optimality condition β = 1 − σ(z0 + Gβ) (∇J = G(β − r) = 0).
    func testNewtonSolvesTheDualProblem() {
        var rng = RandomSource(seed: 4)
        for K in [1, 2, 5, 12] {
            let vectors = (0..<K).map { _ in (0..<6).map { _ in Double(rng.nextNormal()) } }
            let G = vectors.map { a in vectors.map { b in zip(a, b).reduce(0) { $0 + $1.0 * $1.1 } } }
            let z0 = (0..<K).map { _ in Double(rng.nextNormal()) * 2 }
            let beta = UserAdapter.newton(z0: z0, gram: G)
            for k in 0..<K {
                let z = z0[k] + (0..<K).reduce(0) { $0 + G[k][$1] * beta[$1] }
                XCTAssertEqual(beta[k], 1 - 1 / (1 + exp(-z)), accuracy: 1e-7, "K=\(K), k=\(k)")
            }
        }
    }

    func testUniformUsersCannotBeAdapted() throws {
        var settings = TinyModels.settings(.linearHead, .uniform)
        settings.userTokens = 1
        let model = try TinyModels.rewardModel(settings, users: 2, folder: TinyModels.backboneFolder())
        XCTAssertThrowsError(try UserAdapter(model: model, users: UserTable(ids: ["a", "b"]))) { error in
            XCTAssertTrue("\(error)".contains("needs individual users"), "\(error)")
        }
    }
}
