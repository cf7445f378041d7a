import Foundation
import PRMScoring
import PRMServing

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

/// A running `prm serve` (or `prm proxy`), through protocol v1's `score` op with the client's
/// Lazy Pirate retries. The server is asked for `health` first, so an unreachable endpoint is
/// reported before any work is done.
public final class ServerRewards: RewardSource {
    public let client: ScoringClient
    /// Items per request: below the server's default `max_candidates` (256).
    public let itemsPerRequest: Int
    public var name: String { client.endpoint }

    public init(endpoint: String, timeout: Double, retries: Int, keys: Curve.ClientKeys? = nil, itemsPerRequest: Int = 64) throws {
        client = try ScoringClient(endpoint: endpoint, timeout: timeout, retries: retries, keys: keys)
        self.itemsPerRequest = itemsPerRequest
        do {
            _ = try client.health()
        } catch {
            throw PolicyError("reward server \(endpoint): \(error)")
        }
    }

    public func scores(_ items: [ScoringItem]) throws -> [Float] {
        var scores: [Float] = []
        for start in stride(from: 0, to: items.count, by: itemsPerRequest) {
            let chunk = Array(items[start..<min(start + itemsPerRequest, items.count)])
            do {
                let reply = try client.score(chunk)
                guard reply.scores.count == chunk.count else {
                    throw PolicyError("reward server \(client.endpoint) returned \(reply.scores.count) scores for \(chunk.count) items")
                }
                scores += reply.scores
            } catch let error as ClientError {
                throw PolicyError("reward server \(client.endpoint): \(error)")
            }
        }
        return scores
    }
}
