import XCTest
import PRMCore
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
}
