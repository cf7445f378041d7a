import Foundation
import PRMCore
import PRMModel
import PRMPolicy
import PRMScoring
import PRMTraining

/// `prm ppo`: fine-tune a policy by PPO against a (personalized) reward model.
enum PpoCommand: Subcommand {
    static let defaults = PPOSettings()

    static let spec = CommandSpec(
        name: "ppo",
        abstract: "Fine-tune a policy (prm sft) by PPO against a reward model, per user.",
        discussion: """
        Each iteration draws --rollouts (user, prompt) pairs from --data (users in turn, a random \
        prompt of each), samples one reply per pair from the policy, scores every reply with the \
        reward model (in process with --reward-model, or a running prm serve / prm proxy with \
        --reward-server through protocol v1's score op), and runs --ppo-epochs passes of \
        minibatches of PPO's clipped policy and value objectives. The reward of a reply is its \
        score (whitened across the iteration) on its last token minus β·(log π − log π_ref) on \
        every token, π_ref the frozen --policy (or --reference); β is fixed or, with --target-kl, \
        adapted. Every user of --data gets its own vectors before the prompt, starting as the \
        generic user; unknown users at generation time use the generic user 0.

        --out receives the policy (prm-policy-v1) every --checkpoint-every iterations and at the \
        end, and ppo_log.jsonl: one JSON object per iteration with reward, KL, entropy, losses, \
        clip fraction, mean reply length and reward per user group (--groups: a JSON object user \
        id -> label; default one group per user), and the rollout/scoring/update seconds. Beside the \
        policy it keeps the optimizer, the iteration and the KL controller, so --resume continues the \
        run in --out exactly: its settings, reference and (unless --data is given) prompt file; the \
        reward source is given again.

        Example:
          prm ppo --policy runs/sft --reward-model runs/prm --out runs/ppo --groups groups.json
          prm ppo --reward-model runs/prm --out runs/ppo --resume
          mpirun -np 2 prm ppo --policy runs/sft --reward-model runs/prm --out runs/ppo --threads 1   (2 ranks)

        Under mpirun each rank samples and scores its share of every iteration's --rollouts (the \
        replies a single process would sample, from the same seeds), and the ranks sum what the \
        iteration needs (scores, advantage statistics) and every minibatch's gradients, so they \
        take the single process's updates; rank 0 alone logs and writes --out, and --resume works \
        with any number of ranks. Every rank scores its replies itself (--reward-model loaded by \
        each, or each connects to --reward-server).
        """,
        options: [
            .value("policy", placeholder: "DIR", help: "Starting policy (prm sft); also the KL reference unless --reference."),
            .value("reference", placeholder: "DIR", help: "Frozen reference policy for the KL penalty (default: --policy)."),
            .value("reward-model", placeholder: "DIR", help: "Reward-model checkpoint scored in process."),
            .value("reward-server", placeholder: "ENDPOINT", help: "Score through a running prm serve / prm proxy instead (tcp://HOST:PORT)."),
        ] + ClientOptions.all(for: "reward-server") + [
            CurveOptions.secretKey, CurveOptions.serverKey,
            .value("data", placeholder: "FILE", help: "Prompts and their users: preference JSONL (user_id, prompt, ...).",
                   default: DefaultData.trainFile),
            .value("groups", placeholder: "FILE", help: "JSON object: user id -> group label, for the log."),
            .value("out", placeholder: "DIR", help: "Output policy folder (required)."),
            .value("iterations", placeholder: "N", help: "Rollout-and-update iterations.", default: "\(defaults.iterations)"),
            .value("rollouts", placeholder: "N", help: "Replies sampled per iteration.", default: "\(defaults.rollouts)"),
            .value("minibatch", placeholder: "N", help: "Replies per optimizer step.", default: "\(defaults.minibatch)"),
            .value("ppo-epochs", placeholder: "N", help: "Passes over each iteration's replies.", default: "\(defaults.epochs)"),
            .value("lr", placeholder: "LR", help: "Learning rate of the decoder (constant).", default: "\(defaults.learningRate)"),
            .value("user-lr", placeholder: "LR", help: "Learning rate of the user vectors and the value head.", default: "\(defaults.userLearningRate)"),
            .value("kl-coef", placeholder: "BETA", help: "β of the per-token KL penalty (initial β with --target-kl).", default: "\(defaults.klCoefficient)"),
            .value("target-kl", placeholder: "KL", help: "Adapt β towards this KL per reply (default: β fixed)."),
            .value("kl-horizon", placeholder: "N", help: "Replies over which the adaptive β moves.", default: "\(defaults.klHorizon)"),
            .value("clip-range", placeholder: "EPS", help: "ε of the clipped policy objective.", default: "\(defaults.clipRange)"),
            .value("value-clip-range", placeholder: "EPS", help: "ε of the clipped value objective.", default: "\(defaults.valueClipRange)"),
            .value("vf-coef", placeholder: "C", help: "Weight of the value loss.", default: "\(defaults.valueCoefficient)"),
            .value("gamma", placeholder: "G", help: "Discount of GAE.", default: "\(defaults.gamma)"),
            .value("lambda", placeholder: "L", help: "λ of GAE.", default: "\(defaults.lambda)"),
            .flag("no-whiten", help: "Use the raw scores as rewards (default: whitened per iteration)."),
            .value("max-new-tokens", placeholder: "N", help: "Longest reply in policy tokens.", default: "\(defaults.maxNewTokens)"),
            .value("grad-clip", placeholder: "NORM", help: "Clip the global gradient norm.", default: "\(defaults.gradientClip)"),
            .value("seed", placeholder: "N", help: "Seed of draws, sampling and minibatch order.", default: "\(defaults.seed)"),
            .value("checkpoint-every", placeholder: "N", help: "Iterations between checkpoints.", default: "\(defaults.checkpointEvery)"),
            .flag("resume", help: "Continue the run saved in --out exactly (its settings, reference and, unless --data is given, its prompts)."),
            DataParallel.threadsOption,
        ])

    static func run<Out: TextOutputStream>(_ arguments: ParsedArguments, output _: inout Out) throws -> Int32 {
        try DataParallel.run(arguments) { try train(arguments, ranks: $0) }
    }

    /// The run as one of `ranks`: every rank samples, scores and trains on its share of each
    /// iteration's replies; rank 0 alone writes --out.
    static func train(_ arguments: ParsedArguments, ranks: Ranks) throws -> Int32 {
        let run = try TrainingRun<PPOState>(arguments, name: "ppo")
        let settings = try run.settings { try settingsFrom(arguments) }
        let groups = try arguments.string("groups").map(InputFiles.groups) ?? [:]
        let dataFile = try run.dataFile(arguments)
        let data = try PreferenceDataset.load(URL(fileURLWithPath: dataFile.path))
        let prompts = Array(Set(data.comparisons.map { PPOPrompt(userID: $0.userID, prompt: $0.prompt) }))
            .sorted { ($0.userID ?? "", $0.prompt) < ($1.userID ?? "", $1.prompt) }

        let policy: Policy, users: UserTable
        if run.resume {
            (policy, users, _) = try PolicyCheckpoint.load(run.out)
        } else {
            let (start, startUsers, _) = try PolicyCheckpoint.load(URL(fileURLWithPath: try arguments.require("policy")))
            users = UserTable(ids: prompts.compactMap(\.userID))
            policy = try start.withUsers(users, known: startUsers)
        }
        let referenceFolder = URL(fileURLWithPath: try arguments.string("reference") ?? run.state?.reference ?? arguments.require("policy")).path
        let (reference, referenceUsers, _) = try PolicyCheckpoint.load(URL(fileURLWithPath: referenceFolder))
        let reward = try rewardSource(arguments)

        let trainer = try PPOTrainer(policy: policy, users: users, reference: reference, referenceUsers: referenceUsers, prompts: prompts,
                                     reward: reward, settings: settings, ranks: ranks)
        trainer.groups = groups
        Log.info("\(prompts.count) (user, prompt) pairs from \(users.count) users; rewards from \(reward.name); "
                 + "\(policy.parameters.count) parameters")
        if let state = run.state {
            try state.restore(into: trainer, from: run.out)
            guard run.continues(at: trainer.iteration, of: settings.iterations, unit: "iteration") else { return 0 }
        }
        if ranks.isDistributed {
            Log.info("rank 0 samples and scores \(ranks.shard(Array(0..<settings.rollouts)).indices.count) of every iteration's "
                     + "\(settings.rollouts) replies")
        }
        // Every rank starts from rank 0's weights; the other ranks sample, score and update and write nothing.
        try ranks.broadcast(policy.parameters)
        guard ranks.isLeader else {
            try trainer.run()
            return 0
        }
        let (logWriter, progress) = try run.start(remaining: settings.iterations - trainer.iteration, unit: "iter")
        trainer.progress = progress
        trainer.onLog = { logWriter.write($0) }
        try trainer.run { _ in try PPOState.save(trainer, dataFile: dataFile.absolute, reference: referenceFolder, to: run.out) }
        progress.finish()
        if let last = trainer.log.last {
            Log.info(String(format: "iteration %d: reward %.3f, KL %.3f, mean length %.1f tokens; ", last.iteration, last.reward, last.kl, last.lengthTokens)
                     + last.groups.sorted { $0.key < $1.key }.map { String(format: "%@ %.1f", $0.key, $0.value.lengthTokens) }.joined(separator: ", "))
        }
        run.finish(progress)
        return 0
    }

    /// The reward model in process, or a server asked for `health` first so that an unreachable
    /// one fails before any work.
    static func rewardSource(_ arguments: ParsedArguments) throws -> any RewardSource {
        switch (arguments.string("reward-model"), try arguments.endpoint("reward-server")) {
        case (let model?, nil):
            return try ScorerRewards(checkpoint: URL(fileURLWithPath: model))
        case (nil, let endpoint?):
            let options = try ClientOptions.settings(arguments)
            return try ServerRewards(endpoint: endpoint, timeout: options.timeout, retries: options.retries,
                                     contactTimeout: options.contactTimeout, keys: options.keys)
        case (nil, nil): throw arguments.usageError("give --reward-model DIR (in process) or --reward-server ENDPOINT")
        case (_?, _?): throw arguments.usageError("give --reward-model or --reward-server, not both")
        }
    }

    static func settingsFrom(_ a: ParsedArguments) throws -> PPOSettings {
        var s = PPOSettings()
        s.iterations = try a.int("iterations", default: s.iterations)
        s.rollouts = try a.int("rollouts", default: s.rollouts)
        s.minibatch = try a.int("minibatch", default: s.minibatch)
        s.epochs = try a.int("ppo-epochs", default: s.epochs)
        s.learningRate = Float(try a.double("lr", default: Double(s.learningRate)))
        s.userLearningRate = Float(try a.double("user-lr", default: Double(s.userLearningRate)))
        s.klCoefficient = Float(try a.double("kl-coef", default: Double(s.klCoefficient)))
        s.targetKL = try a.double("target-kl").map(Float.init)
        s.klHorizon = Float(try a.double("kl-horizon", default: Double(s.klHorizon)))
        s.clipRange = Float(try a.double("clip-range", default: Double(s.clipRange)))
        s.valueClipRange = Float(try a.double("value-clip-range", default: Double(s.valueClipRange)))
        s.valueCoefficient = Float(try a.double("vf-coef", default: Double(s.valueCoefficient)))
        s.gamma = Float(try a.double("gamma", default: Double(s.gamma)))
        s.lambda = Float(try a.double("lambda", default: Double(s.lambda)))
        s.whitenRewards = !a.flag("no-whiten")
        s.maxNewTokens = try a.int("max-new-tokens", default: s.maxNewTokens)
        s.gradientClip = Float(try a.double("grad-clip", default: Double(s.gradientClip)))
        let seed = try a.int("seed", default: Int(s.seed))
        guard seed >= 0 else { throw a.usageError("--seed must be non-negative") }
        s.seed = UInt64(seed)
        s.checkpointEvery = try a.int("checkpoint-every", default: s.checkpointEvery)
        do { try s.validate() } catch let error as PolicyError { throw a.usageError(error.description) }
        return s
    }
}
