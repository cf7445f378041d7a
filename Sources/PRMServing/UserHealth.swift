import PRMCore
import PRMModel

/// Per-user health of the scores a server serves (I/O thread only): for every known user its
/// `rank` requests (two candidates or more) update moving averages of the mean score, of the
/// spread (best − worst score within the request) and of how often the top two are within a hair
/// of each other; the population of all such requests gives the reference. A user is flagged
///
/// - **collapsed** when its spread falls below `collapseShare` of the population's: its reward has
///   stopped telling candidates apart (the failure reported for personalized reward models,
///   arXiv 2605.10991), and a policy trained on it for that user learns nothing;
/// - **drifted** when its mean score moved more than `driftSigmas` of its baseline's standard
///   deviations (and more than `collapseShare` of a spread) from its baseline. The baseline is
///   the model's own at training time when the checkpoint records it for the user
///   (`ScoreStatistics`: the mean and standard deviation of its training comparisons' mean scores,
///   the floor `collapseShare` of their spread; checked from `minRequests` on) and the user had at
///   least `minTrainingComparisons` of them (fewer give no standard deviation to speak of); otherwise it is
///   running: the mean and standard deviation of the user's first `window` request means (the
///   floor `collapseShare` of the population's spread; checked after `window` requests). Its own,
///   not the population's: a user whose scores moved would inflate the population's deviation
///   and hide itself.
///
/// The population's averages span `populationWindow` requests, so a burst of one user's requests
/// does not become the reference it is compared with.
///
/// Bounded: at most `maxTracked` users are followed (later ones are counted, not followed), and
/// Prometheus gets at most `maxLabelled` flagged user ids, never one series per user.
struct UserHealth: Sendable {
    static let window = 32
    static let populationWindow = 1_024
    /// Requests before a user can be flagged.
    static let minRequests = 8
    /// Training comparisons a user needs for its training-time statistics to be its baseline.
    static let minTrainingComparisons = 8
    static let collapseShare = 0.05
    static let driftSigmas = 3.0
    /// The top two are "tied" within this share of the population's spread.
    static let tieShare = 0.01
    static let maxTracked = 10_000
    static let maxLabelled = 20

    /// The plain mean of the first `window` values, then an exponential moving average over
    /// about `window` values.
    struct Average: Sendable {
        var window = UserHealth.window
        var value = 0.0
        var count = 0

        mutating func add(_ x: Double) {
            count += 1
            value += (x - value) / Double(min(count, window))
        }
    }

    struct Stats: Sendable {
        var requests = 0
        var mean = Average()
        var spread = Average()
        var tied = Average()
        /// The mean score of the user's first `window` requests, and the mean of its square.
        var baseline = Average()
        var baselineSquare = Average()
        var baselineStd: Double { max(baselineSquare.value - baseline.value * baseline.value, 0).squareRoot() }
        var collapsed = false
        var drifted = false
        var flagged: Bool { collapsed || drifted }
    }

    private(set) var users: [String: Stats] = [:]
    /// The checkpoint's training-time statistics (nil: it records none, every baseline runs).
    private(set) var reference: ScoreStatistics?
    private(set) var untracked = 0
    private(set) var population = Stats(mean: Average(window: populationWindow), spread: Average(window: populationWindow),
                                        tied: Average(window: populationWindow))
    /// Squared deviations of request means from the population's mean.
    private var populationVariance = Average(window: populationWindow)
    /// Times a user became collapsed.
    private(set) var collapsedTotal = 0

    init(reference: ScoreStatistics? = nil) { self.reference = reference }

    /// A reload's checkpoint: drift is measured from its training-time statistics from now on.
    mutating func use(reference: ScoreStatistics?) { self.reference = reference }

    /// `user` was fitted again while served (the adapt op): the training-time statistics no
    /// longer describe it, and its baseline runs from now on.
    mutating func refitted(_ user: String) { reference?.users[user] = nil }

    /// One ranked request of `user` (known to the model) with `scores`, reduced as training-time
    /// statistics reduce a comparison (`ScoreStatistics.Sample`).
    mutating func record(user: String, scores: [Float]) {
        guard let sample = ScoreStatistics.Sample(scores) else { return }
        let (mean, spread) = (sample.mean, sample.spread)
        let tied = sample.topGap <= Self.tieShare * max(population.spread.value, 1e-12) ? 1.0 : 0.0
        populationVariance.add((mean - population.mean.value) * (mean - population.mean.value))
        Self.add(&population, mean: mean, spread: spread, tied: tied)
        guard users[user] != nil || users.count < Self.maxTracked else {
            untracked += 1
            return
        }
        var stats = users[user] ?? Stats()
        Self.add(&stats, mean: mean, spread: spread, tied: tied)
        let wasCollapsed = stats.collapsed
        if stats.requests >= Self.minRequests {
            stats.collapsed = stats.spread.value < Self.collapseShare * population.spread.value
            stats.drifted = drifted(user, stats)
        }
        if stats.collapsed && !wasCollapsed { collapsedTotal += 1 }
        users[user] = stats
    }

    /// The user's training-time statistics when they are its drift baseline.
    private func trained(_ user: String) -> ScoreStatistics.User? {
        reference?.users[user].flatMap { $0.comparisons >= Self.minTrainingComparisons ? $0 : nil }
    }

    private func drifted(_ user: String, _ stats: Stats) -> Bool {
        if let trained = trained(user) {
            let margin = max(Self.driftSigmas * trained.scoreStd, Self.collapseShare * trained.spread)
            return abs(stats.mean.value - trained.meanScore) > margin
        }
        let margin = max(Self.driftSigmas * stats.baselineStd, Self.collapseShare * population.spread.value)
        return stats.requests > Self.window && abs(stats.mean.value - stats.baseline.value) > margin
    }

    private static func add(_ stats: inout Stats, mean: Double, spread: Double, tied: Double) {
        stats.requests += 1
        stats.mean.add(mean)
        stats.spread.add(spread)
        stats.tied.add(tied)
        if stats.requests <= window {
            stats.baseline.add(mean)
            stats.baselineSquare.add(mean * mean)
        }
    }

    /// Flagged users, the most collapsed first (smallest spread).
    var flagged: [(user: String, stats: Stats)] {
        users.filter { $0.value.flagged }.map { (user: $0.key, stats: $0.value) }.sorted { ($0.stats.spread.value, $0.user) < ($1.stats.spread.value, $1.user) }
    }

    /// One user's statistics as the `users` reply writes them: `baseline` says what its drift is
    /// measured from ("training" or "running"), `baseline_mean` is that baseline's mean.
    func write(_ user: String, _ s: Stats, _ w: inout JSONWriter) {
        let trained = trained(user)
        w.beginObject()
        w.key("user_id"); w.string(user)
        w.key("requests"); w.number(s.requests)
        w.key("mean_score"); w.number(s.mean.value)
        w.key("spread"); w.number(s.spread.value)
        w.key("tied_fraction"); w.number(s.tied.value)
        w.key("baseline"); w.string(trained == nil ? "running" : "training")
        w.key("baseline_mean"); w.number(trained?.meanScore ?? s.baseline.value)
        if let trained {
            w.key("training")
            w.object(["comparisons": trained.comparisons, "mean_score": trained.meanScore, "score_std": trained.scoreStd, "spread": trained.spread])
        }
        w.key("collapsed"); w.bool(s.collapsed)
        w.key("drifted"); w.bool(s.drifted)
        w.endObject()
    }

    /// The `users` reply's members: what drift is measured from, the population, the flagged
    /// users, and `user` if asked for.
    func write(_ w: inout JSONWriter, user: String?) {
        w.key("drift_reference")
        let baselines = reference?.users.values.filter { $0.comparisons >= Self.minTrainingComparisons }.count ?? 0
        w.object(["source": reference == nil ? "running" : "training", "training_users": reference?.users.count ?? 0,
                  "training_baselines": baselines, "min_training_comparisons": Self.minTrainingComparisons])
        w.key("tracked"); w.number(users.count)
        w.key("untracked_requests"); w.number(untracked)
        w.key("collapsed_total"); w.number(collapsedTotal)
        w.key("population")
        w.object(["requests": population.requests, "mean_score": population.mean.value, "spread": population.spread.value,
                  "tied_fraction": population.tied.value, "score_std": populationVariance.value.squareRoot()])
        w.key("flagged")
        w.beginArray()
        for (id, stats) in flagged { write(id, stats, &w) }
        w.endArray()
        if let user {
            w.key("user")
            if let stats = users[user] { write(user, stats, &w) } else { w.null() }
        }
    }

    /// What `metrics` and Prometheus report: counts, and a bounded list of flagged ids.
    var summary: Summary {
        let flagged = self.flagged
        return Summary(tracked: users.count, flagged: flagged.count, collapsedTotal: collapsedTotal,
                       labelled: flagged.prefix(Self.maxLabelled).map { ($0.user, $0.stats.collapsed ? "collapsed" : "drifted") })
    }

    struct Summary: Sendable {
        var tracked = 0
        var flagged = 0
        var collapsedTotal = 0
        /// At most `maxLabelled` (user, reason) pairs.
        var labelled: [(String, String)] = []
    }
}
