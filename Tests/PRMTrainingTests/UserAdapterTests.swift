import Foundation
import XCTest
import PRMCore
@testable import PRMModel
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
        // Mean pooling alone: with reply counts this 32-wide model's generic user sides with the
        // majority on only 67-78% of the minority newcomer's pairs, and these tests need a generic
        // user that is clearly wrong for a minority newcomer before adapting.
        settings.replyCounts = 0
        let users = UserTable(ids: Self.trained.comparisons.map(\.userID))
        let model = try TinyModels.rewardModel(settings, users: users.count, folder: TinyModels.backboneFolder())
        try Trainer(model: model, users: users, settings: settings,
                    train: EncodedComparison.encode(Self.trained.comparisons, with: InputPreparer(model: model, users: users))).run()
        return (model, users)
    }

    /// Accuracy of `user` (and of the generic user) on comparisons.
    func accuracy(_ model: RewardModel, user: Int, on data: [EncodedComparison]) -> (adapted: Double, generic: Double) {
        let r = model.forward(data.flatMap { c in
            [RewardInput(user: user, prompt: c.prompt, reply: c.chosen), RewardInput(user: user, prompt: c.prompt, reply: c.rejected),
             RewardInput(user: 0, prompt: c.prompt, reply: c.chosen), RewardInput(user: 0, prompt: c.prompt, reply: c.rejected)]
        })
        let n = Double(data.count)
        return (Double(data.indices.filter { r[4 * $0] > r[4 * $0 + 1] }.count) / n,
                Double(data.indices.filter { r[4 * $0 + 2] > r[4 * $0 + 3] }.count) / n)
    }

    /// Adds "new-majority" and "new-minority" from their first three comparisons and checks them on
    /// the rest: the minority newcomer flips, the majority one loses nothing. Returns their indices.
    func adaptNewcomersFromThreeComparisons(_ adapter: UserAdapter, _ encoded: [EncodedComparison]) throws -> [String: Int] {
        var indices: [String: Int] = [:]
        for id in ["new-majority", "new-minority"] {
            let mine = encoded.filter { $0.userID == id }
            let index = try adapter.addUser(Array(mine.prefix(3)))
            indices[id] = index
            let result = accuracy(adapter.model, user: index, on: Array(mine.dropFirst(3)))
            if id == "new-minority" {
                XCTAssertLessThan(result.generic, 0.2, "the generic user sides with the majority")
                XCTAssertGreaterThan(result.adapted, 0.9, "adapted minority newcomer")
            } else {
                XCTAssertGreaterThanOrEqual(result.adapted, result.generic, "a majority newcomer loses nothing")
            }
        }
        return indices
    }

    /// Three comparisons flip a minority newcomer; a majority newcomer stays as good as the generic
    /// user; nothing trained moves, and the new users survive a save and load.
    func testLinearHeadNewcomersFromThreeComparisons() throws {
        let (model, users) = try trainedModel(.linearHead)
        let before = model.parameters.values.array
        let adapter = try UserAdapter(model: model, users: users)
        var table = users
        let encoded = EncodedComparison.encode(Self.newcomers, with: InputPreparer(model: model, users: users))
        let indices = try adaptNewcomersFromThreeComparisons(adapter, encoded)
        for (id, index) in indices { table.add(id, index: index) }
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
        let mine = EncodedComparison.encode(Self.newcomers, with: InputPreparer(model: model, users: users)).filter { $0.userID == "new-minority" }
        let index = try adapter.addUser(Array(mine.prefix(3)))
        let result = accuracy(model, user: index, on: Array(mine.dropFirst(3)))
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
        let (trainer, train) = try shortLinearHeadRun()
        let (model, users) = (trainer.model, trainer.users)
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

    /// A linear-head model after two epochs (joint SGD leaves the user vectors short of their
    /// fit), its trainer (default refit settings) and its encoded training comparisons.
    func shortLinearHeadRun() throws -> (Trainer, [EncodedComparison]) {
        var settings = TinyModels.settings(.linearHead, .individual)
        settings.epochs = 2
        let users = UserTable(ids: Self.trained.comparisons.map(\.userID))
        let model = try TinyModels.rewardModel(settings, users: users.count, folder: TinyModels.backboneFolder())
        let train = EncodedComparison.encode(Self.trained.comparisons, with: InputPreparer(model: model, users: users))
        let trainer = try Trainer(model: model, users: users, settings: settings, train: train)
        try trainer.run()
        return (trainer, train)
    }

    /// e_user as the model scores with it (C floats: the linear head has one user token).
    func userVector(_ model: RewardModel, _ user: Int) -> [Double] {
        var e = [Float](repeating: 0, count: model.userModel.rowSize)
        e.withUnsafeMutableBufferPointer { model.userModel.forward(out: $0.baseAddress!, user: user) }
        return e.map(Double.init)
    }

    /// The refit at the default settings is the MAP user of the documented objective with τ = 64
    /// (the recipe's value, chosen on the validation split): for every user, with x = e − e_0,
    /// d_k = h(chosen_k) − h(rejected_k) and z_k = ⟨e, d_k⟩, the gradient of
    /// Σ_k −log σ(z_k) + ½ xᵀ(τΣ)⁻¹x vanishes, i.e. x = τΣ·Σ_k σ(−z_k)·d_k. Σ is rebuilt here from
    /// the vectors as trained (second moment of o_i = e_i − e_0 plus `isotropicShare` of their
    /// mean variance on every direction), d_k from the model's pooled states. Another τ (256)
    /// leaves a residual of 1 − 64/τ of |x|.
    func testRefitIsTheMAPUserAtTheDefaultPriorScale() throws {
        let (trainer, train) = try shortLinearHeadRun()
        let model = trainer.model, U = trainer.users.count, C = model.userModel.rowSize
        let trained = (0...U).map { userVector(model, $0) }
        let offsets = trained.dropFirst().map { zip($0, trained[0]).map { $0 - $1 } }
        let isotropic = UserPrior.isotropicShare * offsets.reduce(0) { $0 + $1.reduce(0) { $0 + $1 * $1 } } / Double(U * C)
        func tauSigma(_ v: [Double]) -> [Double] {
            var out = v.map { 64 * isotropic * $0 }
            for o in offsets {
                let dot = zip(o, v).reduce(0) { $0 + $1.0 * $1.1 } * 64 / Double(U)
                for i in out.indices { out[i] += dot * o[i] }
            }
            return out
        }

        let report = try XCTUnwrap(try trainer.refitSeenUsers())
        XCTAssertEqual(report.users, U)
        let preparer = InputPreparer(model: model, users: trainer.users)
        for user in 1...U {
            let mine = train.filter { $0.user == user }
            let sequences = mine.flatMap { c in
                [c.chosen, c.rejected].map { preparer.prepare(user: 0, known: false, explicit: c.explicit, prompt: c.prompt, reply: $0).sequence }
            }
            var h = [Float](repeating: 0, count: sequences.count * C)
            h.withUnsafeMutableBufferPointer { model.pooledStates(sequences, tokensPerBatch: 8192, into: $0.baseAddress!) }
            let e = userVector(model, user)
            let x = zip(e, trained[0]).map { $0 - $1 }
            var pull = [Double](repeating: 0, count: C)  // Σ_k σ(−z_k)·d_k
            for k in mine.indices {
                let d = (0..<C).map { Double(h[2 * k * C + $0]) - Double(h[(2 * k + 1) * C + $0]) }
                let z = zip(e, d).reduce(0) { $0 + $1.0 * $1.1 }
                for i in 0..<C { pull[i] += d[i] / (1 + exp(z)) }
            }
            let residual = zip(x, tauSigma(pull)).reduce(0) { $0 + ($1.0 - $1.1) * ($1.0 - $1.1) }.squareRoot()
            let size = x.reduce(0) { $0 + $1 * $1 }.squareRoot()
            XCTAssertGreaterThan(size, 0, "user \(user) moved off the generic user")
            XCTAssertLessThan(residual, 1e-3 * size, "user \(user): the refitted vector is not the MAP user at τ = 64")
        }
    }

    /// Trained users with no comparisons in the refit's data keep their vectors bit for bit (they
    /// are neither refitted nor reset); the others are refitted, and the report counts only them.
    func testRefitLeavesUsersWithoutComparisonsAlone() throws {
        let (trainer, train) = try shortLinearHeadRun()
        let model = trainer.model, U = trainer.users.count, n = model.userModel.rowSize
        func row(_ user: Int) throws -> [Float] { Array(UnsafeBufferPointer(start: try XCTUnwrap(model.userModel.row(user)).value, count: n)) }
        let before = try (0...U).map(row)
        let absent: Set<Int> = [2, 5]
        let data = train.filter { !absent.contains($0.user) }
        var settings = AdaptSettings()
        settings.priorScale = TrainingSettings().refitPriorScale
        let report = try UserAdapter(model: model, users: trainer.users, settings: settings).refitSeenUsers(data)
        XCTAssertEqual(report.users, U - absent.count)
        XCTAssertEqual(report.after.n, data.count)
        XCTAssertEqual(try row(0), before[0], "the generic user is frozen")
        for user in 1...U {
            if absent.contains(user) {
                XCTAssertEqual(try row(user), before[user], "user \(user) had no comparisons and must keep its vector")
            } else {
                XCTAssertNotEqual(try row(user), before[user], "user \(user) was not refitted")
            }
        }
    }

    func testRefitSeenUsersNeedsTheLinearHead() throws {
        let users = UserTable(ids: Self.trained.comparisons.map(\.userID))
        let model = try TinyModels.rewardModel(TinyModels.settings(.softPrompt, .individual), users: users.count,
                                               folder: TinyModels.backboneFolder())
        let train = EncodedComparison.encode(Self.trained.comparisons, with: InputPreparer(model: model, users: users))
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
            let beta = UserPrior.newton(z0: z0, gram: G)
            for k in 0..<K {
                let z = z0[k] + (0..<K).reduce(0) { $0 + G[k][$1] * beta[$1] }
                XCTAssertEqual(beta[k], 1 - 1 / (1 + exp(-z)), accuracy: 1e-7, "K=\(K), k=\(k)")
            }
        }
    }

    /// A cluster newcomer is a mixture of the trained centres: three comparisons move a minority
    /// newcomer's mixture logits to the minority's centre; only the K logits are added.
    func testClusterNewcomersFromThreeComparisons() throws {
        var settings = TinyModels.settings(.linearHead, .cluster)
        settings.epochs = 12
        settings.replyCounts = 0
        let users = UserTable(ids: Self.trained.comparisons.map(\.userID))
        let model = try TinyModels.rewardModel(settings, users: users.count, folder: TinyModels.backboneFolder())
        try Trainer(model: model, users: users, settings: settings,
                    train: EncodedComparison.encode(Self.trained.comparisons, with: InputPreparer(model: model, users: users))).run()
        let before = model.parameters.values.array
        let adapter = try UserAdapter(model: model, users: users)
        let encoded = EncodedComparison.encode(Self.newcomers, with: InputPreparer(model: model, users: users))
        _ = try adaptNewcomersFromThreeComparisons(adapter, encoded)
        XCTAssertEqual(model.userModel.rowSize, settings.clusters, "K logits per user")
        XCTAssertEqual(model.parameters.values.array, before, "centres, backbone, head and trained users are frozen")
        XCTAssertThrowsError(try adapter.refitSeenUsers(EncodedComparison.encode(Self.trained.comparisons, with: adapter.preparer))) { error in
            XCTAssertTrue("\(error)".contains("needs individual users"), "\(error)")
        }
    }

    /// The mixture fit's gradient against central differences of its objective, and its solution
    /// a stationary point, on random features and a random positive definite prior.
    func testMixtureFitGradientAndMinimum() {
        var rng = RandomSource(seed: 5)
        for K in [2, 3, 6] {
            let features = (0..<9).map { _ in (0..<K).map { _ in Double(rng.nextNormal()) * 2 } }
            let generic = (0..<K).map { _ in Double(rng.nextNormal()) }
            let factor = (0..<K).map { _ in (0..<K).map { _ in Double(rng.nextNormal()) } }
            let precision = (0..<K).map { a in (0..<K).map { b in
                (0..<K).reduce(0) { $0 + factor[a][$1] * factor[b][$1] } / Double(K) + (a == b ? 0.5 : 0)
            } }
            let fit = MixtureFit(features: features, generic: generic, precision: precision)
            let x = (0..<K).map { _ in Double(rng.nextNormal()) }
            let g = fit.gradient(x)
            for j in 0..<K {
                var up = x, down = x
                up[j] += 1e-6
                down[j] -= 1e-6
                XCTAssertEqual(g[j], (fit.objective(up) - fit.objective(down)) / 2e-6, accuracy: 1e-6 * max(1, abs(g[j])), "K=\(K), j=\(j)")
            }
            let solution = fit.solve()
            XCTAssertLessThan(fit.gradient(solution).map(abs).max() ?? 1, 1e-7, "K=\(K): stationary")
            XCTAssertLessThan(fit.objective(solution), fit.objective([Double](repeating: 0, count: K)), "K=\(K): below the start")
        }
    }

    func testUniformUsersCannotBeAdapted() throws {
        var settings = TinyModels.settings(.linearHead, .uniform)
        settings.userTokens = 1
        let model = try TinyModels.rewardModel(settings, users: 2, folder: TinyModels.backboneFolder())
        XCTAssertThrowsError(try UserAdapter(model: model, users: UserTable(ids: ["a", "b"]))) { error in
            XCTAssertTrue("\(error)".contains("needs individual or cluster users"), "\(error)")
        }
    }
}
