import Foundation
import XCTest
import PRMCore
import PRMTestSupport
import PRMTraining

/// `mpirun -np 2 prm ppo` against the same binary run as one process (the helpers are
/// MPITrainTests'): rollouts shared among the ranks, one update from summed gradients.
extension MPITrainTests {
    /// A tiny policy (prm sft), a tiny reward model scored in process by every rank, and 4 users'
    /// prompts: 8 replies an iteration, 2 epochs of 2 minibatches.
    func tinyPPORun() throws -> (folder: URL, common: [String], rewardModel: URL) {
        let folder = try scratchFolder("prm-mpi-ppo")
        let policy = try tinyPolicy()
        let model = try trainTinyRewardModel(in: folder, comparisonsPerUser: 6).checkpoint
        let data = folder.appendingPathComponent("prompts.jsonl")
        try JSONL.write(SyntheticPreferences.twoGroups(users: 4, minorityShare: 0.25, comparisonsPerUser: 3, seed: 9).comparisons, to: data)
        return (folder, ["ppo", "--policy", policy.path, "--reward-model", model.path, "--data", data.path, "--rollouts", "8",
                         "--minibatch", "4", "--ppo-epochs", "2", "--max-new-tokens", "8", "--target-kl", "0.5", "--kl-horizon", "16",
                         "--threads", "1"], model)
    }

    /// Two ranks, each sampling and scoring half of every iteration's replies, take the single
    /// process's 3 iterations: the same replies (their lengths per iteration are equal exactly),
    /// the same rewards, KL and losses, the same weights within float32 summation order, and
    /// only rank 0 wrote the log.
    func testTwoRanksRunTheSingleProcessPPO() throws {
        let (folder, common, _) = try tinyPPORun()
        let single = folder.appendingPathComponent("single"), ranks = folder.appendingPathComponent("ranks")
        try runToEnd(common + ["--iterations", "3", "--out", single.path])
        let job = try runToEnd(common + ["--iterations", "3", "--out", ranks.path], ranks: 2)
        XCTAssertTrue(job.contains("2 data-parallel ranks (this is rank 0)"), job)
        XCTAssertTrue(job.contains("rank 0 samples and scores 4 of every iteration's 8 replies"), job)
        try assertSameWeights(ranks, single)
        let a = try ppoLog(single), b = try ppoLog(ranks)
        XCTAssertEqual(a.count, 3)
        XCTAssertEqual(b.count, a.count, "one log line per iteration: the second rank wrote nothing")
        for (x, y) in zip(a, b) {
            XCTAssertEqual(y["length_tokens"], x["length_tokens"], "the ranks' replies are the single process's")
            XCTAssertEqual(y["length_words"], x["length_words"])
            for key in ["reward", "kl", "kl_coefficient", "entropy", "policy_loss", "value_loss", "clip_fraction"] {
                let u = try XCTUnwrap(x[key]), v = try XCTUnwrap(y[key])
                XCTAssertEqual(v, u, accuracy: 1e-4 * max(1, abs(u)), key)
            }
        }
        // The first iteration's policy is its reference (KL 0); the last one's sampled KL is not: the runs compare updates.
        XCTAssertEqual(a.first?["kl"], 0)
        XCTAssertGreaterThan(abs(a.last?["kl"] ?? 0), 1e-6, "the policy moved away from its reference")
    }

    /// A run checkpointed after 2 of 3 iterations on 2 ranks continues on 1, and one of 1 on
    /// 2: both end with the uninterrupted single process's weights. (The stopped runs are
    /// 2-iteration runs whose saved plan is then widened to 3: PPO's rates are constant, so a
    /// 2-iteration run's checkpoint is a 3-iteration run's after its second iteration.)
    func testPPOResumesWithAnotherRankCount() throws {
        let (folder, common, rewardModel) = try tinyPPORun()
        let reference = folder.appendingPathComponent("reference")
        try runToEnd(common + ["--iterations", "3", "--out", reference.path])
        let resumeArguments = ["ppo", "--reward-model", rewardModel.path]
        for (first, second) in [(2, nil), (nil, 2)] as [(Int?, Int?)] {
            let out = folder.appendingPathComponent("resumed-\(first ?? 1)-to-\(second ?? 1)")
            try runToEnd(common + ["--iterations", "2", "--out", out.path], ranks: first)
            try widenPlannedIterations(of: out, to: 3)
            let resumed = try runToEnd(resumeArguments + ["--resume", "--out", out.path, "--threads", "1"], ranks: second)
            XCTAssertTrue(resumed.contains("resuming at iteration 2 of 3"), resumed)
            try assertSameWeights(out, reference)
            XCTAssertEqual(try ppoLog(out).count, 3)
        }
    }

    /// Rewrites the saved run's planned iterations (trainer_state.json's settings).
    func widenPlannedIterations(of out: URL, to iterations: Int) throws {
        let url = out.appendingPathComponent("trainer_state.json")
        var state = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any])
        var settings = try XCTUnwrap(state["settings"] as? [String: Any])
        XCTAssertEqual(settings["iterations"] as? Int, 2)
        settings["iterations"] = iterations
        state["settings"] = settings
        try JSONSerialization.data(withJSONObject: state).write(to: url)
    }

    /// ppo_log.jsonl's numeric fields, one dictionary per iteration.
    func ppoLog(_ out: URL) throws -> [[String: Double]] {
        try String(contentsOf: out.appendingPathComponent("ppo_log.jsonl"), encoding: .utf8).split(separator: "\n").map {
            let object = try XCTUnwrap(JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])
            return object.compactMapValues { $0 as? Double }
        }
    }
}
