import Foundation
import PRMPolicy
import PRMScoring
import PRMServing

/// A running `prm serve` (or `prm proxy`), through protocol v1's `score` op with the client's
/// Lazy Pirate retries. The client makes first contact at once, so an unreachable endpoint is
/// reported within the contact timeout, before any work is done.
final class ServerRewards: RewardSource {
    let client: ScoringClient
    /// Items per request: below the server's default `max_candidates` (256).
    let itemsPerRequest: Int
    var name: String { client.endpoint }

    init(endpoint: String, timeout: Double, retries: Int, contactTimeout: Double = ScoringClient.defaultContactTimeout,
         keys: Curve.ClientKeys? = nil, itemsPerRequest: Int = 64) throws {
        client = try ScoringClient(endpoint: endpoint, timeout: timeout, retries: retries, contactTimeout: contactTimeout, keys: keys)
        self.itemsPerRequest = itemsPerRequest
        do {
            try client.contact()
        } catch {
            throw PolicyError("reward server \(endpoint)", cause: error)
        }
    }

    func scores(_ items: [ScoringItem]) throws -> [Float] {
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
                throw PolicyError("reward server \(client.endpoint)", cause: error)
            }
        }
        return scores
    }
}
