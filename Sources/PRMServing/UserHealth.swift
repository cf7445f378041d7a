import PRMCore

/// Per-user health of the scores a server serves (I/O thread only): for every known user its
/// `rank` requests (two candidates or more) update moving averages of the mean score, of the
/// spread (best − worst score within the request) and of how often the top two are within a hair
/// of each other; the population of all such requests gives the reference. A user is flagged
///
/// - **collapsed** when its spread falls below `collapseShare` of the population's: its reward has
///   stopped telling candidates apart (the failure reported for personalized reward models,
///   arXiv 2605.10991), and a policy trained on it for that user learns nothing;
/// - **drifted** when its mean score moved more than `driftSigmas` of its own baseline's standard
///   deviations (and more than `collapseShare` of the population's spread) from its baseline: the
///   mean and spread of its first `window` request means. Its own, not the population's: a user
///   whose scores moved would inflate the population's deviation and hide itself.
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
    private(set) var untracked = 0
    private(set) var population = Stats(mean: Average(window: populationWindow), spread: Average(window: populationWindow),
                                        tied: Average(window: populationWindow))
    /// Squared deviations of request means from the population's mean.
    private var populationVariance = Average(window: populationWindow)
    /// Times a user became collapsed.
    private(set) var collapsedTotal = 0

    /// One ranked request of `user` (known to the model) with `scores`.
    mutating func record(user: String, scores: [Float]) {
        guard scores.count >= 2 else { return }
        let sorted = scores.map(Double.init).sorted(by: >)
        let mean = sorted.reduce(0, +) / Double(sorted.count)
        let spread = sorted[0] - sorted[sorted.count - 1]
        let tied = sorted[0] - sorted[1] <= Self.tieShare * max(population.spread.value, 1e-12) ? 1.0 : 0.0
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
            let margin = max(Self.driftSigmas * stats.baselineStd, Self.collapseShare * population.spread.value)
            stats.drifted = stats.requests > Self.window && abs(stats.mean.value - stats.baseline.value) > margin
        }
        if stats.collapsed && !wasCollapsed { collapsedTotal += 1 }
        users[user] = stats
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

    /// One user's statistics as the `users` reply writes them.
    static func write(_ user: String, _ s: Stats, _ w: inout JSONWriter) {
        w.beginObject()
        w.key("user_id"); w.string(user)
        w.key("requests"); w.number(s.requests)
        w.key("mean_score"); w.number(s.mean.value)
        w.key("spread"); w.number(s.spread.value)
        w.key("tied_fraction"); w.number(s.tied.value)
        w.key("baseline_mean"); w.number(s.baseline.value)
        w.key("collapsed"); w.bool(s.collapsed)
        w.key("drifted"); w.bool(s.drifted)
        w.endObject()
    }

    /// The `users` reply's members: the population, the flagged users, and `user` if asked for.
    func write(_ w: inout JSONWriter, user: String?) {
        w.key("tracked"); w.number(users.count)
        w.key("untracked_requests"); w.number(untracked)
        w.key("collapsed_total"); w.number(collapsedTotal)
        w.key("population")
        w.object(["requests": population.requests, "mean_score": population.mean.value, "spread": population.spread.value,
                  "tied_fraction": population.tied.value, "score_std": populationVariance.value.squareRoot()])
        w.key("flagged")
        w.beginArray()
        for (id, stats) in flagged { Self.write(id, stats, &w) }
        w.endArray()
        if let user {
            w.key("user")
            if let stats = users[user] { Self.write(user, stats, &w) } else { w.null() }
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
