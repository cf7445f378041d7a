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
/// Users are drawn in turn so that every user has replies in every iteration. Under `mpirun`
/// the ranks share each iteration's replies (`step`) and take the same updates.
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
    /// The data-parallel ranks sharing every iteration's replies (`Ranks.single` alone).
    let ranks: Ranks

    let objective: PPOObjective
    let generator: Generator
    /// Prompts per user id (nil key: the generic user), users in a fixed order.
    let promptsByUser: [(user: String?, prompts: [PPOPrompt])]
    private let scratch = GrowableBuffer()

    public init(policy: Policy, users: UserTable, reference: Policy, referenceUsers: UserTable, prompts: [PPOPrompt],
                reward: any RewardSource, settings: PPOSettings, ranks: Ranks = .single) throws {
        try settings.validate()
        guard settings.rollouts >= ranks.size else {
            throw PolicyError("--rollouts \(settings.rollouts) leaves some of the \(ranks.size) ranks without a reply to sample")
        }
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
        self.ranks = ranks
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

    /// One iteration: rollout, scoring, update. Across data-parallel `ranks` each rank samples,
    /// measures and scores its contiguous share of the iteration's draws, each reply with the
    /// seed the single process gives it, so the ranks' replies are the single process's. What
    /// the whole iteration needs is summed over the ranks: the replies' scores and lengths (for
    /// the score whitening and the log), the advantages' mean and variance, KL and entropy; each
    /// minibatch's gradient is the sum of every rank's over the minibatch's replies it holds.
    func step(startedAt start: Double) throws -> PPOLogEntry {
        let index = iteration
        // 1. Rollout of this rank's share of the draws.
        var clock = MonotonicClock.now
        let drawn = draws(iteration: index)
        let shard = ranks.shard(Array(drawn.indices))
        let mine = shard.indices.map { drawn[$0] }
        let promptIDs = mine.map { policy.promptIDs($0.prompt, maxNewTokens: settings.maxNewTokens) }
        let userIndices = mine.map { $0.userID.map(users.index) ?? 0 }
        let requests = zip(mine.indices, shard.indices).map { j, k in
            GenerationRequest(user: userIndices[j], prompt: promptIDs[j], samples: 1,
                              seed: settings.seed &+ UInt64(index) &* 0x1_0000_0000 &+ UInt64(k) &* 0x1_0000)
        }
        let replies = generator.generate(requests, settings: SamplingSettings(temperature: 1, maxNewTokens: settings.maxNewTokens)).map { $0[0] }
        let sequences = mine.indices.map { j in
            PolicySequence(user: userIndices[j], tokens: promptIDs[j] + replies[j],
                           scored: Array(promptIDs[j].count..<(promptIDs[j].count + replies[j].count)))
        }
        let measured = PPOObjective.measure(policy, sequences, scratch: scratch)
        let referenceSequences = zip(mine, sequences).map { prompt, sequence in
            PolicySequence(user: prompt.userID.map(referenceUsers.index) ?? 0, tokens: sequence.tokens, scored: sequence.scored)
        }
        let referenceLogp = PPOObjective.measure(reference, referenceSequences, scratch: scratch).logp
        let rolloutSeconds = MonotonicClock.now - clock

        // 2. Scoring of this rank's replies; every rank then holds every reply's score and lengths.
        clock = MonotonicClock.now
        let texts = replies.map(policy.format.decodeReply)
        let items = zip(mine, texts).map { ScoringItem(userID: $0.userID, prompt: $0.prompt, response: $1) }
        let scores = try reward.scores(items)
        guard scores.count == items.count, scores.allSatisfy(\.isFinite) else {
            throw PolicyError("reward source \(reward.name) returned \(scores.count) scores (\(scores.filter { !$0.isFinite }.count) not finite) for \(items.count) replies")
        }
        let facts = try ReplyFacts.gather(scores: scores, replies: replies, texts: texts, sequences: sequences, end: policy.format.end,
                                          shard: shard, ranks: ranks)
        let scoringSeconds = MonotonicClock.now - clock

        // 3. Rewards, advantages, returns.
        clock = MonotonicClock.now
        var whitened = facts.map(\.score)
        if settings.whitenRewards { Whitening.whiten(&whitened) }
        let beta = kl.coefficient
        var klSum = 0.0
        var perReply: [(advantages: [Float], returns: [Float])] = []
        for j in sequences.indices {
            let logp = measured.logp[j], ref = referenceLogp[j]
            var rewards = zip(logp, ref).map { -beta * ($0 - $1) }
            klSum += zip(logp, ref).reduce(0.0) { $0 + Double($1.0 - $1.1) }
            if !rewards.isEmpty { rewards[rewards.count - 1] += whitened[shard.offset + j] }
            perReply.append(GAE.compute(rewards: rewards, values: measured.values[j], gamma: settings.gamma, lambda: settings.lambda))
        }
        var advantages = perReply.flatMap(\.advantages)
        try Whitening.whiten(&advantages, over: ranks)
        var samples: [PPOSample] = []
        var offset = 0
        for j in sequences.indices {
            let n = sequences[j].scored.count
            samples.append(PPOSample(sequence: sequences[j], oldLogp: measured.logp[j], oldValues: measured.values[j],
                                     advantages: Array(advantages[offset..<offset + n]), returns: perReply[j].returns))
            offset += n
        }
        var measures = [klSum, measured.entropy * Double(offset), Double(offset)]
        try ranks.sum(&measures)

        // 4. Update: epochs of shuffled minibatches.
        let totals = try updates(samples, shard: shard, tokens: facts.map(\.tokens), iteration: index)
        let meanKL = measures[0] / Double(drawn.count)
        kl.update(kl: Float(meanKL), replies: drawn.count)
        iteration += 1
        let updateSeconds = MonotonicClock.now - clock

        var groups: [String: PPOLogEntry.Group] = [:]
        for (k, prompt) in drawn.enumerated() {
            var g = groups[group(of: prompt.userID)] ?? PPOLogEntry.Group(replies: 0, reward: 0, lengthTokens: 0, lengthWords: 0)
            g.replies += 1
            g.reward += Double(facts[k].score)
            g.lengthTokens += facts[k].lengthTokens
            g.lengthWords += facts[k].lengthWords
            groups[group(of: prompt.userID)] = g
        }
        for (name, g) in groups {
            let n = Double(g.replies)
            groups[name] = PPOLogEntry.Group(replies: g.replies, reward: g.reward / n, lengthTokens: g.lengthTokens / n, lengthWords: g.lengthWords / n)
        }
        let n = Double(drawn.count), tokens = Double(max(totals.tokens, 1))
        return PPOLogEntry(iteration: iteration, reward: facts.reduce(0.0) { $0 + Double($1.score) } / n,
                           lengthTokens: facts.reduce(0.0) { $0 + $1.lengthTokens } / n,
                           lengthWords: facts.reduce(0.0) { $0 + $1.lengthWords } / n, kl: meanKL, klCoefficient: beta,
                           entropy: measures[1] / max(measures[2], 1),
                           policyLoss: totals.policy / tokens, valueLoss: totals.value / tokens, clipFraction: totals.clipped / tokens,
                           gradientNorm: totals.norm / Float(max(totals.steps, 1)), groups: groups, rolloutSeconds: rolloutSeconds,
                           scoringSeconds: scoringSeconds, updateSeconds: updateSeconds, elapsedSeconds: MonotonicClock.now - start)
    }

    /// `epochs` passes of shuffled minibatches over the iteration's replies (`tokens`: each
    /// reply's scored tokens, all ranks'); this rank holds `samples`, the replies of `shard`.
    /// Every rank takes every minibatch (the same order from the same seed): it computes the
    /// gradient over the minibatch's replies it holds, divided by the whole minibatch's tokens,
    /// and the ranks sum the gradients and the loss sums before the one update they all apply.
    func updates(_ samples: [PPOSample], shard: BatchShard, tokens: [Int], iteration index: Int) throws
        -> (policy: Double, value: Double, clipped: Double, tokens: Int, norm: Float, steps: Int) {
        var totals = (policy: 0.0, value: 0.0, clipped: 0.0, tokens: 0, norm: Float(0), steps: 0)
        let held = shard.offset..<(shard.offset + samples.count)
        var rng = RandomSource(seed: settings.seed &+ 0xA076_1D64 &* UInt64(index + 1))
        policy.parameters.zeroGrad()
        for epoch in 0..<settings.epochs {
            let order = Array(tokens.indices).shuffled(using: &rng)
            for first in stride(from: 0, to: order.count, by: settings.minibatch) {
                let batch = order[first..<min(first + settings.minibatch, order.count)]
                let batchTokens = batch.reduce(0) { $0 + tokens[$1] }
                guard batchTokens > 0 else { continue }
                let mine = batch.filter(held.contains).map { samples[$0 - shard.offset] }
                let statistics = mine.isEmpty ? PPOLossStatistics() : objective.evaluate(mine, backward: true, meanOver: batchTokens)
                let t = Double(statistics.tokens)
                var sums = [statistics.policyLoss * t, statistics.valueLoss * t, statistics.clipFraction * t]
                try ranks.sum(&sums)
                try ranks.sum(policy.parameters.grads)
                let n = Double(batchTokens)
                let loss = Float(sums[0] / n + Double(settings.valueCoefficient) * sums[1] / n)
                totals.norm += try update.apply(loss: loss, label: "iteration \(index + 1), epoch \(epoch + 1), minibatch \(first / settings.minibatch + 1)")
                policy.parameters.zeroGrad()
                totals.policy += sums[0]
                totals.value += sums[1]
                totals.clipped += sums[2]
                totals.tokens += batchTokens
                totals.steps += 1
            }
        }
        return totals
    }
}
