import Foundation
import PRMCore
import PRMModel
import PRMScoring

/// Accuracy after adapting on K comparisons: for every unseen user with more than K
/// comparisons, the first K (file order) fit the user (`UserAdapter`) and the rest are scored,
/// personalized (the fitted user) and generic (user 0, what the user got before adapting).
public struct FewShotRow: Codable, Sendable, Equatable {
    public var k: Int
    /// Unseen users with more than K comparisons.
    public var users = 0
    public var cell = AccuracyCell()
    public var byGroup: [String: AccuracyCell] = [:]

    enum CodingKeys: String, CodingKey { case k, users, cell = "scored", byGroup = "by_group" }

    public init(k: Int) { self.k = k }
}

public enum FewShotEvaluation {
    /// Rows in the order of `ks`. `groups` maps user ids to labels (per-label cells).
    /// Users are added to `scorer`'s model as they are fitted; nothing is saved.
    public static func evaluate(_ data: [EncodedComparison], ks: [Int], scorer: Scorer, groups: [String: String] = [:],
                                settings: AdaptSettings = AdaptSettings(), progress: ProgressBar? = nil) throws -> [FewShotRow] {
        let adapter = try UserAdapter(model: scorer.model, users: scorer.users, settings: settings)
        let preparer = scorer.preparer
        var byUser: [String: [EncodedComparison]] = [:]
        var order: [String] = []
        for c in data where !scorer.users.contains(c.userID) {
            if byUser[c.userID] == nil { order.append(c.userID) }
            byUser[c.userID, default: []].append(c)
        }
        var rows = ks.map(FewShotRow.init)
        for id in order {
            let comparisons = byUser[id] ?? []
            for (r, k) in ks.enumerated() where comparisons.count > k {
                let user = try adapter.addUser(Array(comparisons.prefix(k)))
                let rest = comparisons.dropFirst(k)
                var items: [PreparedItem] = []
                for c in rest {
                    for reply in [c.chosen, c.rejected] {
                        items.append(preparer.prepare(user: user, known: true, explicit: c.explicit, prompt: c.prompt, reply: reply))
                    }
                    for reply in [c.chosen, c.rejected] {
                        items.append(preparer.prepare(user: 0, known: false, explicit: [], prompt: c.prompt, reply: reply))
                    }
                }
                let s = scorer.score(items)
                rows[r].users += 1
                for i in 0..<rest.count {
                    let personalized = s[4 * i] > s[4 * i + 1], generic = s[4 * i + 2] > s[4 * i + 3]
                    rows[r].cell.add(personalized, generic)
                    if let label = groups[id] { rows[r].byGroup[label, default: AccuracyCell()].add(personalized, generic) }
                }
            }
            progress?.advance(by: comparisons.count)
        }
        return rows
    }

    /// A readable table: one line per K, then per label.
    public static func table(_ rows: [FewShotRow]) -> String {
        func line(_ name: String, _ k: Int, _ users: Int?, _ cell: AccuracyCell) -> String {
            let count = users.map(String.init) ?? ""
            return name.padding(toLength: 16, withPad: " ", startingAt: 0) + String(format: "%4d ", k)
                + String(repeating: " ", count: max(6 - count.count, 0)) + count
                + String(format: " %6d   %6.1f%%   %6.1f%%", cell.n, 100 * cell.accuracy, 100 * cell.genericAccuracy)
        }
        var lines = ["few-shot (unseen users: first K comparisons adapt, the rest are scored)",
                     "slice".padding(toLength: 16, withPad: " ", startingAt: 0) + "   K  users      n    adapted    generic"]
        for row in rows { lines.append(line("unseen", row.k, row.users, row.cell)) }
        let labels = Set(rows.flatMap { $0.byGroup.keys }).sorted()
        for label in labels {
            for row in rows { if let cell = row.byGroup[label] { lines.append(line("unseen/\(label)", row.k, nil, cell)) } }
        }
        return lines.joined(separator: "\n")
    }
}
