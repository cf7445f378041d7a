import Foundation
import PRMCore

/// Synthetic personalized preferences in the shape of the paper's simulation (Sec. 5.1): each
/// user is majority (prefers the longer reply) or minority (prefers the shorter one). Used by
/// tests and demos that need data whose right answer is known.
public enum SyntheticPreferences {
    public struct Dataset: Sendable {
        public var comparisons: [Comparison]
        /// user id → "majority" or "minority".
        public var groups: [String: String]
    }

    static let topics = ["sleep", "cooking", "running", "taxes", "gardening", "chess", "painting", "travel",
                         "saving money", "learning French", "fixing a bike", "baking bread"]
    static let details = ["start small and keep at it every day", "ask someone who has done it before",
                          "write down what works for you", "set aside a fixed time each week",
                          "read one good book on the subject", "keep notes and review them often"]

    /// `users` users (ids "user-1"…), the last `minorityShare` of them minority, each with
    /// `comparisonsPerUser` comparisons between a short and a long answer to the same prompt.
    public static func twoGroups(users: Int, minorityShare: Double, comparisonsPerUser: Int, seed: UInt64) -> Dataset {
        var rng = RandomSource(seed: seed)
        let minorityCount = Int((Double(users) * minorityShare).rounded())
        var comparisons: [Comparison] = [], groups: [String: String] = [:]
        for u in 1...max(users, 1) {
            let id = "user-\(u)"
            let minority = u > users - minorityCount
            groups[id] = minority ? "minority" : "majority"
            for _ in 0..<comparisonsPerUser {
                let topic = topics[Int(rng.next() % UInt64(topics.count))]
                let prompt = "Human: Do you have any advice about \(topic)?\n\nAssistant:"
                let short = "Yes, \(details[Int(rng.next() % UInt64(details.count))])."
                var long = "Sure, here are a few ideas about \(topic)."
                for _ in 0..<(2 + Int(rng.next() % 3)) { long += " You could \(details[Int(rng.next() % UInt64(details.count))])." }
                let (chosen, rejected) = minority ? (short, long) : (long, short)
                comparisons.append(Comparison(userID: id, prompt: prompt, chosen: chosen, rejected: rejected, userInfo: nil))
            }
        }
        return Dataset(comparisons: comparisons, groups: groups)
    }
}
