import Foundation
import PRMModel
import PRMScoring

/// `prm train --pooled-scale auto` (the default): the fixed factor on the backbone's pooled state
/// (`RewardModelConfig.pooledScale`) that gives a backbone the head's steps the recipe was chosen for.
///
/// Why: AdamW moves every coordinate of a user vector by about the user rate a step, whatever the
/// gradient's size, so one step changes a comparison's margin ⟨e, h_c − h_r⟩ by up to
/// rate · Σ_i |h_c,i − h_r,i|. The recipe's rates were chosen on MiniLM's window mean. SmolLM2's
/// last-token state gives about 18 times MiniLM's sum: its margins start at ±5 and a step at the
/// default rate overshoots them, so at scale 1 it did not learn (bench/results/decoder_recipe).
/// Scaling the state by `recipeSpread / spread` puts a new backbone's steps where MiniLM's are.
public struct PooledScaleChoice: Sendable, Equatable {
    /// How many comparisons are measured: the first of the training split.
    public static let sampleSize = 32
    /// MiniLM's `spread` at the recipe's start, as this measurement gives it on the built-in data
    /// (`prm train --data data/X/train.jsonl`'s log line: lengthpref 23.9, stylepref 23.6, multipref 22.9).
    public static let recipeSpread = 24.0
    /// Up to this factor above `recipeSpread` the scale stays 1, the value the recipe's accuracies were
    /// measured at: MiniLM on another data set must not get a scale of its own. A state smaller than
    /// MiniLM's keeps 1 too: what was measured to fail is a state too large (overshooting steps),
    /// and enlarging a small one was never tried.
    public static let tolerance = 2.0

    /// mean over the sampled comparisons of Σ_i |h_chosen,i − h_rejected,i|, the pooled state at scale 1.
    public let spread: Double
    /// How many comparisons `spread` is the mean over.
    public let comparisons: Int
    public let scale: Float

    public init(spread: Double, comparisons: Int = sampleSize) {
        (self.spread, self.comparisons) = (spread, comparisons)
        guard spread > Self.recipeSpread * Self.tolerance, spread.isFinite else {
            scale = 1
            return
        }
        scale = Float(Self.twoSignificantDigits(Self.recipeSpread / spread))
    }

    /// Measures `model`'s pooled state on the generic user's view of the first `sampleSize` of
    /// `comparisons`. The model must pool at scale 1 with nothing added (no reply counts, no
    /// interactions): the scale multiplies the backbone's state alone.
    public static func measure(_ model: RewardModel, users: UserTable, comparisons: [Comparison]) -> PooledScaleChoice {
        precondition(model.config.pooledScale == 1 && model.config.replyCounts == 0 && model.config.interactions == 0,
                     "the pooled scale is measured on the backbone's state alone")
        let preparer = InputPreparer(model: model, users: users)
        let sample = EncodedComparison.encode(Array(comparisons.prefix(sampleSize)), with: preparer)
        let differences = UserAdapter.differences(UserAdapter.pooledStates(sample, model: model, preparer: preparer))
        let sums = differences.map { $0.reduce(0) { $0 + abs($1) } }
        return PooledScaleChoice(spread: sums.isEmpty ? 0 : sums.reduce(0, +) / Double(sums.count), comparisons: sums.count)
    }

    /// Sets `settings.pooledScale` when it is auto (nil), measured on a probe that `build` makes in
    /// the run's structure without reply counts or interactions; the probe is gone before the run's
    /// model is built. Returns the choice, nil when the scale was given.
    public static func resolve(_ settings: inout TrainingSettings, users: UserTable, comparisons: [Comparison], template: TextTemplate,
                               build: (RewardModelConfig) throws -> RewardModel) throws -> PooledScaleChoice? {
        guard settings.pooledScale == nil else { return nil }
        var probe = settings
        (probe.pooledScale, probe.replyCounts, probe.silentCounts, probe.interactions) = (1, 0, 0, 0)
        let choice = measure(try build(probe.rewardModelConfig(users: users.count, template: template)), users: users, comparisons: comparisons)
        settings.pooledScale = choice.scale
        return choice
    }

    public var description: String {
        String(format: "pooled scale auto: %.3g (the backbone's pooled differences sum to %.1f over %d comparisons; the recipe's, "
               + "MiniLM's, to %.1f; up to %g times that the scale stays 1)", scale, spread, comparisons, Self.recipeSpread, Self.tolerance)
    }

    /// x rounded to two significant digits: the scale is a measured ratio, not a tuned value.
    static func twoSignificantDigits(_ x: Double) -> Double {
        let unit = pow(10, floor(log10(x)) - 1)
        return (x / unit).rounded() * unit
    }
}
