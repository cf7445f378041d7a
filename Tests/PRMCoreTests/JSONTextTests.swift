import Foundation
import XCTest
@testable import PRMCore

/// JSONText's strings and numbers read back exactly through Foundation's JSON parser.
final class JSONTextTests: XCTestCase {
    func testStringsRoundTripWithEveryEscape() throws {
        let controls = String(String.UnicodeScalarView((0..<0x20).compactMap(Unicode.Scalar.init)))
        let texts = ["", "plain", "quote \" and backslash \\ and slash /", "Human: hi\n\nAssistant:\tok\r\n", controls,
                     "Café déjà vu — 東京 🙂", "\u{7F}\u{2028}\u{2029}"]
        for text in texts {
            var out = ""
            JSONText.appendString(text, to: &out)
            let parsed = try JSONSerialization.jsonObject(with: Data(out.utf8), options: [.fragmentsAllowed]) as? String
            XCTAssertEqual(parsed, text, out)
            XCTAssertFalse(out.unicodeScalars.dropFirst().dropLast().contains { $0.value < 0x20 }, "raw control character in \(out.debugDescription)")
        }
        var out = ""
        JSONText.appendString("a\u{01}b\"", to: &out)
        XCTAssertEqual(out, #""a\u0001b\"""#)
    }

    func testNumbersAreShortestAndReadBackToTheSameFloat() throws {
        var rng = RandomSource(seed: 8)
        var values: [Float] = [0, -0.0, 1, -1, 0.1, 1e-5, .leastNonzeroMagnitude, .leastNormalMagnitude, .greatestFiniteMagnitude, 123_456_792, 0.012345679]
        for _ in 0..<2000 { values.append(rng.nextNormal() * Float(pow(10.0, Double(Int(rng.next() % 20)) - 10))) }
        var out = ""
        try JSONText.appendArray(values, to: &out)
        let parsed = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(out.utf8)) as? [NSNumber])
        XCTAssertEqual(parsed.count, values.count)
        for (value, number) in zip(values, parsed) {
            XCTAssertEqual(Float(number.doubleValue), value, "\(value) wrote \(number)")
        }
        var short = ""
        try JSONText.appendNumber(0.1, to: &short)
        XCTAssertEqual(short, "0.1")
    }

    func testNonFiniteNumbersAreRefused() {
        for value in [Float.nan, .infinity, -.infinity] {
            var out = ""
            XCTAssertThrowsError(try JSONText.appendNumber(value, to: &out)) { error in
                XCTAssertEqual("\(error)", "\(value) cannot be written as a JSON number")
            }
        }
    }
}
