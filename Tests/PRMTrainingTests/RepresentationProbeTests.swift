import Foundation
import XCTest
import PRMCore
@testable import PRMTraining

/// `RepresentationProbe` on states built to carry known properties: sampling keeps prompts whole,
/// the halves never share a prompt, and probes recover what the states carry (and not more).
final class RepresentationProbeTests: XCTestCase {
    /// Two replies per prompt, one long and one short, some with a question, a refusal, a negation, "I" or a list.
    func comparisons(_ count: Int) -> [Comparison] {
        (0..<count).map { k in
            let words = (0..<(3 + (k * 7) % 40)).map { "word\($0)" }.joined(separator: " ")
            let long = (k % 3 == 0 ? "I'm sorry, " : "") + words + (k % 2 == 0 ? " ok?" : ".") + (k % 5 == 0 ? "\n- item" : "")
            let short = (k % 4 == 0 ? "I think " : "") + (k % 3 == 1 ? "not " : "") + "short \(k)."
            return Comparison(userID: "u\(k % 3)", prompt: "Human: question \(k)\n\nAssistant:", chosen: long, rejected: short)
        }
    }

    func testSamplingKeepsPromptsWholeAndIsSeeded() {
        let data = comparisons(100)
        XCTAssertEqual(RepresentationProbe.replies(from: data, maxReplies: 1000, seed: 1).count, 200)
        let sample = RepresentationProbe.replies(from: data, maxReplies: 51, seed: 1)
        XCTAssertEqual(sample.count, 50, "whole prompts of two replies: at most 51 is 50")
        XCTAssertTrue(Dictionary(grouping: sample, by: \.prompt).values.allSatisfy { $0.count == 2 })
        XCTAssertEqual(sample, RepresentationProbe.replies(from: data, maxReplies: 51, seed: 1))
        XCTAssertNotEqual(sample, RepresentationProbe.replies(from: data, maxReplies: 51, seed: 2))
    }

    /// States whose first columns are the properties themselves, plus noise columns: every
    /// probe is (nearly) perfect on the held-out half, and the pair ordering follows the counts.
    /// States of noise alone: the word-count probe explains nothing.
    func testProbesRecoverWhatTheStatesCarry() throws {
        let data = comparisons(150)
        let replies = RepresentationProbe.replies(from: data, maxReplies: 1000, seed: 3)
        let properties = replies.map { ReplyProperties($0.text) }
        let C = 16
        var rng = RandomSource(seed: 4)
        var carrying = [Float](repeating: 0, count: replies.count * C), noise = carrying
        for (n, p) in properties.enumerated() {
            for (c, property) in ReplyProperties.Property.allCases.enumerated() { carrying[n * C + c] = Float(p[property]) }
            for c in ReplyProperties.Property.allCases.count..<C { carrying[n * C + c] = rng.nextNormal() }
            for c in 0..<C { noise[n * C + c] = rng.nextNormal() }
        }
        let report = try RepresentationProbe.run(states: carrying, width: C, replies: replies, comparisons: data)
        XCTAssertEqual(report.results.map(\.property), ReplyProperties.Property.allCases)
        for r in report.results {
            XCTAssertEqual(r.fitCount + r.testCount, replies.count)
            XCTAssertEqual(Double(r.fitCount), Double(replies.count) / 2, accuracy: 2)
            if r.property.kind == .continuous {
                XCTAssertGreaterThan(try XCTUnwrap(r.rSquared), 0.999, "\(r)")
            } else {
                XCTAssertEqual(try XCTUnwrap(r.accuracy), 1, "\(r)")
                XCTAssertEqual(try XCTUnwrap(r.balancedAccuracy), 1, "\(r)")
                XCTAssertEqual(try XCTUnwrap(r.auc), 1, "\(r)")
                XCTAssertGreaterThan(try XCTUnwrap(r.baseRate), 0, "\(r)")
            }
        }
        XCTAssertGreaterThan(report.pairOrdering.pairs, 50)
        XCTAssertEqual(report.pairOrdering.agreeing, report.pairOrdering.pairs)

        let blind = try RepresentationProbe.run(states: noise, width: C, replies: replies, comparisons: data)
        XCTAssertLessThan(try XCTUnwrap(blind.results[0].rSquared), 0.1)
        XCTAssertLessThan(try XCTUnwrap(blind.pairOrdering.fraction), 0.7)
    }

    func testTheHalvesShareNoPrompt() {
        let data = comparisons(40)
        let replies = RepresentationProbe.replies(from: data, maxReplies: 1000, seed: 5)
        let (fit, test, folds, prompts) = RepresentationProbe.split(replies, settings: RepresentationProbe.Settings())
        XCTAssertEqual(prompts, 40)
        XCTAssertEqual(Set(folds), Set(0..<5))
        XCTAssertEqual(fit.count + test.count, replies.count)
        XCTAssertTrue(Set(fit.map { replies[$0].prompt }).isDisjoint(with: test.map { replies[$0].prompt }))
    }

    /// The ROC area against a hand count: 3 positives × 3 negatives, one tie across the classes.
    func testAreaUnderROC() throws {
        let scores = [0.9, 0.8, 0.4, 0.4, 0.2, 0.1], positive = [true, false, true, false, true, false]
        // Pairs (positive above negative): 0.9 beats all 3; 0.4 beats 0.1 and ties 0.4; 0.2 beats 0.1.
        XCTAssertEqual(try XCTUnwrap(RepresentationProbe.areaUnderROC(scores: scores, positive: positive)), (3 + 1.5 + 1) / 9, accuracy: 1e-12)
        XCTAssertEqual(RepresentationProbe.areaUnderROC(scores: [1, 2, 3], positive: [false, true, true]), 1)
        XCTAssertNil(RepresentationProbe.areaUnderROC(scores: [1, 2], positive: [true, true]))
    }

    func testTooFewRepliesIsAnError() {
        let data = Array(comparisons(1))
        let replies = RepresentationProbe.replies(from: data, maxReplies: 10, seed: 1)
        XCTAssertThrowsError(try RepresentationProbe.run(states: [Float](repeating: 0, count: replies.count * 4), width: 4,
                                                         replies: replies, comparisons: data))
    }
}
