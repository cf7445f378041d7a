import XCTest
import PRMCore
import PRMModel
@testable import PRMServing

/// The per-user flags on synthetic scores: a user whose spread vanishes is collapsed (counted
/// once), a user whose mean moves far from its baseline is drifted, healthy users are neither,
/// and the Prometheus label set stays bounded however many users are flagged.
final class UserHealthTests: XCTestCase {
    func testCollapseDriftAndBounds() {
        var health = UserHealth()
        var rng = RandomSource(seed: 7)
        func scores(mean: Float, spread: Float) -> [Float] { (0..<4).map { _ in mean + spread * rng.nextNormal() } }
        for _ in 0..<40 {
            for user in ["a", "b", "c"] { health.record(user: user, scores: scores(mean: 0, spread: 1)) }
            health.record(user: "flat", scores: [0.25, 0.25, 0.25, 0.25])
        }
        for _ in 0..<40 { health.record(user: "mover", scores: scores(mean: 0, spread: 1)) }
        for _ in 0..<40 { health.record(user: "mover", scores: scores(mean: 25, spread: 1)) }
        let flagged = Dictionary(uniqueKeysWithValues: health.flagged.map { ($0.user, $0.stats) })
        XCTAssertEqual(Set(flagged.keys), ["flat", "mover"])
        XCTAssertEqual(flagged["flat"]?.collapsed, true)
        XCTAssertEqual(flagged["mover"]?.drifted, true)
        XCTAssertEqual(flagged["mover"]?.collapsed, false)
        XCTAssertEqual(health.collapsedTotal, 1, "counted when it collapses, not at every request")
        XCTAssertEqual(flagged["flat"]?.tied.value ?? 0, 1, accuracy: 1e-9)

        for n in 0..<(UserHealth.maxLabelled + 10) {
            for _ in 0..<UserHealth.minRequests { health.record(user: "flat-\(n)", scores: [1, 1]) }
        }
        let summary = health.summary
        XCTAssertEqual(summary.flagged, UserHealth.maxLabelled + 12)
        XCTAssertEqual(summary.labelled.count, UserHealth.maxLabelled)
        health.record(user: "one-candidate", scores: [3])
        XCTAssertNil(health.users["one-candidate"], "a request of one candidate has no spread")
    }

    /// With training-time statistics a user is drifted from `minRequests` on when its served mean
    /// is more than 3 of its training deviations from its training mean; a user with fewer than
    /// `minTrainingComparisons` of them, or fitted again while served, keeps a running baseline.
    func testDriftAgainstTrainingStatistics() {
        func trained(_ mean: Double, comparisons: Int = 20) -> ScoreStatistics.User {
            var user = ScoreStatistics.User([ScoreStatistics.Sample([1, -1])!])
            (user.comparisons, user.meanScore, user.scoreStd, user.spread) = (comparisons, mean, 0.5, 2)
            return user
        }
        var health = UserHealth(reference: ScoreStatistics(users: ["near": trained(0.2), "far": trained(5), "few": trained(5, comparisons: 3),
                                                                   "refit": trained(5)]))
        health.refitted("refit")
        for _ in 0..<UserHealth.minRequests {
            for user in ["near", "far", "few", "refit"] { health.record(user: user, scores: [1, -1]) }
        }
        let flagged = Set(health.flagged.map(\.user))
        XCTAssertEqual(flagged, ["far"], "|0 - 5| > 3 x 0.5; |0 - 0.2| < 3 x 0.5; few and refit run from their own first requests")
        var w = JSONWriter()
        w.beginObject()
        health.write(&w, user: "far")
        w.endObject()
        let reply = try? JSONReader.parse(w.bytes).object
        XCTAssertEqual(reply?["user"]?.object?["baseline"]?.string, "training")
        XCTAssertEqual(reply?["user"]?.object?["baseline_mean"]?.number?.value, 5)
        XCTAssertEqual(reply?["drift_reference"]?.object?["training_baselines"]?.number?.integer, 2)
    }

    /// A comparison and a served request are reduced alike: mean, best − worst, best − second.
    func testSampleAndUserStatistics() throws {
        let sample = try XCTUnwrap(ScoreStatistics.Sample([1, 4, 2]))
        XCTAssertEqual(sample.mean, 7.0 / 3, accuracy: 1e-12)
        XCTAssertEqual(sample.spread, 3)
        XCTAssertEqual(sample.topGap, 2)
        XCTAssertNil(ScoreStatistics.Sample([1]))
        let user = ScoreStatistics.User([ScoreStatistics.Sample([1, 3])!, ScoreStatistics.Sample([0, -4])!])
        XCTAssertEqual(user.comparisons, 2)
        XCTAssertEqual(user.meanScore, 0, accuracy: 1e-12)
        XCTAssertEqual(user.scoreStd, 2, accuracy: 1e-12)
        XCTAssertEqual(user.spread, 3, accuracy: 1e-12)
    }
}
