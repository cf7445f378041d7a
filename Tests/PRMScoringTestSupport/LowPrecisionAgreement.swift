import Foundation
import PRMCore
import PRMModel
import PRMScoring

/// How a reward model's scoring at bf16 or int8 agrees with the same model's at fp32 on the same
/// items, through the `Scorer`: the worst cosine of a pooled state, the largest score difference
/// against the spread of fp32's scores, and the share of pairs of one prompt's replies (for one
/// user and user text) that it orders as fp32 does. Also how far its shared-prompt scores are
/// from the same items scored one at a time at its own precision: at fp32 the two paths differ by
/// float rounding only (1e-5), but rounding activations to bf16 or int8 is a step function, so a
/// last-bit difference (the prompt's attention computed in a call of its own) can round an
/// activation to the neighbouring step, and through many layers the two paths differ by the
/// order of the precision's own error, not by rounding. The tests of the Llama family's low
/// precision (tiny fixtures, a trained SmolLM2) assert bounds on these numbers.
public struct LowPrecisionAgreement: CustomStringConvertible {
    public private(set) var worstCosine = 1.0
    public private(set) var maxScoreDifference = 0.0
    public private(set) var spread = 0.0
    public private(set) var orderedPairs = 0, pairs = 0
    /// max |shared − one at a time| of the low-precision scores, over fp32's spread.
    public private(set) var sharingDifference = 0.0

    public init(low: Scorer, reference: Scorer, items: [ScoringItem]) {
        let C = reference.model.backbone.hiddenSize
        let (a, b) = (Self.pooled(low, items), Self.pooled(reference, items))
        for k in items.indices {
            var (dot, na, nb) = (0.0, 0.0, 0.0)
            for c in (k * C)..<((k + 1) * C) {
                let (x, y) = (Double(a[c]), Double(b[c]))
                dot += x * y; na += x * x; nb += y * y
            }
            worstCosine = min(worstCosine, dot / (na * nb).squareRoot())
        }
        let scores = low.score(items).map { Double($0.score) }, expected = reference.score(items).map { Double($0.score) }
        spread = expected.max()! - expected.min()!
        maxScoreDifference = zip(scores, expected).map { abs($0 - $1) }.max()!
        for i in items.indices {
            for j in items.indices where j > i && items[i].prompt == items[j].prompt && items[i].userID == items[j].userID
                && items[i].userInfo == items[j].userInfo && expected[i] != expected[j] {
                pairs += 1
                if (scores[i] - scores[j]) * (expected[i] - expected[j]) > 0 { orderedPairs += 1 }
            }
        }
        let alone = items.map { Double(low.score([$0])[0].score) }
        sharingDifference = zip(scores, alone).map { abs($0 - $1) }.max()! / spread
    }

    /// Pooled states (count, C) of the items through the scorer's model.
    static func pooled(_ scorer: Scorer, _ items: [ScoringItem]) -> [Float] {
        let sequences = scorer.preparer.prepare(items).map(\.sequence)
        var h = [Float](repeating: 0, count: sequences.count * scorer.model.backbone.hiddenSize)
        h.withUnsafeMutableBufferPointer { scorer.model.pooledStates(sequences, tokensPerBatch: scorer.tokensPerBatch, into: $0.baseAddress!) }
        return h
    }

    public var relativeScoreError: Double { maxScoreDifference / spread }
    public var orderedShare: Double { Double(orderedPairs) / Double(max(pairs, 1)) }

    public var description: String {
        String(format: "worst pooled cosine %.6f, max |Δscore| %.2e (%.4f of fp32's spread %.3g), pairs ordered as fp32 %d/%d, "
               + "shared vs one at a time %.1e of the spread", worstCosine, maxScoreDifference, relativeScoreError, spread,
               orderedPairs, pairs, sharingDifference)
    }

    /// What falls outside the bounds (empty when nothing does): a cosine below `cosine`, a score
    /// error above `scoreError` of the spread, a share of pairs ordered as fp32 below `ordered`,
    /// shared-prompt scores further than `sharing` of the spread from one-at-a-time scores, or a
    /// run identical to fp32 (the precision not used at all).
    public func failures(cosine: Double, scoreError: Double, ordered: Double, sharing: Double) -> [String] {
        var failures: [String] = []
        if pairs == 0 { failures.append("no pairs to order") }
        if maxScoreDifference == 0 { failures.append("scores identical to fp32's: is the precision used at all?") }
        if worstCosine < cosine { failures.append("worst pooled cosine \(worstCosine) < \(cosine)") }
        if relativeScoreError > scoreError { failures.append("max |Δscore| \(relativeScoreError) of the spread > \(scoreError)") }
        if orderedShare < ordered { failures.append("pairs ordered as fp32 \(orderedShare) < \(ordered)") }
        if sharingDifference > sharing { failures.append("shared prompts vs one at a time \(sharingDifference) of the spread > \(sharing)") }
        return failures
    }
}
