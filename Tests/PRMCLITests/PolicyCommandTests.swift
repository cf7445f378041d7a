import Foundation
import XCTest
import PRMCLI
import PRMCore
import PRMModel
import PRMPolicy
import PRMTestSupport
import PRMTraining

/// prm generate (and prm ppo's failures) through the real commands: the output `prm score` reads,
/// and one-line errors for bad inputs.
final class PolicyCommandTests: XCTestCase {
    /// A tiny reward model trained for one epoch by the real `prm train` on synthetic comparisons.
    func tinyRewardModel() throws -> URL {
        try trainTinyRewardModel(in: try scratchFolder("prm-policy-rm"), comparisonsPerUser: 6).checkpoint
    }

    func testGenerateWritesWhatScoreReads() throws {
        let policy = try tinyPolicy()
        let result = PRM.run("generate", "--policy", policy.path, "--prompt", "Human: Hi\n\nAssistant:", "--prompt", "What is a cat?",
                             "--user", "worker-3", "-n", "3", "--max-new-tokens", "12", "--seed", "7")
        assertSucceeded(result)
        XCTAssertEqual(result.stdoutLines.count, 2)
        for (line, prompt) in zip(result.stdoutLines, ["Human: Hi\n\nAssistant:", "What is a cat?"]) {
            let object = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
            XCTAssertEqual(object["user_id"] as? String, "worker-3")
            XCTAssertEqual(object["prompt"] as? String, prompt)
            XCTAssertEqual((object["candidates"] as? [String])?.count, 3)
        }
        // The same seed gives the same replies; the input file form gives the same as --prompt.
        let again = PRM.run("generate", "--policy", policy.path, "--prompt", "Human: Hi\n\nAssistant:", "--prompt", "What is a cat?",
                            "--user", "worker-3", "-n", "3", "--max-new-tokens", "12", "--seed", "7")
        XCTAssertEqual(again.stdout, result.stdout)
        let input = try scratchFolder().appendingPathComponent("prompts.jsonl")
        try Data((#"{"user_id": "worker-3", "prompt": "Human: Hi\n\nAssistant:"}"# + "\n" + #"{"user_id": "worker-3", "prompt": "What is a cat?"}"# + "\n").utf8)
            .write(to: input)
        let fromFile = PRM.run("generate", "--policy", policy.path, "--input", input.path, "-n", "3", "--max-new-tokens", "12", "--seed", "7")
        XCTAssertEqual(fromFile.stdout, result.stdout)
        // prm score ranks what prm generate wrote.
        try Data(result.stdout.utf8).write(to: input)
        let scored = PRM.run("score", "--model", try tinyRewardModel().path, "--input", input.path)
        XCTAssertEqual(scored.status, 0, "\(scored)")
        XCTAssertEqual(scored.stdoutLines.count, 2, "\(scored)")
    }

    func testGGUFChatModelGeneratesWhatScoreReads() throws {
        let model = try TestSupport.smolLM2File().path
        let result = PRM.run("generate", "--policy", model, "--prompt", "What is a cat?", "--prompt", "Name a fruit.",
                             "--user", "worker-3", "-n", "3", "--max-new-tokens", "10", "--seed", "7", "--top-k", "40")
        assertSucceeded(result)
        XCTAssertEqual(result.stdoutLines.count, 2)
        for (line, prompt) in zip(result.stdoutLines, ["What is a cat?", "Name a fruit."]) {
            let object = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
            XCTAssertEqual(object["user_id"] as? String, "worker-3")
            XCTAssertEqual(object["prompt"] as? String, prompt)
            let candidates = try XCTUnwrap(object["candidates"] as? [String])
            XCTAssertEqual(candidates.count, 3)
            XCTAssertTrue(candidates.allSatisfy { !$0.isEmpty && !$0.contains("<|im_") }, "\(candidates)")
        }
        let input = try scratchFolder().appendingPathComponent("candidates.jsonl")
        try Data(result.stdout.utf8).write(to: input)
        let scored = PRM.run("score", "--model", try tinyRewardModel().path, "--input", input.path)
        XCTAssertEqual(scored.status, 0, "\(scored)")
        XCTAssertEqual(scored.stdoutLines.count, 2, "\(scored)")
        let missing = try scratchFolder().appendingPathComponent("none.gguf").path
        assertFailed(PRM.run("generate", "--policy", missing, "--prompt", "hi"), command: "generate", mentioning: [missing, "GGUF model file not found"])
        let notModel = TestSupport.ggufFixtures.appendingPathComponent("types.gguf").path
        assertFailed(PRM.run("generate", "--policy", notModel, "--prompt", "hi"), command: "generate", mentioning: [notModel, "tokenizer.chat_template"])
    }

    func testGenerateErrors() throws {
        let missing = try scratchFolder().appendingPathComponent("no-policy").path
        assertFailed(PRM.run("generate", "--policy", missing, "--prompt", "hi"), command: "generate", mentioning: [missing, "policy folder not found"])
        // A reward model is not a policy.
        let notPolicy = try scratchFolder()
        try Data(#"{"model_type": "gpt2", "prm": {"format": "prm-reward-model-v1"}}"#.utf8).write(to: notPolicy.appendingPathComponent("config.json"))
        assertFailed(PRM.run("generate", "--policy", notPolicy.path, "--prompt", "hi"), command: "generate",
                     mentioning: ["config.json", "expected 'prm-policy-v1'"])
        let policy = try tinyPolicy()
        assertUsageError(PRM.run("generate", "--policy", policy.path, "--prompt", "hi", "--top-p", "0"), command: "generate",
                         message: "--top-p must be in (0, 1], got 0.0")
    }

    /// A short real run: both groups logged every iteration, the policy saved with its users.
    func testPPOAgainstARewardModel() throws {
        let policy = try tinyPolicy(), model = try tinyRewardModel()
        let root = try scratchFolder()
        let data = root.appendingPathComponent("prompts.jsonl"), groups = root.appendingPathComponent("groups.json")
        try JSONL.write(SyntheticPreferences.twoGroups(users: 4, minorityShare: 0.25, comparisonsPerUser: 3, seed: 9).comparisons, to: data)
        try Data(#"{"user-1": "majority", "user-2": "majority", "user-3": "majority", "user-4": "minority"}"#.utf8).write(to: groups)
        let out = root.appendingPathComponent("ppo")
        let result = PRM.run("ppo", "--policy", policy.path, "--reward-model", model.path, "--data", data.path, "--groups", groups.path,
                             "--out", out.path, "--iterations", "2", "--rollouts", "8", "--minibatch", "4", "--ppo-epochs", "2",
                             "--max-new-tokens", "8", "--target-kl", "0.5", "--kl-horizon", "16", "--kl-coef", "0.1")
        assertSucceeded(result)
        let lines = try String(contentsOf: out.appendingPathComponent("ppo_log.jsonl"), encoding: .utf8).split(separator: "\n")
        XCTAssertEqual(lines.count, 2)
        var coefficients: [Double] = []
        for line in lines {
            let entry = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
            for key in ["iteration", "reward", "kl", "entropy", "value_loss", "clip_fraction", "length_tokens", "rollout_seconds",
                        "scoring_seconds", "update_seconds"] {
                XCTAssertNotNil(entry[key], "log lacks \(key): \(line)")
            }
            XCTAssertEqual((entry["groups"] as? [String: Any]).map { Set($0.keys) }, ["majority", "minority"])
            coefficients.append(entry["kl_coefficient"] as? Double ?? .nan)
        }
        // --target-kl adapts β after the first iteration: its KL is 0 (policy = reference), below the target, so β falls
        // by the controller's largest step, 20% of 8 replies over a horizon of 16.
        XCTAssertEqual(coefficients[0], 0.1, accuracy: 1e-6)
        XCTAssertEqual(coefficients[1], 0.1 * (1 - 0.2 * 8 / 16), accuracy: 1e-6)
        let users = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: out.appendingPathComponent("users.json"))) as? [String: Int])
        XCTAssertEqual(Set(users.keys), ["user-1", "user-2", "user-3", "user-4"])
        // The trained policy generates for its users.
        assertSucceeded(PRM.run("generate", "--policy", out.path, "--prompt", "Hi", "--user", "user-4", "-n", "2", "--max-new-tokens", "6"))
    }

    /// A rate that blows the policy up: like `prm train`, `prm sft` skips the non-finite steps,
    /// stops after three in a row naming the cause, and writes no checkpoint.
    func testDivergingSFTStopsWithoutACheckpoint() throws {
        let out = try scratchFolder("prm-policy").appendingPathComponent("sft")
        let result = PRM.run("sft", "--out", out.path, "--limit", "8", "--epochs", "1", "--batch-size", "2", "--layers", "1",
                             "--heads", "2", "--embedding", "16", "--positions", "96", "--user-tokens", "2", "--lr", "1e30",
                             "--log-every", "1", "--warmup", "0",
                             "--data", TestSupport.repoRoot.appendingPathComponent("data/lengthpref/train.jsonl").path,
                             "--dev", TestSupport.repoRoot.appendingPathComponent("data/lengthpref/dev.jsonl").path,
                             "--tokenizer", TestSupport.repoRoot.appendingPathComponent("data/policy/tokenizer.json").path)
        assertFailed(result, command: "sft", mentioning: ["3 updates in a row had a non-finite loss or gradient norm", "stopping", "--lr"])
        XCTAssertFalse(FileManager.default.fileExists(atPath: out.appendingPathComponent("model.safetensors").path),
                       "a checkpoint was written for a diverged run")
    }

    /// An absurd --epochs is an error naming it, as in prm train (it used to trap on overflow).
    func testSFTEpochsOverflowingTheStepCounterIsAnError() throws {
        let out = try scratchFolder("prm-policy").appendingPathComponent("sft")
        let result = PRM.run("sft", "--out", out.path, "--limit", "8", "--epochs", "\(Int.max / 2)", "--layers", "1",
                             "--heads", "2", "--embedding", "16", "--positions", "96",
                             "--data", TestSupport.repoRoot.appendingPathComponent("data/lengthpref/train.jsonl").path,
                             "--dev", TestSupport.repoRoot.appendingPathComponent("data/lengthpref/dev.jsonl").path,
                             "--tokenizer", TestSupport.repoRoot.appendingPathComponent("data/policy/tokenizer.json").path)
        assertFailed(result, command: "sft", mentioning: ["--epochs", "overflows the step counter"])
    }

    /// The same guard in PPO's minibatch updates: a diverged policy is never saved.
    func testDivergingPPOStopsWithoutACheckpoint() throws {
        let policy = try tinyPolicy(), model = try tinyRewardModel()
        let root = try scratchFolder()
        let data = root.appendingPathComponent("prompts.jsonl"), out = root.appendingPathComponent("ppo")
        try JSONL.write(SyntheticPreferences.twoGroups(users: 4, minorityShare: 0.25, comparisonsPerUser: 3, seed: 9).comparisons, to: data)
        let result = PRM.run("ppo", "--policy", policy.path, "--reward-model", model.path, "--data", data.path, "--out", out.path,
                             "--iterations", "3", "--rollouts", "8", "--minibatch", "2", "--ppo-epochs", "2", "--max-new-tokens", "8",
                             "--lr", "1e30", "--user-lr", "1e30", "--checkpoint-every", "1")
        assertFailed(result, command: "ppo", mentioning: ["3 updates in a row had a non-finite loss or gradient norm", "stopping"])
        XCTAssertFalse(FileManager.default.fileExists(atPath: out.appendingPathComponent("model.safetensors").path),
                       "a checkpoint was written for a diverged run")
    }

    /// `prm ppo --resume` takes settings, reference and prompts from --out (only the reward source
    /// is given again): a finished run has nothing left to do, and other prompts are refused,
    /// naming the folder. (Bit-identical continuation: PPOTests.testResumeEqualsAnUninterruptedRun.)
    func testPPOResume() throws {
        let policy = try tinyPolicy(), model = try tinyRewardModel()
        let root = try scratchFolder()
        let data = root.appendingPathComponent("prompts.jsonl"), out = root.appendingPathComponent("ppo")
        let comparisons = SyntheticPreferences.twoGroups(users: 4, minorityShare: 0.25, comparisonsPerUser: 3, seed: 9).comparisons
        try JSONL.write(comparisons, to: data)
        assertSucceeded(PRM.run("ppo", "--policy", policy.path, "--reward-model", model.path, "--data", data.path, "--out", out.path,
                                "--iterations", "2", "--rollouts", "8", "--minibatch", "4", "--ppo-epochs", "1", "--max-new-tokens", "8"))
        let state = try PPOState.load(from: out)
        XCTAssertEqual(state.iteration, 2)
        XCTAssertEqual(state.settings.rollouts, 8)
        let weights = try Data(contentsOf: out.appendingPathComponent("model.safetensors"))

        assertSucceeded(PRM.run("ppo", "--resume", "--reward-model", model.path, "--out", out.path))
        XCTAssertEqual(try Data(contentsOf: out.appendingPathComponent("model.safetensors")), weights, "a finished run is left as it was")
        XCTAssertEqual(try String(contentsOf: out.appendingPathComponent("ppo_log.jsonl"), encoding: .utf8).split(separator: "\n").count, 2)

        let other = root.appendingPathComponent("other.jsonl")
        try JSONL.write(Array(comparisons.dropFirst(3)), to: other)
        assertFailed(PRM.run("ppo", "--resume", "--reward-model", model.path, "--out", out.path, "--data", other.path), command: "ppo",
                     mentioning: [out.path, "prompts differ from the run being resumed"])
    }

    func testPPOErrors() throws {
        let policy = try tinyPolicy()
        let root = try scratchFolder()
        let out = root.appendingPathComponent("ppo")
        let missing = root.appendingPathComponent("no-reward-model").path
        assertFailed(PRM.run("ppo", "--policy", policy.path, "--reward-model", missing, "--out", out.path), command: "ppo",
                     mentioning: [missing])
        // A port nobody listens on: the first contact times out.
        let unreachable = "tcp://127.0.0.1:1"
        assertFailed(PRM.run("ppo", "--policy", policy.path, "--reward-server", unreachable, "--connect-timeout", "0.2", "--retries", "1",
                             "--out", out.path), command: "ppo", mentioning: ["reward server", unreachable])
        let noPolicy = root.appendingPathComponent("no-policy").path
        assertFailed(PRM.run("ppo", "--policy", noPolicy, "--reward-server", unreachable, "--out", out.path), command: "ppo",
                     mentioning: [noPolicy, "policy folder not found"])
        XCTAssertFalse(FileManager.default.fileExists(atPath: out.path), "ppo created its output before failing")
        assertUsageError(PRM.run("ppo", "--policy", policy.path, "--out", out.path), command: "ppo",
                         message: "give --reward-model DIR (in process) or --reward-server ENDPOINT")
        assertUsageError(PRM.run("ppo", "--policy", policy.path, "--reward-server", unreachable, "--out", out.path, "--rollouts", "1"),
                         command: "ppo", message: "--rollouts must be at least 2 (rewards and advantages are whitened across them), got 1")
    }
}
