import Foundation
import PRMCore
import PRMModel
import PRMScoring

/// PPO against a reward model (Ouyang et al. 2022; the per-token KL penalty of Ziegler et al.
/// 2019). Each iteration, in order:
///
/// 1. rollout: sample one reply per drawn (user, prompt) from the policy (temperature 1: the
///    ratios need the probabilities replies were drawn with); measure log π, V and log π_ref;
/// 2. scoring: one score per reply from the reward source, whitened across the iteration;
/// 3. rewards r_t = −β (log π − log π_ref)_t, plus the score on the last token; GAE advantages
///    (whitened) and returns;
/// 4. update: `epochs` passes of shuffled minibatches of the clipped policy and value objective.
///
/// Users are drawn in turn so that every user has replies in every iteration.
public final class PPOTrainer {
    public let policy: Policy
    public let reference: Policy
    /// The policy's users; the reference reads each id through its own table.
    public let users: UserTable
    let referenceUsers: UserTable
    public let settings: PPOSettings
    public let reward: any RewardSource
    public private(set) var kl: KLController
    public let optimizer: AdamW
    let update: GuardedUpdate
    /// Iterations done; the next one's draws, seeds and minibatch order follow from it.
    public private(set) var iteration = 0
    /// Order, log, progress and checkpoints, as every trainer runs them; a unit is an iteration.
    let loop = TrainingLoop<PPOLogEntry>()
    public var log: [PPOLogEntry] { loop.log }
    public var onLog: ((PPOLogEntry) -> Void)? { get { loop.onLog } set { loop.onLog = newValue } }
    public var progress: ProgressBar? { get { loop.progress } set { loop.progress = newValue } }
    /// user id → group label for the log (default: the user id; the generic user is "generic").
    public var groups: [String: String] = [:]

    let objective: PPOObjective
    let generator: Generator
    /// Prompts per user id (nil key: the generic user), users in a fixed order.
    let promptsByUser: [(user: String?, prompts: [PPOPrompt])]
    private let scratch = GrowableBuffer()

    public init(policy: Policy, users: UserTable, reference: Policy, referenceUsers: UserTable, prompts: [PPOPrompt],
                reward: any RewardSource, settings: PPOSettings) throws {
        try settings.validate()
        guard !prompts.isEmpty else { throw PolicyError("no prompts to sample") }
        guard reference.vocabularySize == policy.vocabularySize, reference.format.end == policy.format.end else {
            throw PolicyError("the reference policy's vocabulary differs from the policy's")
        }
        guard settings.maxNewTokens < policy.maxPositions - policy.userRows - 1 else {
            throw PolicyError("--max-new-tokens \(settings.maxNewTokens) leaves no room for a prompt in the policy's \(policy.maxPositions) positions")
        }
        self.policy = policy
        self.users = users
        self.reference = reference
        self.referenceUsers = referenceUsers
        self.reward = reward
        self.settings = settings
        policy.backbone.hiddenDropout.probability = 0
        reference.backbone.hiddenDropout.probability = 0
        kl = KLController(coefficient: settings.klCoefficient, target: settings.targetKL, horizon: settings.klHorizon)
        objective = PPOObjective(policy: policy, clipRange: settings.clipRange, valueClipRange: settings.valueClipRange,
                                 valueCoefficient: settings.valueCoefficient)
        generator = Generator(policy: policy)
        // Constant rates: PPO's steps are few and each iteration brings new data.
        let fast = AdamW.GroupSettings(schedule: .constant(settings.userLearningRate))
        optimizer = AdamW(parameters: policy.parameters, groups: [.backbone: AdamW.GroupSettings(schedule: .constant(settings.learningRate)),
                                                                  .user: fast, .head: fast, .mixture: fast])
        optimizer.weightDecay = 0
        update = GuardedUpdate(optimizer: optimizer, maxNorm: settings.gradientClip, advice: "Lower --lr/--user-lr or check the reward model")
        var byUser: [String?: [PPOPrompt]] = [:]
        for prompt in prompts { byUser[prompt.userID, default: []].append(prompt) }
        promptsByUser = byUser.sorted { ($0.key ?? "") < ($1.key ?? "") }.map { ($0.key, $0.value) }
    }

    /// Updates skipped because the loss or the gradient norm was not finite.
    public var skippedUpdates: Int { update.skipped }

    /// The prompts' identity for `--resume`: each (user, prompt) pair in the trainer's order.
    var fingerprint: DataFingerprint {
        DataFingerprint(promptsByUser.flatMap { group in group.prompts.map { "\(group.user ?? "")\u{0}\($0.prompt)" } },
                        label: { $0 }, parts: { _ in [] })
    }

    /// Continues after `iteration` with the controller's β as it was then (`PPOState.restore`,
    /// after the optimizer's own state).
    func resume(iteration: Int, kl: KLController) {
        self.iteration = iteration
        self.kl = kl
    }

    func group(of user: String?) -> String { user.map { groups[$0] ?? $0 } ?? "generic" }

    /// The iteration's (user, prompt) draws: users in turn from a per-iteration rotation, a random
    /// prompt of each; a fixed function of seed and iteration.
    func draws(iteration: Int) -> [PPOPrompt] {
        var rng = RandomSource(seed: settings.seed &+ 0x5851_F42D &* UInt64(iteration + 1))
        let offset = Int(rng.next() % UInt64(promptsByUser.count))
        return (0..<settings.rollouts).map { k in
            let prompts = promptsByUser[(offset + k) % promptsByUser.count].prompts
            return prompts[Int(rng.next() % UInt64(prompts.count))]
        }
    }

    /// Runs iterations until `iterations` (default: the settings') in `TrainingLoop`, calling
    /// `checkpoint` after every `checkpointEvery`-th and the last.
    public func run(until end: Int? = nil, checkpoint: ((Int) throws -> Void)? = nil) throws {
        let last = min(end ?? settings.iterations, settings.iterations)
        let checkpoints = StepCadence(every: settings.checkpointEvery, last: last)
        let start = MonotonicClock.now
        try loop.run(done: { iteration }, end: last, unit: { try step(startedAt: start) }, summary: Self.summary,
                     checkpointDue: checkpoints.isDue, checkpoint: checkpoint)
    }

    static func summary(_ entry: PPOLogEntry) -> String {
        String(format: "reward %.3f kl %.3f len %.1f", entry.reward, entry.kl, entry.lengthTokens)
    }

    /// One iteration: rollout, scoring, update.
    func step(startedAt start: Double) throws -> PPOLogEntry {
        let index = iteration
        // 1. Rollout.
        var clock = MonotonicClock.now
        let drawn = draws(iteration: index)
        let promptIDs = drawn.map { policy.promptIDs($0.prompt, maxNewTokens: settings.maxNewTokens) }
        let userIndices = drawn.map { $0.userID.map(users.index) ?? 0 }
        let requests = drawn.indices.map { k in
            GenerationRequest(user: userIndices[k], prompt: promptIDs[k], samples: 1,
                              seed: settings.seed &+ UInt64(index) &* 0x1_0000_0000 &+ UInt64(k) &* 0x1_0000)
        }
        let replies = generator.generate(requests, settings: SamplingSettings(temperature: 1, maxNewTokens: settings.maxNewTokens)).map { $0[0] }
        let sequences = drawn.indices.map { k in
            PolicySequence(user: userIndices[k], tokens: promptIDs[k] + replies[k],
                           scored: Array(promptIDs[k].count..<(promptIDs[k].count + replies[k].count)))
        }
        let measured = PPOObjective.measure(policy, sequences, scratch: scratch)
        let referenceSequences = zip(drawn, sequences).map { prompt, sequence in
            PolicySequence(user: prompt.userID.map(referenceUsers.index) ?? 0, tokens: sequence.tokens, scored: sequence.scored)
        }
        let referenceLogp = PPOObjective.measure(reference, referenceSequences, scratch: scratch).logp
        let rolloutSeconds = MonotonicClock.now - clock

        // 2. Scoring.
        clock = MonotonicClock.now
        let texts = replies.map(policy.format.decodeReply)
        let items = zip(drawn, texts).map { ScoringItem(userID: $0.userID, prompt: $0.prompt, response: $1) }
        let scores = try reward.scores(items)
        guard scores.count == items.count, scores.allSatisfy(\.isFinite) else {
            throw PolicyError("reward source \(reward.name) returned \(scores.count) scores (\(scores.filter { !$0.isFinite }.count) not finite) for \(items.count) replies")
        }
        let scoringSeconds = MonotonicClock.now - clock

        // 3. Rewards, advantages, returns.
        clock = MonotonicClock.now
        var whitened = scores
        if settings.whitenRewards { Whitening.whiten(&whitened) }
        let beta = kl.coefficient
        var klSum = 0.0
        var perReply: [(advantages: [Float], returns: [Float])] = []
        for k in sequences.indices {
            let logp = measured.logp[k], ref = referenceLogp[k]
            var rewards = zip(logp, ref).map { -beta * ($0 - $1) }
            klSum += zip(logp, ref).reduce(0.0) { $0 + Double($1.0 - $1.1) }
            if !rewards.isEmpty { rewards[rewards.count - 1] += whitened[k] }
            perReply.append(GAE.compute(rewards: rewards, values: measured.values[k], gamma: settings.gamma, lambda: settings.lambda))
        }
        var advantages = perReply.flatMap(\.advantages)
        Whitening.whiten(&advantages)
        var samples: [PPOSample] = []
        var offset = 0
        for k in sequences.indices {
            let n = sequences[k].scored.count
            samples.append(PPOSample(sequence: sequences[k], oldLogp: measured.logp[k], oldValues: measured.values[k],
                                     advantages: Array(advantages[offset..<offset + n]), returns: perReply[k].returns))
            offset += n
        }

        // 4. Update: epochs of shuffled minibatches.
        var totals = (policy: 0.0, value: 0.0, clipped: 0.0, tokens: 0, norm: Float(0), steps: 0)
        var rng = RandomSource(seed: settings.seed &+ 0xA076_1D64 &* UInt64(index + 1))
        policy.parameters.zeroGrad()
        for epoch in 0..<settings.epochs {
            let order = Array(samples.indices).shuffled(using: &rng)
            for first in stride(from: 0, to: order.count, by: settings.minibatch) {
                let batch = order[first..<min(first + settings.minibatch, order.count)].map { samples[$0] }
                let statistics = objective.evaluate(batch, backward: true)
                guard statistics.tokens > 0 else { continue }
                let loss = Float(statistics.policyLoss + Double(settings.valueCoefficient) * statistics.valueLoss)
                totals.norm += try update.apply(loss: loss, label: "iteration \(index + 1), epoch \(epoch + 1), minibatch \(first / settings.minibatch + 1)")
                policy.parameters.zeroGrad()
                let t = Double(statistics.tokens)
                totals.policy += statistics.policyLoss * t
                totals.value += statistics.valueLoss * t
                totals.clipped += statistics.clipFraction * t
                totals.tokens += statistics.tokens
                totals.steps += 1
            }
        }
        let meanKL = klSum / Double(sequences.count)
        kl.update(kl: Float(meanKL), replies: sequences.count)
        iteration += 1
        let updateSeconds = MonotonicClock.now - clock

        let lengths = replies.map { Double($0.prefix { $0 != policy.format.end }.count) }
        let words = texts.map { Double($0.split(whereSeparator: \.isWhitespace).count) }
        var groups: [String: PPOLogEntry.Group] = [:]
        for (k, prompt) in drawn.enumerated() {
            var g = groups[group(of: prompt.userID)] ?? PPOLogEntry.Group(replies: 0, reward: 0, lengthTokens: 0, lengthWords: 0)
            g.replies += 1
            g.reward += Double(scores[k])
            g.lengthTokens += lengths[k]
            g.lengthWords += words[k]
            groups[group(of: prompt.userID)] = g
        }
        for (name, g) in groups {
            let n = Double(g.replies)
            groups[name] = PPOLogEntry.Group(replies: g.replies, reward: g.reward / n, lengthTokens: g.lengthTokens / n, lengthWords: g.lengthWords / n)
        }
        let n = Double(sequences.count), tokens = Double(max(totals.tokens, 1))
        return PPOLogEntry(iteration: iteration, reward: scores.reduce(0.0) { $0 + Double($1) } / n, lengthTokens: lengths.reduce(0, +) / n,
                           lengthWords: words.reduce(0, +) / n, kl: meanKL, klCoefficient: beta, entropy: measured.entropy,
                           policyLoss: totals.policy / tokens, valueLoss: totals.value / tokens, clipFraction: totals.clipped / tokens,
                           gradientNorm: totals.norm / Float(max(totals.steps, 1)), groups: groups, rolloutSeconds: rolloutSeconds,
                           scoringSeconds: scoringSeconds, updateSeconds: updateSeconds, elapsedSeconds: MonotonicClock.now - start)
    }
}
