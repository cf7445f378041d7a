import Foundation
import PRMCore
import PRMModel
import PRMScoring

/// One K of `prm eval --few-shot K --active`: held-out accuracy of unseen users fitted on K
/// comparisons chosen by the `suggest` criterion, against K chosen at random.
public struct ActiveFewShotRow: Codable, Sendable, Equatable {
    public var k: Int
    /// "unseen", or "unseen/<label>" with --groups.
    public var slice: String
    /// Users whose pool has more than K comparisons.
    public var users = 0
    /// Held-out comparisons scored (each arm scores the same ones).
    public var n = 0
    public var activeCorrect = 0
    /// Held-out accuracy of each random draw, pooled over the users.
    public var randomDraws: [Double] = []
    public var genericCorrect = 0

    public var active: Double { Double(ratio: activeCorrect, of: n) }
    public var random: Double { randomDraws.isEmpty ? 0 : randomDraws.reduce(0, +) / Double(randomDraws.count) }
    /// The standard deviation of the random draws' accuracies.
    public var randomSpread: Double {
        guard randomDraws.count > 1 else { return 0 }
        let mean = random
        return (randomDraws.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(randomDraws.count - 1)).squareRoot()
    }
    public var generic: Double { Double(ratio: genericCorrect, of: n) }

    enum CodingKeys: String, CodingKey {
        case k, slice, users, n, activeCorrect = "active_correct", randomDraws = "random_draws", genericCorrect = "generic_correct"
        case active, random, randomSpread = "random_spread", generic
    }

    public init(k: Int, slice: String) {
        self.k = k
        self.slice = slice
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        k = try c.decode(Int.self, forKey: .k)
        slice = try c.decode(String.self, forKey: .slice)
        users = try c.decode(Int.self, forKey: .users)
        n = try c.decode(Int.self, forKey: .n)
        activeCorrect = try c.decode(Int.self, forKey: .activeCorrect)
        randomDraws = try c.decode([Double].self, forKey: .randomDraws)
        genericCorrect = try c.decode(Int.self, forKey: .genericCorrect)
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(k, forKey: .k)
        try c.encode(slice, forKey: .slice)
        try c.encode(users, forKey: .users)
        try c.encode(n, forKey: .n)
        try c.encode(activeCorrect, forKey: .activeCorrect)
        try c.encode(randomDraws, forKey: .randomDraws)
        try c.encode(genericCorrect, forKey: .genericCorrect)
        try c.encode(active, forKey: .active)
        try c.encode(random, forKey: .random)
        try c.encode(randomSpread, forKey: .randomSpread)
        try c.encode(generic, forKey: .generic)
    }
}

/// `prm eval --few-shot K --active`: does asking the `suggest` op's questions teach the model a
/// new user faster than asking at random?
///
/// Each unseen user's comparisons (file order) are split in two: the first half is the pool the
/// questions are drawn from, the second half is held out and scored. For each K the active arm
/// takes the K pool comparisons `PairSuggestion` picks under the prior (the user is new: nothing
/// answered yet; the candidates are the pool's replies, the pairs its comparisons), the random arm
/// K distinct pool comparisons per draw; both fit the user with the `adapt` math (`UserPrior`,
/// the MAP fit `prm adapt` and the service run) and score the held-out comparisons with the
/// fitted vector. Linear-head models only: the fit and the scores are ⟨e, h⟩ on the model's h.
public enum ActiveFewShotEvaluation {
    /// Rows per K (in the order of `ks`), then per label and K. `draws` random draws, seeded
    /// from `seed` (draw r of user u is a function of both, so runs repeat exactly).
    public static func evaluate(_ data: [EncodedComparison], ks: [Int], scorer: Scorer, groups: [String: String] = [:],
                                settings: AdaptSettings = AdaptSettings(), draws: Int, seed: UInt64,
                                progress: ProgressBar? = nil) throws -> [ActiveFewShotRow] {
        guard scorer.model.config.aggregator == .linearHead else {
            throw TrainingError("--active needs the linear-head aggregator (the suggest criterion is the Laplace approximation of its fit); "
                                + "this model has \(scorer.model.config.aggregator.rawValue)")
        }
        guard draws >= 1 else { throw TrainingError("--draws must be at least 1, got \(draws)") }
        let adapter = try UserAdapter(model: scorer.model, users: scorer.users, settings: settings)
        var prior = adapter.prior
        prior.scale = settings.priorScale
        var byUser: [String: [EncodedComparison]] = [:]
        var order: [String] = []
        for c in data where !scorer.users.contains(c.userID) {
            if byUser[c.userID] == nil { order.append(c.userID) }
            byUser[c.userID, default: []].append(c)
        }
        let slices = ["unseen"] + Set(order.compactMap { groups[$0] }).sorted().map { "unseen/\($0)" }
        var rows = slices.flatMap { slice in ks.map { ActiveFewShotRow(k: $0, slice: slice) } }
        var randomCorrect = [[Int]](repeating: [Int](repeating: 0, count: draws), count: rows.count)
        for (u, id) in order.enumerated() {
            let comparisons = byUser[id] ?? []
            let poolSize = (comparisons.count + 1) / 2
            let states = adapter.pooledStates(comparisons)
            let d = UserAdapter.differences(states)
            let (pool, heldOut) = (Array(d[..<poolSize]), Array(d[poolSize...]))
            let newcomer = UserPosterior(prior: prior)
            let poolStates = Array(states[..<(2 * poolSize)])
            let chosen = PairSuggestion.choose(ks.max() ?? 0, from: (0..<poolSize).map { (2 * $0, 2 * $0 + 1) },
                                               means: poolStates.map(newcomer.meanScore), covariance: newcomer.scoreCovariance(poolStates))
            let genericCorrect = heldOut.filter { newcomer.meanScore($0) > 0 }.count
            for (r, k) in ks.enumerated() where poolSize > k {
                let active = correct(on: heldOut, fittedOn: chosen.prefix(k).map { pool[$0.first / 2] }, prior: prior)
                var random: [Int] = []
                for draw in 0..<draws {
                    var rng = RandomSource(seed: seed &+ UInt64(draw) &* 1_000_003 &+ UInt64(u) &* 7_919 &+ UInt64(k))
                    let picked = Array((0..<poolSize).shuffled(using: &rng).prefix(k))
                    random.append(correct(on: heldOut, fittedOn: picked.map { pool[$0] }, prior: prior))
                }
                for slice in [0] + (groups[id].map { [slices.firstIndex(of: "unseen/\($0)") ?? 0] } ?? []) {
                    let row = slice * ks.count + r
                    rows[row].users += 1
                    rows[row].n += heldOut.count
                    rows[row].activeCorrect += active
                    rows[row].genericCorrect += genericCorrect
                    for draw in 0..<draws { randomCorrect[row][draw] += random[draw] }
                }
            }
            progress?.advance(by: comparisons.count)
        }
        for row in rows.indices { rows[row].randomDraws = randomCorrect[row].map { Double(ratio: $0, of: rows[row].n) } }
        return rows.filter { $0.users > 0 || $0.slice == "unseen" }
    }

    /// Held-out comparisons (pooled-state differences) the user fitted on `answered` orders right.
    static func correct(on heldOut: [[Double]], fittedOn answered: [[Double]], prior: UserPrior) -> Int {
        let fitted = UserPosterior(prior: prior, mode: prior.fit(answered).mode, differences: [])
        return heldOut.filter { fitted.meanScore($0) > 0 }.count
    }

    /// A readable table: one line per slice and K.
    public static func table(_ rows: [ActiveFewShotRow], draws: Int) -> String {
        var lines = ["few-shot, active vs random (unseen users: the first half of each user's comparisons is the pool K are chosen from, "
                     + "the second half is scored; random: mean ± sd over \(draws) draws)",
                     "slice".padding(toLength: 20, withPad: " ", startingAt: 0) + "   K  users      n     active           random    generic"]
        for row in rows {
            lines.append(row.slice.padding(toLength: 20, withPad: " ", startingAt: 0)
                         + String(format: "%4d %6d %6d    %6.1f%%   %6.1f ± %4.1f%%    %6.1f%%", row.k, row.users, row.n, 100 * row.active,
                                  100 * row.random, 100 * row.randomSpread, 100 * row.generic))
        }
        return lines.joined(separator: "\n")
    }
}
