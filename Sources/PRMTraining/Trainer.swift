import Foundation
import PRMCore
import PRMModel
import PRMScoring

/// One logging step, written to the JSON log. Non-finite numbers are written as null (JSON has
/// no NaN), so a diverging run still leaves its line in the log.
public struct TrainingLogEntry: Codable, Sendable {
    public var step: Int
    public var epoch: Double
    public var loss: Float
    public var accuracy: Float
    public var learningRate: Float
    public var userLearningRate: Float
    public var gradientNorm: Float
    public var tokensPerSecond: Double
    public var elapsedSeconds: Double
    /// Accuracy on the held-out comparisons (the --dev file, or the --val-fraction split).
    public var devAccuracy: Float?
    /// Updates skipped so far because the loss or the gradient norm was not finite.
    public var skippedUpdates: Int

    enum CodingKeys: String, CodingKey {
        case step, epoch, loss, accuracy, learningRate = "learning_rate", userLearningRate = "user_learning_rate"
        case gradientNorm = "gradient_norm", tokensPerSecond = "tokens_per_second", elapsedSeconds = "elapsed_seconds"
        case devAccuracy = "dev_accuracy", skippedUpdates = "skipped_updates"
    }

    public init(step: Int, epoch: Double, loss: Float, accuracy: Float, learningRate: Float, userLearningRate: Float,
                gradientNorm: Float, tokensPerSecond: Double, elapsedSeconds: Double, devAccuracy: Float? = nil, skippedUpdates: Int = 0) {
        self.step = step
        self.epoch = epoch
        self.loss = loss
        self.accuracy = accuracy
        self.learningRate = learningRate
        self.userLearningRate = userLearningRate
        self.gradientNorm = gradientNorm
        self.tokensPerSecond = tokensPerSecond
        self.elapsedSeconds = elapsedSeconds
        self.devAccuracy = devAccuracy
        self.skippedUpdates = skippedUpdates
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        func number<T: Decodable & FloatingPoint>(_ key: CodingKeys) throws -> T { try c.decodeIfPresent(T.self, forKey: key) ?? .nan }
        step = try c.decode(Int.self, forKey: .step)
        epoch = try number(.epoch)
        loss = try number(.loss)
        accuracy = try number(.accuracy)
        learningRate = try number(.learningRate)
        userLearningRate = try number(.userLearningRate)
        gradientNorm = try number(.gradientNorm)
        tokensPerSecond = try number(.tokensPerSecond)
        elapsedSeconds = try number(.elapsedSeconds)
        devAccuracy = try c.decodeIfPresent(Float.self, forKey: .devAccuracy)
        skippedUpdates = try c.decodeIfPresent(Int.self, forKey: .skippedUpdates) ?? 0
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        func number<T: Encodable & FloatingPoint>(_ value: T, _ key: CodingKeys) throws {
            if value.isFinite { try c.encode(value, forKey: key) } else { try c.encodeNil(forKey: key) }
        }
        try c.encode(step, forKey: .step)
        try number(epoch, .epoch)
        try number(loss, .loss)
        try number(accuracy, .accuracy)
        try number(learningRate, .learningRate)
        try number(userLearningRate, .userLearningRate)
        try number(gradientNorm, .gradientNorm)
        try number(tokensPerSecond, .tokensPerSecond)
        try number(elapsedSeconds, .elapsedSeconds)
        if let devAccuracy { try number(devAccuracy, .devAccuracy) }
        try c.encode(skippedUpdates, forKey: .skippedUpdates)
    }
}

/// The P-RM training loop (nanoGPT's shape): set LR → micro-steps (forward, loss, backward) →
/// clip → AdamW step → zero grads → log; evaluate and checkpoint at epoch ends.
///
/// Loss per comparison (App. F.2): −[α·log σ(r(x,y_c,u_i) − r(x,y_r,u_i)) + (1−α)·log σ(r(x,y_c,u_0) − r(x,y_r,u_0))].
public final class Trainer {
    public let model: RewardModel
    public let users: UserTable
    public let settings: TrainingSettings
    public let optimizer: AdamW
    let update: GuardedUpdate
    let train: [EncodedComparison]
    let dev: [EncodedComparison]
    public private(set) var log: [TrainingLogEntry] = []
    /// Called with every log entry (the CLI writes the live JSONL log and progress from it).
    public var onLog: ((TrainingLogEntry) -> Void)?
    public var progress: ProgressBar?

    public var stepsPerEpoch: Int { EpochBatches(count: train.count, batchSize: settings.batchSize, seed: settings.seed).stepsPerEpoch }
    public var totalSteps: Int { stepsPerEpoch * settings.epochs }
    /// Updates skipped because the loss or the gradient norm was not finite.
    public var skippedUpdates: Int { update.skipped }
    /// The final refit of seen users' vectors, once `refitSeenUsers()` has run.
    public private(set) var refit: SeenUserRefit?

    public init(model: RewardModel, users: UserTable, settings: TrainingSettings,
                train: [EncodedComparison], dev: [EncodedComparison] = []) throws {
        try settings.validate()
        guard !train.isEmpty else { throw TrainingError("no training comparisons") }
        self.model = model
        self.users = users
        self.settings = settings
        self.train = train
        self.dev = dev
        let steps = (train.count + settings.batchSize - 1) / settings.batchSize
        guard settings.epochs <= Int(Int32.max) / steps else {
            throw TrainingError("--epochs \(settings.epochs) × \(steps) steps per epoch overflows the step counter")
        }
        model.backbone.computesParameterGradients = !settings.freezeBackbone
        model.backbone.hiddenDropout.probability = settings.dropout
        let total = (train.count + settings.batchSize - 1) / settings.batchSize * settings.epochs
        let warmup = Int((Float(total) * settings.warmupFraction).rounded())
        func schedule(_ peak: Float) -> LearningRateSchedule {
            LearningRateSchedule(peak: peak, warmupSteps: warmup, totalSteps: total, floorFraction: 0.1)
        }
        optimizer = AdamW(parameters: model.parameters, groups: [
            .backbone: .init(schedule: schedule(settings.learningRate), frozen: settings.freezeBackbone),
            .user: .init(schedule: schedule(settings.userLearningRate), frozen: false),
            .head: .init(schedule: schedule(settings.userLearningRate), frozen: false),
            .mixture: .init(schedule: schedule(settings.userLearningRate * settings.mixtureLearningRateScale), frozen: false),
        ])
        optimizer.weightDecay = settings.weightDecay
        update = GuardedUpdate(optimizer: optimizer, maxNorm: settings.gradientClip, advice: "Lower --lr/--user-lr or check the data")
    }

    /// Runs optimizer steps from the optimizer's current step to `untilStep` (default: the end),
    /// calling `checkpoint` at each epoch end.
    public func run(untilStep: Int? = nil, checkpoint: ((Int) throws -> Void)? = nil) throws {
        let end = min(untilStep ?? totalSteps, totalSteps)
        let start = Date()
        var tokens = 0, window = (loss: Float(0), correct: 0, count: 0)
        var batches = EpochBatches(count: train.count, batchSize: settings.batchSize, seed: settings.seed)
        model.parameters.zeroGrad()
        while optimizer.step < end {
            let step = optimizer.step
            let indices = batches.indices(step: step)
            let result = accumulateGradients(indices.map { train[$0] }, step: step)
            let stepLoss = result.loss
            window.loss += result.loss
            window.correct += result.correct
            window.count += indices.count
            tokens += result.tokens
            let norm = try update.apply(loss: stepLoss / Float(indices.count), label: "step \(step + 1)")
            model.parameters.zeroGrad()
            let done = optimizer.step
            let epochEnds = done % stepsPerEpoch == 0 || done == totalSteps
            if done % settings.logEvery == 0 || epochEnds || done == end {
                let elapsed = Date().timeIntervalSince(start)
                var entry = TrainingLogEntry(
                    step: done, epoch: Double(done) / Double(stepsPerEpoch), loss: window.loss / Float(max(window.count, 1)),
                    accuracy: Float(window.correct) / Float(max(window.count, 1)),
                    learningRate: optimizer.learningRate(.backbone), userLearningRate: optimizer.learningRate(.user),
                    gradientNorm: norm, tokensPerSecond: Double(tokens) / max(elapsed, 1e-9), elapsedSeconds: elapsed,
                    skippedUpdates: skippedUpdates)
                if epochEnds && !dev.isEmpty { entry.devAccuracy = Evaluator(model: model, users: users).accuracy(dev) }
                log.append(entry)
                onLog?(entry)
                window = (0, 0, 0)
            }
            progress?.advance(by: 1, extra: log.last.map { String(format: "loss %.3f acc %.3f %.0f tok/s", $0.loss, $0.accuracy, $0.tokensPerSecond) } ?? "")
            if epochEnds, let checkpoint {
                try requireScoringModel()
                try checkpoint(done)
            }
        }
    }

    /// Whether the final stage applies: asked for, and a model whose users it can refit
    /// (linear head, individual users with trained vectors).
    public var refitsSeenUsers: Bool {
        settings.refitSeenUsers && settings.aggregator == .linearHead && settings.userModel == .individual && model.userModel.rowSize > 0
    }

    /// The stage after the last epoch: every seen user's vector refitted on their training
    /// comparisons with backbone, head and user 0 frozen (`UserAdapter.refitSeenUsers`, prior
    /// scale `settings.refitPriorScale`). The held-out accuracy (--dev or the validation split)
    /// is measured before and after. nil when `refitsSeenUsers` is false.
    @discardableResult
    public func refitSeenUsers() throws -> SeenUserRefit? {
        guard refitsSeenUsers else { return nil }
        var adapt = AdaptSettings()
        adapt.priorScale = settings.refitPriorScale
        let evaluator = dev.isEmpty ? nil : Evaluator(model: model, users: users)
        // The last epoch end measured it already, unless this process only resumed into the refit.
        let measured = log.last.flatMap { $0.step == totalSteps ? $0.devAccuracy : nil }
        let heldOutBefore = measured ?? evaluator?.accuracy(dev)
        var result = try UserAdapter(model: model, users: users, settings: adapt).refitSeenUsers(train)
        try requireScoringModel()
        result.heldOutBefore = heldOutBefore
        result.heldOutAfter = evaluator?.accuracy(dev)
        refit = result
        return result
    }

    /// Refuses to checkpoint a model that cannot score: NaN or infinite weights, or finite ones
    /// (1e30 after a step at a huge rate) whose scores overflow (`ModelProbe`).
    func requireScoringModel() throws {
        do { try ModelProbe.check(model, users: users) } catch let error as ModelError {
            throw TrainingError("not writing a checkpoint: \(error). Lower --lr/--user-lr or check the data")
        }
    }

    /// Forward and backward over one optimizer step's comparisons in micro-batches; the gradients
    /// accumulate to those of the batch's mean loss. Returns the summed loss, the comparisons the
    /// personalized reward ordered right, and the backbone tokens run.
    func accumulateGradients(_ batch: [EncodedComparison], step: Int) -> (loss: Float, correct: Int, tokens: Int) {
        var total: (loss: Float, correct: Int, tokens: Int) = (0, 0, 0)
        for micro in stride(from: 0, to: batch.count, by: settings.microBatch) {
            // Masks are a function of (seed, step, micro-batch): a resumed run draws the same ones.
            model.backbone.hiddenDropout.seed = settings.seed &+ UInt64(step) &* 0x1_0000 &+ UInt64(micro)
            let result = microStep(Array(batch[micro..<min(micro + settings.microBatch, batch.count)]), scale: 1 / Float(batch.count))
            total.loss += result.loss
            total.correct += result.correct
            total.tokens += model.lastForwardTokens
        }
        return total
    }

    /// Forward, loss and backward for a few comparisons; gradients are scaled by `scale` so
    /// micro-steps accumulate to the batch mean.
    func microStep(_ batch: [EncodedComparison], scale: Float) -> (loss: Float, correct: Int) {
        let alpha = settings.alpha
        let useGeneric = alpha < 1
        var inputs: [RewardInput] = []
        for c in batch {
            let own = c.personalized()
            inputs += [own.chosen, own.rejected]
            if useGeneric {
                let generic = c.generic()
                inputs += [generic.chosen, generic.rejected]
            }
        }
        let rewards = model.forward(inputs, training: true)
        // Rewards come as [chosen, rejected] (personalized) then, with α < 1, [chosen, rejected] (generic)
        // per comparison: each loss term is one pair-loss call over the micro-batch.
        let perComparison = useGeneric ? 4 : 2, n = batch.count
        let terms: [(offset: Int, weight: Float)] = useGeneric ? [(0, alpha), (2, 1 - alpha)] : [(0, 1)]
        var loss: Float = 0
        var dRewards = [Float](repeating: 0, count: rewards.count)
        for term in terms where term.weight > 0 {
            let chosen = (0..<n).map { rewards[$0 * perComparison + term.offset] }
            let rejected = (0..<n).map { rewards[$0 * perComparison + term.offset + 1] }
            var losses = [Float](repeating: 0, count: n)
            var dChosen = [Float](repeating: 0, count: n), dRejected = [Float](repeating: 0, count: n)
            PairLoss.forward(losses: &losses, chosen: chosen, rejected: rejected, B: n)
            PairLoss.backward(dchosen: &dChosen, drejected: &dRejected, dlosses: [Float](repeating: term.weight * scale, count: n),
                              chosen: chosen, rejected: rejected, B: n)
            loss += term.weight * losses.reduce(0, +)
            for i in 0..<n {
                dRewards[i * perComparison + term.offset] += dChosen[i]
                dRewards[i * perComparison + term.offset + 1] += dRejected[i]
            }
        }
        let correct = (0..<n).filter { rewards[$0 * perComparison] > rewards[$0 * perComparison + 1] }.count
        model.backward(dRewards: dRewards)
        return (loss, correct)
    }
}
