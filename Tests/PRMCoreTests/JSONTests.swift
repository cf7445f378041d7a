import Foundation
import XCTest
@testable import PRMCore

/// prm's strict JSON reader and writer: whole documents, errors with byte offsets, round trips.
final class JSONTests: XCTestCase {
    func parse(_ text: String, maxDepth: Int = 64) throws(JSONParseError) -> JSONValue { try JSONReader.parse(Array(text.utf8), maxDepth: maxDepth) }

    func assertSyntaxError(_ text: String, at offset: Int, _ fragment: String, file: StaticString = #filePath, line: UInt = #line) {
        do {
            _ = try parse(text)
            XCTFail("parsed \(text)", file: file, line: line)
        } catch {
            guard case .syntax(let e) = error else { return XCTFail("\(error)", file: file, line: line) }
            XCTAssertEqual(e.offset, offset, "\(e)", file: file, line: line)
            XCTAssertTrue(e.message.contains(fragment), "\(e)", file: file, line: line)
        }
    }

    func testValuesKeepTheirTypesAndOrder() throws {
        let value = try parse(#" {"b": [1, -2.5e3, true, false, null], "a": {"x": "y\n\u00e9\ud83d\ude00"}, "n": 0} "#)
        let object = try XCTUnwrap(value.object)
        XCTAssertEqual(object.keys, ["b", "a", "n"])
        XCTAssertEqual(object["b"], .array([.number(JSONNumber(text: "1")), .number(JSONNumber(text: "-2.5e3")), .bool(true), .bool(false), .null]))
        XCTAssertEqual(object["a"]?.object?["x"]?.string, "y\né😀")
        XCTAssertEqual(object["n"]?.number?.integer, 0)
        XCTAssertEqual(object["b"]?.array?[1].number?.value, -2500)
        XCTAssertEqual(object["b"]?.array?[1].number?.integer, -2500, "a whole value is an integer however it is spelt (JSON Schema)")
        XCTAssertNil(try parse("2.5").number?.integer)
    }

    func testNumbersKeepTheirSpellingAndOverflowToInfinity() throws {
        let huge = try XCTUnwrap(try parse("1e400").number)
        XCTAssertEqual(huge.text, "1e400")
        XCTAssertEqual(huge.value, .infinity)
        XCTAssertNil(huge.integer)
        XCTAssertNil(try parse("123456789012345678901234567890").number?.integer, "too big for Int")
        var w = JSONWriter()
        w.value(try parse(#"{"id":1.50e+2}"#))
        XCTAssertEqual(w.text, #"{"id":1.50e+2}"#, "echoed exactly as sent")
    }

    func testSyntaxErrorsNameTheByte() {
        assertSyntaxError("{\"a\": 1,}", at: 8, "expected a key")
        assertSyntaxError("[1 2]", at: 3, "expected ',' or ']'")
        assertSyntaxError("NaN", at: 0, "expected a value")
        assertSyntaxError("[Infinity]", at: 1, "expected a value")
        assertSyntaxError("-", at: 0, "invalid number")
        assertSyntaxError("01", at: 1, "after the value")
        assertSyntaxError("\"abc", at: 0, "unterminated string")
        assertSyntaxError("\"a\u{1}b\"", at: 2, "control character")
        assertSyntaxError("\"\\ud800\"", at: 1, "unpaired surrogate")
        assertSyntaxError("{} {}", at: 3, "after the value")
        assertSyntaxError("", at: 0, "expected a value")
    }

    func testDuplicateKeysAreRefused() {
        assertSyntaxError(#"{"id": 1, "op": "rank", "id": 2}"#, at: 30, "duplicate key 'id'")
        assertSyntaxError(#"{"a": {"b": 1, "b": 1}}"#, at: 20, "duplicate key 'b'")
    }

    func testNestingDeeperThanTheLimitIsRefused() throws {
        XCTAssertNoThrow(try parse(String(repeating: "[", count: 64) + String(repeating: "]", count: 64)))
        XCTAssertNoThrow(try parse(String(repeating: "[", count: 64) + "1" + String(repeating: "]", count: 64)))
        XCTAssertNoThrow(try parse(String(repeating: #"{"a":"#, count: 64) + "1" + String(repeating: "}", count: 64)))
        // The 65th level is the first one refused, arrays and objects alike.
        assertSyntaxError(String(repeating: "[", count: 65) + String(repeating: "]", count: 65), at: 64, "nested deeper than 64")
        assertSyntaxError(String(repeating: #"{"a":"#, count: 65) + "1" + String(repeating: "}", count: 65), at: 64 * 5, "nested deeper than 64")
        // Far beyond any stack: refused, not a crash.
        let deep = String(repeating: "[", count: 1_000_000)
        XCTAssertThrowsError(try parse(deep, maxDepth: 512))
    }

    func testInvalidUTF8IsReportedBeforeSyntax() {
        for bytes: [UInt8] in [[0x22, 0xFF, 0x22], [0x22, 0xC0, 0xAF, 0x22], [0x22, 0xED, 0xA0, 0x80, 0x22], [0x22, 0xE2, 0x82]] {
            XCTAssertThrowsError(try JSONReader.parse(bytes)) { error in
                guard case JSONParseError.invalidUTF8(let offset) = error else { return XCTFail("\(error)") }
                XCTAssertEqual(offset, 1)
            }
        }
    }

    func testWriterEscapesAndRoundTrips() throws {
        var w = JSONWriter()
        w.beginObject()
        w.key("text"); w.string("quote \" backslash \\ newline \n tab \t bell \u{7} é 😀")
        w.key("floats"); w.numbers([0.1, -2.5e-8, 1e30, Float.nan, 3])
        w.key("empty"); w.beginArray(); w.endArray()
        w.key("nested"); w.beginObject(); w.key("a"); w.null(); w.key("b"); w.bool(false); w.endObject()
        w.endObject()
        let text = w.text
        XCTAssertTrue(text.contains(#""floats":[0.1,-2.5e-08,1e+30,null,3.0]"#), text)
        let back = try XCTUnwrap(try JSONReader.parse(w.bytes).object)
        XCTAssertEqual(back["text"]?.string, "quote \" backslash \\ newline \n tab \t bell \u{7} é 😀")
        XCTAssertEqual(back["floats"]?.array?.first?.number.flatMap { Float($0.text) }, 0.1)
        // Foundation's parser agrees with our output.
        let foundation = try JSONSerialization.jsonObject(with: Data(w.bytes)) as? [String: Any]
        XCTAssertEqual(foundation?["text"] as? String, "quote \" backslash \\ newline \n tab \t bell \u{7} é 😀")
    }

    /// Every control character is escaped (none stays raw) and every string reads back through
    /// Foundation's parser as it was written.
    func testWriterStringsRoundTripWithEveryEscape() throws {
        let controls = String(String.UnicodeScalarView((0..<0x20).compactMap(Unicode.Scalar.init)))
        let texts = ["", "plain", "quote \" and backslash \\ and slash /", "Human: hi\n\nAssistant:\tok\r\n", controls,
                     "Café déjà vu — 東京 🙂", "\u{7F}\u{2028}\u{2029}"]
        for text in texts {
            var w = JSONWriter()
            w.string(text)
            let parsed = try JSONSerialization.jsonObject(with: Data(w.bytes), options: [.fragmentsAllowed]) as? String
            XCTAssertEqual(parsed, text, w.text)
            XCTAssertFalse(w.bytes.dropFirst().dropLast().contains { $0 < 0x20 }, "raw control character in \(w.text.debugDescription)")
        }
        var w = JSONWriter()
        w.string("a\u{01}b\"")
        XCTAssertEqual(w.text, #""a\u0001b\"""#)
    }

    func testShortestFloatsRoundTripExactly() throws {
        var rng = RandomSource(seed: 3)
        for _ in 0..<10_000 {
            let x = Float(bitPattern: UInt32(truncatingIfNeeded: rng.next()))
            guard x.isFinite else { continue }
            var w = JSONWriter()
            w.number(x)
            let number = try XCTUnwrap(try JSONReader.parse(w.bytes).number)
            XCTAssertEqual(Float(number.text), x, number.text)
        }
    }

    func testJSONLinesSplitterHandlesChunksCRLFAndBOM() {
        let text = "\u{FEFF}{\"a\":1}\r\n\n  \n[2]\n\"three\""
        let bytes = Array(text.utf8)
        for chunk in [1, 2, 5, bytes.count] {
            var splitter = JSONLineSplitter(JSONValueLines())
            for start in stride(from: 0, to: bytes.count, by: chunk) {
                bytes[start..<min(start + chunk, bytes.count)].withUnsafeBytes { splitter.feed($0) }
            }
            splitter.endOfInput()
            XCTAssertNil(splitter.consumer.firstError.map { "\($0)" })
            XCTAssertEqual(splitter.consumer.values.map(\.line), [1, 4, 5], "chunk \(chunk)")
            XCTAssertEqual(splitter.consumer.values.map(\.value.kind), [.object, .array, .string])
            XCTAssertEqual(splitter.lineCount, 5)
        }
    }
}
