import Foundation
import PRMModel

/// Every knob of a training run; saved into the checkpoint so a run can be resumed and reproduced.
/// Defaults are the recipe chosen on a validation split (see `Rationale`); `paper` holds the
/// paper's (App. F.2): individual users, soft prompt with T_u 10, alpha 0.5, K 10, effective
/// batch 16, AdamW with cosine schedule and warm-up. Both give the user tables and head their own,
/// much higher learning rate (DESIGN.md, practical note).
public struct TrainingSettings: Codable, Sendable, Equatable {
    /// T_u for the soft-prompt aggregator (the paper's 10); the linear head has exactly 1.
    public static let softPromptUserTokens = 10

    /// The soft prompt's default backbone rate (`Rationale.softPromptLearningRate`).
    public static let softPromptLearningRate: Float = 5e-5

    /// Why the defaults below are what they are; `prm train --help` shows these next to the
    /// options. The measurements are in bench/results/recipe (validation split of train.jsonl).
    public enum Rationale {
        public static let aggregator = "Linear head by default: h once per text, users as vectors a few comparisons can fit (prm adapt); "
            + "the soft prompt personalized less in every run measured: with its own defaults (the reply pooled, lr 5e-5) 82.2% "
            + "against 84.3% on stylepref's validation split of whole prompts, and 71.7% against 81.1% on its test set's seen users "
            + "(bench/results/recipe, bench/results/quality). Its user tokens reach a reply's score only through attention."
        public static let epochs = "2: on the validation split accuracy peaks after 1-2 epochs and falls in a third (bench/results/recipe)."
        public static let learningRate = "2e-5: 86.0% on the validation split after 2 epochs, against 83.4% at 1e-5 for 3 (bench/results/recipe)."
        public static let softPromptLearningRate = "5e-5 for the soft prompt: its user tokens change a reply's score only "
            + "through attention, which the backbone has to learn; on stylepref's validation split of whole prompts it rose from "
            + "76.8% to 82.2% (the linear head: 84.3%; bench/results/recipe)."
        public static let userLearningRate = "Each user vector sees only its own few comparisons, so it needs a far higher rate than the backbone; "
            + "3e-2 was no better on the validation split."
        public static let maxLength = "128 keeps 95% of lengthpref's replies whole (the prompt is trimmed first) at about half the cost of 256; "
            + "not varied in the search."
        public static let replyCounts = "8: a mean over tokens cannot say how long a reply is; with 8 learned log-counts over the reply "
            + "the validation split's seen accuracy rose from 88.1% to 96.4% (16: 95.9%; bench/results/recipe)."
        public static let interactions = "0 by default: on stylepref's validation split of whole prompts 256 gave 85.4% seen "
            + "(conversational users 62.9%) against 84.3% (65.7%) without it: the properties those users weigh are not yet in h "
            + "for a layer on h to combine (bench/results/recipe)."
        public static let pooling = "A soft prompt's user rows add the same vector to both replies' window mean, so they cancel in a "
            + "comparison; pooling the reply alone raised the soft prompt from 69.7% to 76.8% on stylepref's validation split of "
            + "whole prompts, while the linear head gave 84.3% and 83.2% (bench/results/recipe)."
        public static let pooledScale = "auto: the scale that brings the backbone's pooled differences, the mean of "
            + "sum_i |h_chosen,i - h_rejected,i| over the first 32 training comparisons, to MiniLM's (24), where the recipe was "
            + "chosen, when the backbone's is more than twice MiniLM's; 1 otherwise. MiniLM keeps 1 on every built-in set; SmolLM2's last-token state is 16 times "
            + "larger, and at 1 the default recipe did not learn on it (train accuracy 49% after 20 steps; bench/results/decoder_recipe)."
        public static let dropout = "0.1 against memorising a few hundred comparisons per group; not varied in the search."
        public static let refitSeenUsers = "After the last epoch each seen user's vector is refitted on their training comparisons "
            + "with backbone and head frozen (prm adapt's fit): SGD leaves the vectors behind the backbone that moved under them. "
            + "On the validation split it raised seen accuracy 86.0% -> 88.1% for the default recipe (84.5% -> 88.1% for 3 epochs), "
            + "and no prior scale tried lowered it (bench/results/refit)."
        public static let refitPriorScale = "64: the best of 1/4/16/64/256 on the validation split for both runs tried; at 1 (prm adapt's, "
            + "for a handful of comparisons) the prior outweighs a seen user's ~26 comparisons and fits them worse than SGD did."
    }

    public var aggregator: Aggregator = .linearHead
    public var userModel: UserModelKind = .individual
    public var userTokens = 1
    public var clusters = 10
    public var sharedGeneric = true
    public var alpha: Float = 0.5
    public var epochs = 2
    public var learningRate: Float = 2e-5
    public var userLearningRate: Float = 1e-2
    /// Cluster users: the mixture logits' learning rate relative to the user tables'. Each user's
    /// logits see only that user's few comparisons and, while the centres are still alike, a
    /// gradient near zero; at the tables' rate they hardly leave their start and K = 2 collapses.
    public var mixtureLearningRateScale: Float = 10
    public var weightDecay: Float = 0.01
    public var warmupFraction: Float = 0.1
    public var batchSize = 16
    public var microBatch = 8
    public var maxLength = 128
    /// Learned log-counts over the reply added to the pooled state (`RewardModelConfig.replyCounts`).
    public var replyCounts = 8
    /// Width of the shared residual layer on the pooled state (`RewardModelConfig.interactions`); 0: none.
    public var interactions = 0
    /// The fixed factor on the pooled state (`RewardModelConfig.pooledScale`); nil: `--pooled-scale auto`,
    /// which a fresh run resolves from its backbone before training (`PooledScaleChoice.resolve`).
    public var pooledScale: Float?
    /// How many of the reply counts start silent, to learn to count rare tokens (`ReplyCounts`).
    public var silentCounts = 0
    /// Individual users' offsets start at this multiple of a random token embedding (`UserModel.initialize`).
    public var userSpread: Float = 0
    /// The rows the mean pool reads (`RewardModelConfig.pooling`).
    public var pooling: PoolingSpan = .window
    /// The data's text template (`--template`); nil: the one its prompts follow (`TextTemplate.detect`).
    public var template: TextTemplate?
    public var gradientClip: Float = 1.0
    public var freezeBackbone = false
    /// Hidden-state dropout while training.
    public var dropout: Float = 0.1
    public var seed: UInt64 = 42
    public var logEvery = 10
    /// Share of each seen user's comparisons held back from training and evaluated at each epoch
    /// end (`PreferenceDataset.split`, seeded by `seed`): the validation split that recipes are
    /// chosen on, so the test file is read once, at the end.
    public var validationFraction: Double = 0
    /// Whether that share is of each user's comparisons or of the prompts.
    public var validationSplit: ValidationSplit = .comparisons
    /// Final stage: refit every seen user's vector on their training comparisons with everything
    /// else frozen (`UserAdapter.refitSeenUsers`); linear head with individual users only.
    public var refitSeenUsers = true
    /// τ of that refit's prior (`AdaptSettings.priorScale`).
    public var refitPriorScale = 64.0
    /// The reward model the run started from (`--init-from`); nil: a pretrained backbone.
    public var initFrom: InitSource?

    enum CodingKeys: String, CodingKey {
        case aggregator, userModel = "user_model", userTokens = "user_tokens", clusters, sharedGeneric = "shared_generic"
        case alpha, epochs, learningRate = "learning_rate", userLearningRate = "user_learning_rate"
        case mixtureLearningRateScale = "mixture_learning_rate_scale"
        case weightDecay = "weight_decay", warmupFraction = "warmup_fraction", batchSize = "batch_size"
        case microBatch = "micro_batch", maxLength = "max_length", gradientClip = "gradient_clip", replyCounts = "reply_counts", silentCounts = "silent_counts", interactions, pooling, template
        case pooledScale = "pooled_scale"
        case userSpread = "user_spread"
        case freezeBackbone = "freeze_backbone", dropout, seed, logEvery = "log_every"
        case validationFraction = "validation_fraction", validationSplit = "validation_split"
        case refitSeenUsers = "refit_seen_users", refitPriorScale = "refit_prior_scale"
        case initFrom = "init_from"
    }

    public init() {}

    /// The paper's reference settings (App. F.2): soft prompt with T_u 10 on 256-token windows,
    /// backbone lr 3e-5, no dropout, mean pooling alone. `prm bench train` measures speed on these.
    public static var paper: TrainingSettings {
        var s = TrainingSettings()
        s.aggregator = .softPrompt
        s.userTokens = softPromptUserTokens
        s.learningRate = 3e-5
        s.maxLength = 256
        s.dropout = 0
        s.epochs = 3
        (s.replyCounts, s.silentCounts) = (0, 0)
        return s
    }

    /// Missing keys take their defaults, so checkpoints written before a setting existed still load.
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = TrainingSettings()
        func value<T: Decodable>(_ key: CodingKeys, _ fallback: T) throws -> T { try c.decodeIfPresent(T.self, forKey: key) ?? fallback }
        aggregator = try value(.aggregator, d.aggregator)
        userModel = try value(.userModel, d.userModel)
        userTokens = try value(.userTokens, d.userTokens)
        clusters = try value(.clusters, d.clusters)
        sharedGeneric = try value(.sharedGeneric, d.sharedGeneric)
        alpha = try value(.alpha, d.alpha)
        epochs = try value(.epochs, d.epochs)
        learningRate = try value(.learningRate, d.learningRate)
        userLearningRate = try value(.userLearningRate, d.userLearningRate)
        mixtureLearningRateScale = try value(.mixtureLearningRateScale, d.mixtureLearningRateScale)
        weightDecay = try value(.weightDecay, d.weightDecay)
        warmupFraction = try value(.warmupFraction, d.warmupFraction)
        batchSize = try value(.batchSize, d.batchSize)
        microBatch = try value(.microBatch, d.microBatch)
        maxLength = try value(.maxLength, d.maxLength)
        // Runs saved before reply counts existed pooled without them.
        replyCounts = try value(.replyCounts, 0)
        silentCounts = try value(.silentCounts, 0)
        interactions = try value(.interactions, 0)
        // Runs saved before the pooled scale existed pooled at 1; later ones record the value resolved.
        pooledScale = try value(.pooledScale, Float(1))
        userSpread = try value(.userSpread, 0)
        // Runs saved before the pooling span existed pooled the whole window.
        pooling = try value(.pooling, .window)
        template = try c.decodeIfPresent(TextTemplate.self, forKey: .template)
        gradientClip = try value(.gradientClip, d.gradientClip)
        freezeBackbone = try value(.freezeBackbone, d.freezeBackbone)
        dropout = try value(.dropout, d.dropout)
        seed = try value(.seed, d.seed)
        logEvery = try value(.logEvery, d.logEvery)
        validationFraction = try value(.validationFraction, d.validationFraction)
        validationSplit = try value(.validationSplit, d.validationSplit)
        refitSeenUsers = try value(.refitSeenUsers, d.refitSeenUsers)
        refitPriorScale = try value(.refitPriorScale, d.refitPriorScale)
        initFrom = try c.decodeIfPresent(InitSource.self, forKey: .initFrom)
    }

    /// The structure of a checkpoint a run starts from (`--init-from`): its aggregator, user
    /// model, window, reply counts, interactions, pooled scale, pooling and template are the run's.
    public mutating func adoptStructure(of config: RewardModelConfig) {
        aggregator = config.aggregator
        userModel = config.userModel.kind
        userTokens = config.userModel.tokens
        clusters = config.userModel.clusters
        sharedGeneric = config.userModel.sharedGeneric
        maxLength = config.maxLength
        replyCounts = config.replyCounts
        silentCounts = 0  // they shape a fresh start only, and the checkpoint's counts replace it
        interactions = config.interactions
        pooledScale = config.pooledScale
        pooling = config.pooling
        template = config.template
    }

    /// The vanilla reward model: one shared head, no user tokens, no generic term.
    public mutating func makeVanilla() {
        userModel = .uniform
        userTokens = 0
        alpha = 1
        aggregator = .softPrompt
        (replyCounts, silentCounts, interactions) = (0, 0, 0)
    }

    /// Checks ranges and combinations; the message names the option.
    public func validate() throws {
        func fail(_ message: String) throws { throw TrainingError(message) }
        if !(0...1).contains(alpha) { try fail("--alpha must be in [0, 1], got \(alpha)") }
        if epochs < 1 { try fail("--epochs must be at least 1, got \(epochs)") }
        if batchSize < 1 { try fail("--batch-size must be at least 1, got \(batchSize)") }
        if microBatch < 1 { try fail("--micro-batch must be at least 1, got \(microBatch)") }
        for (name, rate) in [("--lr", learningRate), ("--user-lr", userLearningRate), ("--mixture-lr-scale", mixtureLearningRateScale)]
        where !(rate >= 0 && rate.isFinite) {
            try fail("\(name) must be a non-negative number, got \(rate)")
        }
        if !(weightDecay >= 0 && weightDecay.isFinite) { try fail("--weight-decay must be non-negative, got \(weightDecay)") }
        if !(gradientClip >= 0 && gradientClip.isFinite) { try fail("--grad-clip must be non-negative (0: no clipping), got \(gradientClip)") }
        if !(0...1).contains(warmupFraction) { try fail("--warmup must be a fraction of all steps in [0, 1], got \(warmupFraction)") }
        if !(0..<1).contains(dropout) { try fail("--dropout must be in [0, 1), got \(dropout)") }
        if !(0..<1).contains(validationFraction) { try fail("--val-fraction must be in [0, 1), got \(validationFraction)") }
        if !(refitPriorScale > 0 && refitPriorScale.isFinite) { try fail("--refit-prior-scale must be a positive number, got \(refitPriorScale)") }
        if userTokens < 0 { try fail("--user-tokens must be non-negative, got \(userTokens)") }
        if userModel == .cluster && clusters < 1 { try fail("--clusters must be at least 1, got \(clusters)") }
        if aggregator == .linearHead && userTokens != 1 {
            try fail("--aggregator linear-head uses exactly one user token (got --user-tokens \(userTokens))")
        }
        if maxLength < userTokens + 8 { try fail("--max-length \(maxLength) leaves too little room after \(userTokens) user tokens") }
        if replyCounts < 0 { try fail("--reply-counts must be non-negative, got \(replyCounts)") }
        if !(0...replyCounts).contains(silentCounts) {
            try fail("--silent-counts must be between 0 and --reply-counts (\(replyCounts)), got \(silentCounts)")
        }
        if interactions < 0 { try fail("--interactions must be non-negative, got \(interactions)") }
        if let pooledScale, !(pooledScale > 0 && pooledScale.isFinite) {
            try fail("--pooled-scale must be a positive number or auto, got \(pooledScale)")
        }
        if !(userSpread >= 0 && userSpread.isFinite) { try fail("--user-spread must be a non-negative number, got \(userSpread)") }
        if logEvery < 1 { try fail("--log-every must be at least 1, got \(logEvery)") }
    }

    /// How the parts training creates start (`RewardModel.initializeUserModelAndHead`).
    public var freshInitialization: FreshInitialization {
        FreshInitialization(silentCounts: silentCounts, userSpread: userSpread)
    }

    /// `template`: the training data's (`PreferenceDataset.template`).
    public func rewardModelConfig(users: Int, template: TextTemplate = .hh) -> RewardModelConfig {
        RewardModelConfig(aggregator: aggregator,
                          userModel: UserModelConfig(kind: userModel, tokens: userTokens, users: users,
                                                     clusters: clusters, sharedGeneric: sharedGeneric),
                          maxLength: maxLength, replyCounts: replyCounts, interactions: interactions,
                          pooling: pooling, template: template, pooledScale: pooledScale ?? 1)
    }
}
