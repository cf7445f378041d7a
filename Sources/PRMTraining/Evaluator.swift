import Foundation
import PRMCore
import PRMModel
import PRMScoring

/// Pairwise accuracy of one slice of the data, personalized (the user's own embedding, or the
/// generic one for an unseen user) and generic (everyone as user 0).
public struct AccuracyCell: Codable, Sendable, Equatable {
    public var n = 0
    public var correct = 0
    public var genericCorrect = 0

    public var accuracy: Double { Double(ratio: correct, of: n) }
    public var genericAccuracy: Double { Double(ratio: genericCorrect, of: n) }

    mutating func add(_ personalized: Bool, _ generic: Bool) {
        n += 1
        if personalized { correct += 1 }
        if generic { genericCorrect += 1 }
    }

    enum CodingKeys: String, CodingKey { case n, correct, genericCorrect = "generic_correct", accuracy, genericAccuracy = "generic_accuracy" }

    public init() {}

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        n = try c.decode(Int.self, forKey: .n)
        correct = try c.decode(Int.self, forKey: .correct)
        genericCorrect = try c.decode(Int.self, forKey: .genericCorrect)
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(n, forKey: .n)
        try c.encode(correct, forKey: .correct)
        try c.encode(genericCorrect, forKey: .genericCorrect)
        try c.encode(accuracy, forKey: .accuracy)
        try c.encode(genericAccuracy, forKey: .genericAccuracy)
    }
}

/// One user's row of the report.
public struct UserAccuracy: Codable, Sendable, Equatable {
    public var cell: AccuracyCell
    public var seen: Bool
    public var label: String?

    enum CodingKeys: String, CodingKey { case seen, label }

    public init(cell: AccuracyCell, seen: Bool, label: String?) {
        self.cell = cell
        self.seen = seen
        self.label = label
    }

    public init(from decoder: Decoder) throws {
        cell = try AccuracyCell(from: decoder)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        seen = try c.decode(Bool.self, forKey: .seen)
        label = try c.decodeIfPresent(String.self, forKey: .label)
    }

    public func encode(to encoder: Encoder) throws {
        try cell.encode(to: encoder)
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(seen, forKey: .seen)
        try c.encodeIfPresent(label, forKey: .label)
    }
}

/// `prm eval`'s result: overall, seen/unseen, per user, and per group label when given.
public struct EvaluationReport: Codable, Sendable {
    public var overall = AccuracyCell()
    public var seen = AccuracyCell()
    public var unseen = AccuracyCell()
    public var byUser: [String: UserAccuracy] = [:]
    /// Per label, and per "seen/<label>" and "unseen/<label>".
    public var byGroup: [String: AccuracyCell] = [:]
    /// `prm eval --few-shot`: accuracy of unseen users adapted on K comparisons, per K.
    public var fewShot: [FewShotRow]?
    /// `prm eval --few-shot --active`: the suggest criterion's choice vs random choices, per slice and K.
    public var fewShotActive: [ActiveFewShotRow]?

    enum CodingKeys: String, CodingKey {
        case overall, seen, unseen, byUser = "by_user", byGroup = "by_group", fewShot = "few_shot", fewShotActive = "few_shot_active"
    }
}

/// Scores comparisons through the `Scorer` and tallies pairwise accuracy.
public final class Evaluator {
    public let scorer: Scorer
    public let batchSize: Int

    public init(model: RewardModel, users: UserTable, batchSize: Int = 16) {
        scorer = Scorer(model: model, users: users)
        self.batchSize = batchSize
    }

    /// Personalized accuracy only (used for dev accuracy during training).
    public func accuracy(_ data: [EncodedComparison]) -> Float {
        Float(evaluate(data).overall.accuracy)
    }

    public func evaluate(_ data: [EncodedComparison], groups: [String: String] = [:], progress: ProgressBar? = nil) -> EvaluationReport {
        var report = EvaluationReport()
        let preparer = scorer.preparer
        for start in stride(from: 0, to: data.count, by: batchSize) {
            let part = data[start..<min(start + batchSize, data.count)]
            var items: [PreparedItem] = []
            for c in part {
                // Personalized: the user's own embedding and text; generic: user 0 and no text (App. F.2).
                let known = c.user != 0
                for reply in [c.chosen, c.rejected] {
                    items.append(preparer.prepare(user: c.user, known: known, explicit: c.explicit, prompt: c.prompt, reply: reply))
                }
                for reply in [c.chosen, c.rejected] {
                    items.append(preparer.prepare(user: 0, known: false, explicit: [], prompt: c.prompt, reply: reply))
                }
            }
            let r = scorer.score(items)
            for (i, c) in part.enumerated() {
                let personalized = r[4 * i] > r[4 * i + 1], generic = r[4 * i + 2] > r[4 * i + 3]
                let seen = scorer.users.contains(c.userID)
                let label = groups[c.userID]
                report.overall.add(personalized, generic)
                if seen { report.seen.add(personalized, generic) } else { report.unseen.add(personalized, generic) }
                report.byUser[c.userID, default: UserAccuracy(cell: AccuracyCell(), seen: seen, label: label)].cell.add(personalized, generic)
                if let label {
                    report.byGroup[label, default: AccuracyCell()].add(personalized, generic)
                    report.byGroup["\(seen ? "seen" : "unseen")/\(label)", default: AccuracyCell()].add(personalized, generic)
                }
            }
            progress?.advance(by: part.count, extra: String(format: "acc %.3f", report.overall.accuracy))
        }
        return report
    }
}

extension Evaluator {
    /// Per-user statistics of the personalized scores of `data` (`ScoreStatistics`): each
    /// comparison is scored for its own user, as a server scores a `rank` of its two replies.
    /// Users are looked up by id (comparisons encoded before `prm adapt` added their user carry
    /// index 0); users the model does not know are left out.
    public func scoreStatistics(_ data: [EncodedComparison]) -> ScoreStatistics {
        let preparer = scorer.preparer
        let known = data.filter { scorer.users.contains($0.userID) }
        var samples: [String: [ScoreStatistics.Sample]] = [:]
        for start in stride(from: 0, to: known.count, by: batchSize) {
            let part = known[start..<min(start + batchSize, known.count)]
            let items = part.flatMap { c in
                let user = scorer.users.index(of: c.userID)
                return [c.chosen, c.rejected].map { preparer.prepare(user: user, known: true, explicit: c.explicit, prompt: c.prompt, reply: $0) }
            }
            let r = scorer.score(items)
            for (i, c) in part.enumerated() {
                if let sample = ScoreStatistics.Sample([r[2 * i], r[2 * i + 1]]) { samples[c.userID, default: []].append(sample) }
            }
        }
        return ScoreStatistics(samples: samples)
    }
}

extension EvaluationReport {
    /// A readable table: slices first, then users.
    public func table() -> String {
        func row(_ name: String, _ cell: AccuracyCell) -> String {
            name.padding(toLength: 24, withPad: " ", startingAt: 0)
                + String(format: "%6d   %6.1f%%   %6.1f%%", cell.n, 100 * cell.accuracy, 100 * cell.genericAccuracy)
        }
        var lines = ["slice".padding(toLength: 24, withPad: " ", startingAt: 0) + "     n   personal    generic"]
        lines.append(row("overall", overall))
        if seen.n > 0 { lines.append(row("seen users", seen)) }
        if unseen.n > 0 { lines.append(row("unseen users", unseen)) }
        for (label, cell) in byGroup.sorted(by: { $0.key < $1.key }) { lines.append(row(label, cell)) }
        lines.append("")
        for (id, user) in byUser.sorted(by: { $0.key.localizedStandardCompare($1.key) == .orderedAscending }) {
            let tag = (user.seen ? "" : " (unseen)") + (user.label.map { " [\($0)]" } ?? "")
            lines.append(row(id + tag, user.cell))
        }
        return lines.joined(separator: "\n")
    }
}
