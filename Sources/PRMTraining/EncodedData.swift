import Foundation
import PRMCore
import PRMModel
import PRMScoring

/// A comparison tokenized once, with its user resolved to a table index (0 for unknown users).
public struct EncodedComparison: Sendable {
    public let userID: String
    public let user: Int
    public let explicit: [Int32]
    public let prompt: [Int32]
    public let chosen: [Int32]
    public let rejected: [Int32]

    /// Reward inputs for the personalized term (the user's own embedding and text).
    func personalized() -> (chosen: RewardInput, rejected: RewardInput) {
        (RewardInput(user: user, explicit: explicit, prompt: prompt, reply: chosen),
         RewardInput(user: user, explicit: explicit, prompt: prompt, reply: rejected))
    }

    /// Reward inputs for the generic term: user 0, no explicit text (App. F.2's second loss term).
    func generic() -> (chosen: RewardInput, rejected: RewardInput) {
        (RewardInput(user: 0, prompt: prompt, reply: chosen), RewardInput(user: 0, prompt: prompt, reply: rejected))
    }
}

extension EncodedComparison {
    /// Tokenizes comparisons once with `preparer`; users outside its table map to the generic
    /// index 0. (A function of this type, not of `InputPreparer`: scoring does not know training data.)
    public static func encode(_ comparisons: [Comparison], with preparer: InputPreparer) -> [EncodedComparison] {
        var texts: [String] = []
        texts.reserveCapacity(comparisons.count * 4)
        for c in comparisons { texts += [c.userInfo ?? "", c.prompt, c.chosen, c.rejected] }
        let ids = preparer.tokenize(texts)
        return comparisons.enumerated().map { i, c in
            EncodedComparison(userID: c.userID, user: preparer.user(c.userID).index, explicit: ids[4 * i],
                              prompt: ids[4 * i + 1], chosen: ids[4 * i + 2], rejected: ids[4 * i + 3])
        }
    }

    /// `encode`, then `checked`: what tokenization can break is refused; user text longer than the
    /// window allows is cut (a warning says how often): refusing would drop the user's comparisons.
    /// `name` names the data in messages.
    public static func encodeChecked(_ comparisons: [Comparison], name: String, with preparer: InputPreparer) throws -> [EncodedComparison] {
        let encoded = encode(comparisons, with: preparer)
        let (cut, limit) = try encoded.checked(for: preparer.window, name: name)
        if cut > 0 {
            Log.warning("\(name): the user text of \(cut) comparisons is longer than the \(limit) tokens the window leaves it "
                        + "(--max-length \(preparer.window.maxLength)); it is cut to its first \(limit) tokens")
        }
        return encoded
    }
}

extension Array where Element == EncodedComparison {
    /// Refuses comparisons the model cannot score (a reply the tokenizer turns into no tokens:
    /// both replies would be the bare prompt, or a causal backbone would get an empty sequence)
    /// and counts those whose explicit user text the window cuts (`InputWindow.explicitLimit`).
    /// `name` names the data in messages; rows are counted from 1 in file order.
    public func checked(for window: InputWindow, name: String) throws -> (cutUserText: Int, limit: Int) {
        for (i, c) in enumerated() {
            for (field, reply) in [("chosen", c.chosen), ("rejected", c.rejected)] where reply.isEmpty {
                throw TrainingError("\(name): comparison \(i + 1) (user '\(c.userID)'): '\(field)' has no tokens after tokenization "
                                    + "(the tokenizer drops every character of it)")
            }
        }
        let limit = window.explicitLimit
        return (filter { $0.explicit.count > limit }.count, limit)
    }
}
