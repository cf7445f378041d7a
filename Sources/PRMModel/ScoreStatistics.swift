import Foundation

/// Per-user statistics of a model's scores on that user's training comparisons, recorded at the
/// end of `prm train` (and for the users `prm adapt` fits) in the checkpoint's training record
/// ("prm.training.score_statistics"), so a server's per-user health (`UserHealth`) can measure
/// drift from where the model left each user rather than from its first served requests.
///
/// A comparison is reduced exactly as a served `rank` request is (`Sample`): the mean of its
/// scores and its spread, best − worst. A pair's spread is |r(chosen) − r(rejected)|; a served
/// request of more candidates spreads wider, which is why collapse is judged against the served
/// population and only drift against these.
public struct ScoreStatistics: Codable, Sendable, Equatable {
    /// One request's (or one comparison's) scores, reduced.
    public struct Sample: Sendable {
        public let mean: Double
        public let spread: Double
        /// Best − second best: how close the top two are.
        public let topGap: Double

        /// Nil with fewer than two scores (nothing to spread).
        public init?(_ scores: [Float]) {
            guard scores.count >= 2 else { return nil }
            let sorted = scores.map(Double.init).sorted(by: >)
            mean = sorted.reduce(0, +) / Double(sorted.count)
            spread = sorted[0] - sorted[sorted.count - 1]
            topGap = sorted[0] - sorted[1]
        }
    }

    /// One user's training-time statistics.
    public struct User: Codable, Sendable, Equatable {
        public var comparisons: Int
        /// The mean over comparisons of their mean score.
        public var meanScore: Double
        /// The standard deviation of the comparisons' mean scores.
        public var scoreStd: Double
        /// The mean spread, |r(chosen) − r(rejected)|.
        public var spread: Double

        enum CodingKeys: String, CodingKey { case comparisons, meanScore = "mean_score", scoreStd = "score_std", spread }

        /// The statistics of `samples` (at least one).
        public init(_ samples: [Sample]) {
            let n = Double(samples.count)
            comparisons = samples.count
            meanScore = samples.reduce(0) { $0 + $1.mean } / n
            let square = samples.reduce(0) { $0 + $1.mean * $1.mean } / n
            scoreStd = max(square - meanScore * meanScore, 0).squareRoot()
            spread = samples.reduce(0) { $0 + $1.spread } / n
        }
    }

    /// Training record key.
    public static let recordKey = "score_statistics"

    public var users: [String: User]

    public init(users: [String: User] = [:]) { self.users = users }

    /// Statistics of each user's samples (users without any are left out).
    public init(samples: [String: [Sample]]) {
        users = samples.filter { !$0.value.isEmpty }.mapValues(User.init)
    }

    /// These statistics with `other`'s users added (theirs replace ours for users in both).
    public func merging(_ other: ScoreStatistics) -> ScoreStatistics {
        ScoreStatistics(users: users.merging(other.users) { $1 })
    }

    /// The statistics recorded in a checkpoint's training record, nil when it has none (a
    /// checkpoint written before they were recorded). `directory` names the folder in errors.
    public static func recorded(in training: [String: Any], of directory: URL) throws -> ScoreStatistics? {
        guard let section = training[recordKey] else { return nil }
        guard let object = section as? [String: Any] else {
            throw ModelError(file: directory.appendingPathComponent("config.json"), "prm.training.\(recordKey) is not a JSON object")
        }
        return try RunFolder.fields(Self.self, of: object) {
            ModelError(file: directory.appendingPathComponent("config.json"), "prm.training.\(recordKey): " + $0)
        }
    }

    /// The statistics recorded in the checkpoint folder `directory` (its config.json only).
    public static func recorded(in directory: URL) throws -> ScoreStatistics? {
        let read = try RunFolder.read(directory) { ModelError(file: $0, "missing field 'prm': not a prm checkpoint") }
        return try recorded(in: read.training, of: directory)
    }
}
