import Foundation
import PRMScoring

/// Where PPO's scores come from: one score per (user id, prompt, reply), given as the data and
/// the reward model have them (text, not policy tokens).
public protocol RewardSource {
    func scores(_ items: [ScoringItem]) throws -> [Float]
    /// What the log says the rewards are.
    var name: String { get }
}

/// The reward model in process, through the one scoring path (`Scorer`).
public final class ScorerRewards: RewardSource {
    public let scorer: Scorer
    public let name: String

    public init(checkpoint: URL) throws {
        scorer = try Scorer(checkpoint: checkpoint)
        name = checkpoint.path
    }

    public func scores(_ items: [ScoringItem]) throws -> [Float] { scorer.score(items).map(\.score) }
}
