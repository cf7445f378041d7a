import Foundation
import PRMModel
import PRMTestSupport
import PRMTraining
import XCTest

/// Preference JSONL loading: the real lengthpref files against Foundation's JSON parser, the
/// prompt-free (TRL) layout split, and every kind of bad row with its exact line and field.
final class PreferenceDataTests: XCTestCase {
    private let fileName = "t.jsonl"
    private let good = #"{"user_id": "u1", "prompt": "p", "chosen": "a", "rejected": "b"}"#

    // MARK: - Helpers

    private func parse(_ lines: [String], skipInvalid: Bool = false, defaultUser: String? = nil) throws(DataError) -> PreferenceDataset {
        try PreferenceDataset.parse(Data(lines.joined(separator: "\n").utf8), name: fileName,
                                    skipInvalid: skipInvalid, defaultUser: defaultUser)
    }

    /// The issues of a parse that must fail; a parse that succeeds fails the test.
    private func issues(_ lines: [String], skipInvalid: Bool = false, defaultUser: String? = nil,
                        file: StaticString = #filePath, line: UInt = #line) -> [String] {
        do {
            let dataset = try parse(lines, skipInvalid: skipInvalid, defaultUser: defaultUser)
            XCTFail("expected a DataError, got \(dataset.comparisons.count) comparisons", file: file, line: line)
            return []
        } catch {
            return error.issues.map(\.description)
        }
    }

    /// The single issue of a file whose line `at` is `bad` and whose other lines are good.
    private func singleIssue(_ bad: String, at badLine: Int = 3, file: StaticString = #filePath, line: UInt = #line) -> String {
        var lines = Array(repeating: good, count: 4)
        lines[badLine - 1] = bad
        let found = issues(lines, file: file, line: line)
        XCTAssertEqual(found.count, 1, "\(found)", file: file, line: line)
        return found.first ?? ""
    }

    /// 1-based byte position of `needle` in `line`, as the reader reports it.
    private func bytePosition(of needle: String, in line: String) -> Int {
        guard let range = line.range(of: needle) else { return -1 }
        return line.utf8.distance(from: line.startIndex, to: range.lowerBound) + 1
    }

    /// A JSON string literal for `text`, written by Foundation's encoder.
    private func json(_ text: String) throws -> String {
        String(decoding: try JSONEncoder().encode(text), as: UTF8.self)
    }

    private func promptFreeRow(_ chosen: String, _ rejected: String, user: String = "u1") throws -> String {
        #"{"user_id": \#(try json(user)), "chosen": \#(try json(chosen)), "rejected": \#(try json(rejected))}"#
    }

    // MARK: - The real data

    func testLengthprefFilesLoadAndMatchFoundationParser() throws {
        let directory = TestSupport.lengthprefDirectory
        for (file, rows, users) in [("train.jsonl", 968, 30), ("dev.jsonl", 633, 40)] {
            let url = directory.appendingPathComponent(file)
            let start = Date()
            let dataset = try PreferenceDataset.load(url)
            let seconds = Date().timeIntervalSince(start)
            XCTAssertEqual(dataset.comparisons.count, rows, file)
            XCTAssertEqual(dataset.userIDs.count, users, file)
            XCTAssertEqual(dataset.skipped, 0)
            XCTAssertEqual(dataset.url, url)
            #if DEBUG
            XCTAssertLessThan(seconds, 2.0, "\(file) took \(seconds) s in a debug build")
            #else
            XCTAssertLessThan(seconds, 0.2, "\(file) took \(seconds) s in a release build")
            #endif

            // Independent reference: Foundation's JSONDecoder on the same lines.
            let lines = try String(contentsOf: url, encoding: .utf8).split(separator: "\n")
            XCTAssertEqual(lines.count, rows)
            for (index, line) in lines.enumerated() {
                let object = try JSONDecoder().decode([String: String].self, from: Data(line.utf8))
                let comparison = dataset.comparisons[index]
                XCTAssertEqual(comparison.userID, object["user_id"], "\(file):\(index + 1)")
                XCTAssertEqual(comparison.prompt, object["prompt"], "\(file):\(index + 1)")
                XCTAssertEqual(comparison.chosen, object["chosen"], "\(file):\(index + 1)")
                XCTAssertEqual(comparison.rejected, object["rejected"], "\(file):\(index + 1)")
                // Exact scalars, not just canonical equivalence.
                XCTAssertEqual(Array(comparison.chosen.unicodeScalars), Array((object["chosen"] ?? "").unicodeScalars))
                XCTAssertNil(comparison.userInfo)
            }
        }
        let train = try PreferenceDataset.load(directory.appendingPathComponent("train.jsonl"))
        let dev = try PreferenceDataset.load(directory.appendingPathComponent("dev.jsonl"))
        // README: worker-1...30 are seen (train and dev), worker-31...40 unseen (dev only).
        XCTAssertEqual(Set(train.userIDs), Set((1...30).map { "worker-\($0)" }))
        XCTAssertEqual(Set(dev.userIDs), Set((1...40).map { "worker-\($0)" }))
        XCTAssertEqual(train.userIDs, train.userIDs.sorted())
        let mine = train.comparisons(for: "worker-14")
        XCTAssertFalse(mine.isEmpty)
        XCTAssertTrue(mine.allSatisfy { $0.userID == "worker-14" })
        XCTAssertEqual(train.userIDs.map { train.comparisons(for: $0).count }.reduce(0, +), 968)
    }

    /// Rewriting the real rows into the prompt-free layout gives the same comparisons back
    /// whenever the two replies differ in their first word; otherwise the shared words move
    /// into the prompt and nothing else changes.
    func testLengthprefRoundTripThroughPromptFreeLayout() throws {
        let train = try PreferenceDataset.load(TestSupport.lengthprefDirectory.appendingPathComponent("train.jsonl"))
        let lines = try train.comparisons.map {
            try promptFreeRow($0.prompt + " " + $0.chosen, $0.prompt + " " + $0.rejected, user: $0.userID)
        }
        let split = try parse(lines)
        XCTAssertEqual(split.comparisons.count, train.comparisons.count)
        var sameFirstWord = 0
        for (native, fromFull) in zip(train.comparisons, split.comparisons) {
            let firstWord = { (text: String) in text.split(whereSeparator: \.isWhitespace).first }
            if firstWord(native.chosen) != firstWord(native.rejected) {
                XCTAssertEqual(fromFull, native)
            } else {
                sameFirstWord += 1
                XCTAssertTrue(fromFull.prompt.hasPrefix(native.prompt + " "))
                for (full, reply) in [(native.prompt + " " + native.chosen, fromFull.chosen),
                                      (native.prompt + " " + native.rejected, fromFull.rejected)] {
                    XCTAssertTrue(full.hasPrefix(fromFull.prompt) && full.hasSuffix(reply))
                    let separator = full.dropFirst(fromFull.prompt.count).dropLast(reply.count)
                    XCTAssertFalse(separator.isEmpty)
                    XCTAssertTrue(separator.allSatisfy(\.isWhitespace), "separator \(Array(separator))")
                }
            }
        }
        // 62 rows of train.jsonl start both replies with the same word (counted with Python).
        XCTAssertEqual(sameFirstWord, 62)
        // Line 57: the rejected reply is the start of the chosen one; the row still splits.
        XCTAssertTrue(train.comparisons[56].chosen.hasPrefix(train.comparisons[56].rejected))
        XCTAssertEqual(split.comparisons[56].rejected, "welcome.")
        XCTAssertEqual(split.comparisons[56].prompt, train.comparisons[56].prompt + " You’re")
    }

    // MARK: - Prompt-free layout

    func testPromptFreeSplitRule() throws {
        let cases: [(chosen: String, rejected: String, prompt: String, c: String, r: String)] = [
            // The separator space belongs to neither side.
            ("Human: hi\n\nAssistant: Sure thing", "Human: hi\n\nAssistant: No",
             "Human: hi\n\nAssistant:", "Sure thing", "No"),
            // The divergence inside a word moves the split back to the word's start.
            ("Human: is it?\n\nAssistant: Surely not", "Human: is it?\n\nAssistant: Sure thing",
             "Human: is it?\n\nAssistant:", "Surely not", "Sure thing"),
            // Shared leading words of the replies end up in the prompt: the rule is textual.
            ("Q: well?\n\nA: I think yes", "Q: well?\n\nA: I think no", "Q: well?\n\nA: I think", "yes", "no"),
            // Multi-turn dialogue, a newline as separator, leading whitespace of the dialogue kept.
            ("\n\nHuman: a\n\nAssistant: b\n\nHuman: c d\n\nAssistant:\nYes, gladly.\nSee below.",
             "\n\nHuman: a\n\nAssistant: b\n\nHuman: c d\n\nAssistant:\nNo.",
             "\n\nHuman: a\n\nAssistant: b\n\nHuman: c d\n\nAssistant:", "Yes, gladly.\nSee below.", "No."),
            // One text is the other's beginning (ending mid-word): both replies start at that word.
            ("Q: ok?\n\nA: You’re welcome.", "Q: ok?\n\nA: You’re welcome.  Bye.", "Q: ok?\n\nA: You’re",
             "welcome.", "welcome.  Bye."),
            ("A: yes", "A: yes please", "A:", "yes", "yes please"),
            // Divergence in the first word: empty prompt.
            ("Yes please", "No thanks", "", "Yes please", "No thanks"),
            // Bytes differ inside a two-byte scalar (é = C3 A9, è = C3 A8).
            ("A: café au lait", "A: cafè noir", "A:", "café au lait", "cafè noir"),
            // Non-ASCII whitespace (U+3000 ideographic space) separates words too.
            ("A:\u{3000}はい", "A:\u{3000}いいえ", "A:", "はい", "いいえ"),
            // A whitespace run as separator, and whitespace past the split point stays in the reply.
            ("A: \t x", "A: \t  x", "A:", "x", " x"),
            // Divergence at whitespace right after a shared word: that word goes to both replies.
            ("A: Sure thing", "A: Sure\nthing", "A:", "Sure thing", "Sure\nthing"),
        ]
        let lines = try cases.map { try promptFreeRow($0.chosen, $0.rejected) }
        let dataset = try parse(lines)
        XCTAssertEqual(dataset.comparisons.count, cases.count)
        for (expected, got) in zip(cases, dataset.comparisons) {
            XCTAssertEqual(got, Comparison(userID: "u1", prompt: expected.prompt, chosen: expected.c, rejected: expected.r),
                           "\(expected.chosen.debugDescription) vs \(expected.rejected.debugDescription)")
        }
    }

    func testPromptFreeRowsWithoutDifferingReplies() throws {
        let lines = [
            try promptFreeRow("A: yes", "A: no"),
            try promptFreeRow("A: same", "A: same"),
            try promptFreeRow("A: yes ", "A: yes and more"),
            try promptFreeRow("A: yes", "A:  "),
            // Canonically equivalent texts (precomposed é vs e + U+0301) split apart but are equal.
            try promptFreeRow("A: caf\u{E9}", "A: cafe\u{301}"),
            "",
        ]
        XCTAssertEqual(issues(lines), [
            "t.jsonl:2: chosen and rejected are identical",
            "t.jsonl:3: chosen and rejected have no differing reply (one is a prefix of the other, ending at a word boundary)",
            "t.jsonl:4: field 'rejected': reply after the shared prompt is whitespace-only",
            "t.jsonl:5: chosen and rejected are identical",
        ])
        do {
            _ = try parse(lines)
        } catch {
            XCTAssertTrue(error.description.hasPrefix("t.jsonl: 4 bad rows\n"), error.description)
        }
        let kept = try parse(lines, skipInvalid: true)
        XCTAssertEqual(kept.comparisons, [Comparison(userID: "u1", prompt: "A:", chosen: "yes", rejected: "no")])
        XCTAssertEqual(kept.skipped, 4)
        XCTAssertEqual(kept.issues.map(\.line), [2, 3, 4, 5])
    }

    func testLayoutIsDecidedByTheWholeFile() throws {
        // One row with a prompt makes every row need one: a typo must not silently switch layouts.
        let lines = [try promptFreeRow("A: yes", "A: no"), good, try promptFreeRow("A: x", "A: y")]
        XCTAssertEqual(issues(lines), [
            "t.jsonl:1: field 'prompt': missing (line 2 has one, so this file is not in the prompt-free layout)",
            "t.jsonl:3: field 'prompt': missing (line 2 has one, so this file is not in the prompt-free layout)",
        ])
    }

    // MARK: - Users

    func testUserInfo() throws {
        let dataset = try parse([
            #"{"user_id": "u1", "prompt": "p", "chosen": "a", "rejected": "b", "user_info": "age 30-40; likes brevity"}"#,
            #"{"user_id": "u2", "prompt": "p", "chosen": "a", "rejected": "b", "user_info": null}"#,
            #"{"user_id": "u3", "prompt": "p", "chosen": "a", "rejected": "b"}"#,
            #"{"user_id": "u4", "prompt": "p", "chosen": "a", "rejected": "b", "user_info": "  "}"#,
        ])
        XCTAssertEqual(dataset.comparisons.map(\.userInfo), ["age 30-40; likes brevity", nil, nil, nil])
        XCTAssertEqual(singleIssue(#"{"user_id": "u", "prompt": "p", "chosen": "a", "rejected": "b", "user_info": 7}"#),
                       "t.jsonl:3: field 'user_info': expected a string or null, got number")
        XCTAssertEqual(singleIssue(#"{"user_id": "u", "prompt": "p", "chosen": "a", "rejected": "b", "user_info": ["x"]}"#),
                       "t.jsonl:3: field 'user_info': expected a string or null, got array")
    }

    func testDefaultUser() throws {
        let anonymous = [#"{"prompt": "p", "chosen": "a", "rejected": "b"}"#, #"{"prompt": "q", "chosen": "c", "rejected": "d"}"#]
        let dataset = try parse(anonymous, defaultUser: "alice")
        XCTAssertEqual(dataset.comparisons.map(\.userID), ["alice", "alice"])
        XCTAssertEqual(dataset.userIDs, ["alice"])
        // Without it, every row says what is missing and how to fix it.
        XCTAssertEqual(issues(anonymous), [1, 2].map {
            "t.jsonl:\($0): field 'user_id': missing (no row has one; pass defaultUser to give every row the same user)"
        })
        // The default only applies when no row has a user: a partly anonymous file is an error.
        XCTAssertEqual(issues([good, anonymous[0]], defaultUser: "alice"), ["t.jsonl:2: field 'user_id': missing"])
        // Rows that all have users ignore the default.
        XCTAssertEqual(try parse([good], defaultUser: "alice").comparisons.map(\.userID), ["u1"])
        XCTAssertEqual(issues(anonymous, defaultUser: " "), ["t.jsonl: defaultUser is empty or whitespace-only"])
    }

    // MARK: - Bad rows, one at a time

    func testInvalidJSON() {
        let unterminated = #"{"user_id": "u", "prompt": "p", "chosen": "a", "rejected": "b""#
        XCTAssertEqual(singleIssue(unterminated),
                       "t.jsonl:3: invalid JSON at byte \(unterminated.utf8.count + 1): unexpected end of line, expected ',' or '}'")
        let trailingComma = #"{"user_id": "u", "prompt": "p", "chosen": "a", "rejected": "b",}"#
        XCTAssertEqual(singleIssue(trailingComma),
                       "t.jsonl:3: invalid JSON at byte \(bytePosition(of: ",}", in: trailingComma) + 1): unexpected '}', expected a key in double quotes")
        let smartQuotes = "{\u{201C}user_id\u{201D}: \"u\"}"
        XCTAssertEqual(singleIssue(smartQuotes),
                       "t.jsonl:3: invalid JSON at byte 2: unexpected '\u{201C}' (U+201C), expected a key in double quotes")
        let singleQuotes = "{'user_id': 'u'}"
        XCTAssertEqual(singleIssue(singleQuotes), "t.jsonl:3: invalid JSON at byte 2: unexpected ''', expected a key in double quotes")
        let twoObjects = #"{"user_id": "u"} {"x": 1}"#
        XCTAssertEqual(singleIssue(twoObjects), "t.jsonl:3: invalid JSON at byte 18: unexpected '{' after the value")
        let badEscape = #"{"user_id": "u", "prompt": "a\x", "chosen": "a", "rejected": "b"}"#
        XCTAssertEqual(singleIssue(badEscape),
                       "t.jsonl:3: invalid JSON at byte \(bytePosition(of: #"\x"#, in: badEscape)): invalid escape '\\x' in a string")
        let loneSurrogate = #"{"user_id": "u", "prompt": "\ud800", "chosen": "a", "rejected": "b"}"#
        XCTAssertEqual(singleIssue(loneSurrogate),
                       "t.jsonl:3: invalid JSON at byte \(bytePosition(of: #"\ud800"#, in: loneSurrogate)): unpaired surrogate \\uD800 in a string")
        let lowFirst = #"{"user_id": "u", "prompt": "\udc00\ud800", "chosen": "a", "rejected": "b"}"#
        XCTAssertEqual(singleIssue(lowFirst),
                       "t.jsonl:3: invalid JSON at byte \(bytePosition(of: #"\udc00"#, in: lowFirst)): unpaired surrogate \\uDC00 in a string")
        let rawTab = "{\"user_id\": \"u\", \"prompt\": \"a\tb\", \"chosen\": \"a\", \"rejected\": \"b\"}"
        XCTAssertEqual(singleIssue(rawTab),
                       "t.jsonl:3: invalid JSON at byte \(bytePosition(of: "\t", in: rawTab)): unescaped control character U+0009 in a string")
        for number in ["01", "1.", "-", ".5", "1e", "+1", "NaN", "0x10"] {
            let line = #"{"user_id": "u", "prompt": "p", "chosen": "a", "rejected": "b", "score": \#(number)}"#
            XCTAssertTrue(singleIssue(line).hasPrefix("t.jsonl:3: invalid JSON at byte"), number)
        }
        let badLiteral = #"{"user_id": "u", "prompt": "p", "chosen": "a", "rejected": "b", "ok": tru}"#
        XCTAssertEqual(singleIssue(badLiteral),
                       "t.jsonl:3: invalid JSON at byte \(bytePosition(of: "tru}", in: badLiteral)): unexpected 't', expected a value")
        // Deep nesting in an ignored field is refused, not a stack overflow.
        let deep = #"{"user_id": "u", "prompt": "p", "chosen": "a", "rejected": "b", "x": "#
            + String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000) + "}"
        XCTAssertTrue(singleIssue(deep).hasSuffix("nested deeper than 512 levels"))
    }

    func testTopLevelNotAnObject() {
        XCTAssertEqual(singleIssue(#"["u", "p", "a", "b"]"#), "t.jsonl:3: top level is an array, expected an object")
        XCTAssertEqual(singleIssue(#""just text""#), "t.jsonl:3: top level is a string, expected an object")
        XCTAssertEqual(singleIssue("42"), "t.jsonl:3: top level is a number, expected an object")
        XCTAssertEqual(singleIssue("null"), "t.jsonl:3: top level is null, expected an object")
        XCTAssertEqual(singleIssue("false"), "t.jsonl:3: top level is a boolean, expected an object")
    }

    func testMissingFieldsAndWrongTypes() {
        XCTAssertEqual(singleIssue(#"{"user_id": "u", "prompt": "p", "rejected": "b"}"#, at: 2),
                       "t.jsonl:2: field 'chosen': missing")
        XCTAssertEqual(singleIssue(#"{"user_id": "u", "prompt": "p", "chosen": "a"}"#, at: 4),
                       "t.jsonl:4: field 'rejected': missing")
        XCTAssertEqual(singleIssue(#"{"user_id": "u", "prompt": "p", "chosen": 3, "rejected": "b"}"#),
                       "t.jsonl:3: field 'chosen': expected a string, got number")
        XCTAssertEqual(singleIssue(#"{"user_id": "u", "prompt": "p", "chosen": "a", "rejected": true}"#),
                       "t.jsonl:3: field 'rejected': expected a string, got boolean")
        XCTAssertEqual(singleIssue(#"{"user_id": "u", "prompt": null, "chosen": "a", "rejected": "b"}"#),
                       "t.jsonl:3: field 'prompt': expected a string or a list of {\"role\", \"content\"} messages, got null")
        XCTAssertEqual(singleIssue(#"{"user_id": 17, "prompt": "p", "chosen": "a", "rejected": "b"}"#),
                       "t.jsonl:3: field 'user_id': expected a string, got number")
        XCTAssertEqual(singleIssue(#"{"user_id": "u", "prompt": "p", "chosen": {"text": "a"}, "rejected": "b"}"#),
                       "t.jsonl:3: field 'chosen': expected a string, got object")
        XCTAssertEqual(singleIssue(#"{"user_id": "u", "prompt": "p", "chosen": "a", "rejected": "b", "chosen": "c"}"#),
                       "t.jsonl:3: field 'chosen': given more than once")
        // Several problems in one row are all reported, in field order.
        XCTAssertEqual(issues([good, #"{"prompt": 1, "user_id": "u"}"#]), [
            "t.jsonl:2: field 'prompt': expected a string or a list of {\"role\", \"content\"} messages, got number",
            "t.jsonl:2: field 'chosen': missing",
            "t.jsonl:2: field 'rejected': missing",
        ])
    }

    func testEmptyTextsAndIdenticalReplies() throws {
        XCTAssertEqual(singleIssue(#"{"user_id": "u", "prompt": "p", "chosen": "", "rejected": "b"}"#),
                       "t.jsonl:3: field 'chosen': empty")
        XCTAssertEqual(singleIssue(#"{"user_id": "u", "prompt": "p", "chosen": "a", "rejected": " \n\t\u3000"}"#),
                       "t.jsonl:3: field 'rejected': whitespace-only")
        XCTAssertEqual(singleIssue(#"{"user_id": "", "prompt": "p", "chosen": "a", "rejected": "b"}"#),
                       "t.jsonl:3: field 'user_id': empty")
        XCTAssertEqual(singleIssue(#"{"user_id": "worker-1 ", "prompt": "p", "chosen": "a", "rejected": "b"}"#),
                       #"t.jsonl:3: field 'user_id': leading or trailing whitespace in "worker-1 ""#)
        XCTAssertEqual(singleIssue(#"{"user_id": "u", "prompt": "p", "chosen": "same", "rejected": "same"}"#),
                       "t.jsonl:3: chosen and rejected are identical")
        // An empty (or blank) prompt is allowed: a comparison of two free-standing texts.
        let dataset = try parse([#"{"user_id": "u", "prompt": "", "chosen": "a", "rejected": "b"}"#,
                                 #"{"user_id": "u", "prompt": " ", "chosen": "a", "rejected": "b"}"#])
        XCTAssertEqual(dataset.comparisons.map(\.prompt), ["", " "])
    }

    func testUnknownFieldsAreIgnored() throws {
        let dataset = try parse([
            #"{"id": 7, "user_id": "u", "meta": {"a": [1, -2.5e-3, true, false, null, "x\u00e9\/"], "b": {}}, "prompt": "p", "chosen": "a", "rejected": "b", "tags": []}"#,
        ])
        XCTAssertEqual(dataset.comparisons, [Comparison(userID: "u", prompt: "p", chosen: "a", rejected: "b")])
    }

    // MARK: - Lines

    func testBlankLinesBOMAndCRLF() throws {
        let text = "\u{FEFF}" + good + "\r\n\r\n   \t\r\n" + #"{"user_id": "u2", "prompt": "q", "chosen": "c", "rejected": "d"}"# + "\r\n\n"
        let dataset = try PreferenceDataset.parse(Data(text.utf8), name: fileName)
        XCTAssertEqual(dataset.comparisons.map(\.userID), ["u1", "u2"])
        XCTAssertEqual(dataset.comparisons[1].rejected, "d")
        // Line numbers count blank lines; a byte-order mark anywhere but the start is bad JSON.
        let late = good + "\n\n" + "\u{FEFF}" + good + "\n"
        do {
            _ = try PreferenceDataset.parse(Data(late.utf8), name: fileName)
            XCTFail("a BOM on line 3 must be rejected")
        } catch {
            XCTAssertEqual(error.issues.map(\.description),
                           ["t.jsonl:3: invalid JSON at byte 1: unexpected '\u{FEFF}' (U+FEFF), expected a value"])
        }
        // The last line needs no newline; CRLF inside JSON strings is data, kept as is.
        let last = try parse([#"{"user_id": "u", "prompt": "p\r\n", "chosen": "a", "rejected": "b"}"#])
        XCTAssertEqual(last.comparisons.first?.prompt, "p\r\n")
    }

    func testInvalidUTF8IsCaughtWithItsLine() throws {
        let directory = try TestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let url = directory.appendingPathComponent("bytes.jsonl")
        let prefix = Array(#"{"user_id": "u", "prompt": "p"#.utf8)
        let suffix = Array(#"", "chosen": "a", "rejected": "b"}"#.utf8)
        func line(_ bytes: [UInt8]) -> [UInt8] { prefix + bytes + suffix + [Byte.newline] }
        var file: [UInt8] = []
        file += line(Array("fine".utf8))                      // 1
        file += line([0x61, 0xFF, 0x62])                      // 2: never valid
        file += [Byte.newline]                                // 3: blank
        file += line(Array("é".utf8))                         // 4: fine
        file += line([0xC0, 0xAF])                            // 5: overlong '/'
        file += line([0xED, 0xA0, 0x80])                      // 6: encoded surrogate U+D800
        file += line([0x20, 0xE2, 0x82])                      // 7: truncated € before the quote
        file += line([0xF4, 0x90, 0x80, 0x80])                // 8: above U+10FFFF
        file += line(Array("😀".utf8))                        // 9: fine
        try Data(file).write(to: url)
        let at = prefix.count + 1
        do {
            _ = try PreferenceDataset.load(url)
            XCTFail("invalid UTF-8 must be rejected")
        } catch {
            XCTAssertEqual(error.issues.map(\.description), [
                "\(url.relativePath):2: invalid UTF-8 at byte \(at + 1)",
                "\(url.relativePath):5: invalid UTF-8 at byte \(at)",
                "\(url.relativePath):6: invalid UTF-8 at byte \(at)",
                "\(url.relativePath):7: invalid UTF-8 at byte \(at + 1)",
                "\(url.relativePath):8: invalid UTF-8 at byte \(at)",
            ])
        }
        let kept = try PreferenceDataset.load(url, skipInvalid: true)
        XCTAssertEqual(kept.comparisons.map(\.prompt), ["pfine", "pé", "p😀"])
        XCTAssertEqual(kept.skipped, 5)
    }

    /// Random byte strings inside a JSON string: valid exactly when the standard library says so,
    /// and decoded to the same text.
    func testUTF8ValidationAgreesWithStandardLibrary() throws {
        var random = SystemRandomNumberGenerator()
        // Lead bytes, continuation bytes, edge values and plain letters, so short strings hit every branch.
        let alphabet: [UInt8] = [0x61, 0x7A, 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC0, 0xC1, 0xC2, 0xDF,
                                 0xE0, 0xE1, 0xEC, 0xED, 0xEE, 0xEF, 0xF0, 0xF1, 0xF3, 0xF4, 0xF5, 0xFF]
        var valid = 0
        for trial in 0..<3000 {
            let bytes = (0..<Int.random(in: 1...6, using: &random)).map { _ in alphabet.randomElement(using: &random) ?? 0x61 }
            let line = Array(#"{"user_id": "u", "prompt": ""#.utf8) + bytes + Array(#"", "chosen": "a", "rejected": "b"}"#.utf8)
            let reference = String(validating: bytes, as: UTF8.self)
            do {
                let dataset = try PreferenceDataset.parse(Data(line), name: fileName)
                XCTAssertEqual(dataset.comparisons.first?.prompt, reference, "trial \(trial): \(bytes)")
                valid += 1
            } catch {
                XCTAssertNil(reference, "trial \(trial): \(bytes) rejected: \(error)")
                XCTAssertTrue(error.description.contains("invalid UTF-8 at byte"), error.description)
            }
        }
        XCTAssertGreaterThan(valid, 40)  // both outcomes were exercised (about 80 valid expected)
    }

    /// Strings written by Foundation's encoder and by an encoder that escapes every scalar as
    /// `\uXXXX` (surrogate pairs above the BMP) must come back unchanged.
    func testStringDecodingRoundTrips() throws {
        var random = SystemRandomNumberGenerator()
        let pieces: [String] = ["a", " ", "\"", "\\", "/", "\n", "\r", "\t", "\u{0}", "\u{1F}", "\u{7F}", "é", "e\u{301}",
                                "\u{2028}", "’", "漢", "😀", "👩‍👩‍👧", "\u{FEFF}", "\u{FFFF}", "\u{10FFFF}"]
        func escapeAll(_ text: String) -> String {
            "\"" + text.utf16.map { "\\u" + String(format: "%04x", $0) }.joined() + "\""
        }
        var lines: [String] = [], expected: [String] = []
        for trial in 0..<400 {
            let text = "x" + (0..<Int.random(in: 0...12, using: &random)).map { _ in pieces.randomElement(using: &random) ?? "a" }.joined()
            let literal = trial.isMultiple(of: 2) ? try json(text) : escapeAll(text)
            // The hand-written encoder is itself checked against Foundation's decoder. (Not against
            // JSONSerialization: on Linux it drops a raw U+FEFF that starts a string or follows an escape.)
            XCTAssertEqual(try JSONDecoder().decode(String.self, from: Data(literal.utf8)), text)
            lines.append(#"{"user_id": "u", "prompt": "#  + literal + #", "chosen": "a", "rejected": "b"}"#)
            expected.append(text)
        }
        let dataset = try parse(lines)
        XCTAssertEqual(dataset.comparisons.map(\.prompt), expected)
        for (got, want) in zip(dataset.comparisons.map(\.prompt), expected) {
            XCTAssertEqual(Array(got.unicodeScalars), Array(want.unicodeScalars))  // exact scalars, not just equivalent
        }
    }

    // MARK: - Whole files

    func testAllBadLinesAreListed() throws {
        var lines: [String] = []
        var badLines: [Int] = []
        for index in 1...60 {
            if index % 2 == 0 {
                lines.append(#"{"user_id": "u\#(index)", "prompt": "p", "chosen": \#(index), "rejected": "b"}"#)
                badLines.append(index)
            } else {
                lines.append(#"{"user_id": "u\#(index)", "prompt": "p", "chosen": "a", "rejected": "b"}"#)
            }
        }
        lines[59] = #"{"user_id": "u60"}"#  // two issues in one row
        do {
            _ = try parse(lines)
            XCTFail("bad rows must throw")
        } catch {
            XCTAssertEqual(error.issues.map(\.line), badLines.dropLast() + [60, 60])
            XCTAssertEqual(error.badRows, 30)
            let description = error.description.split(separator: "\n", omittingEmptySubsequences: false)
            XCTAssertEqual(description.first, "t.jsonl: 30 bad rows")
            XCTAssertEqual(description.count, 1 + DataError.listedIssues + 1)
            XCTAssertEqual(description[1], "  t.jsonl:2: field 'chosen': expected a string, got number")
            XCTAssertEqual(description.last, "  … and 11 more")
        }
        let kept = try parse(lines, skipInvalid: true)
        XCTAssertEqual(kept.comparisons.count, 30)
        XCTAssertEqual(kept.skipped, 30)
        XCTAssertEqual(kept.issues.count, 31)
        XCTAssertEqual(kept.comparisons.map(\.userID), stride(from: 1, to: 60, by: 2).map { "u\($0)" })
    }

    func testMissingEmptyAndAllBadFiles() throws {
        let directory = try TestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        func loadError(_ url: URL, skipInvalid: Bool = false) -> String {
            do {
                _ = try PreferenceDataset.load(url, skipInvalid: skipInvalid)
                XCTFail("\(url.path) must not load")
                return ""
            } catch {
                return error.description
            }
        }
        let missing = directory.appendingPathComponent("missing.jsonl")
        XCTAssertEqual(loadError(missing), "\(missing.relativePath): no such file")
        XCTAssertEqual(loadError(directory), "\(directory.relativePath): is a directory, expected a JSONL file")
        let empty = directory.appendingPathComponent("empty.jsonl")
        try Data().write(to: empty)
        XCTAssertEqual(loadError(empty), "\(empty.relativePath): no comparisons: the file is empty")
        try Data("\n  \n\r\n".utf8).write(to: empty)
        XCTAssertEqual(loadError(empty), "\(empty.relativePath): no comparisons: the file has only blank lines")
        let bad = directory.appendingPathComponent("bad.jsonl")
        try Data("[]\n{}\n".utf8).write(to: bad)
        XCTAssertEqual(loadError(bad, skipInvalid: true), """
            \(bad.relativePath): 2 bad rows
              \(bad.relativePath): no comparisons: all 2 rows are invalid
              \(bad.relativePath):1: top level is an array, expected an object
              \(bad.relativePath):2: field 'chosen': missing
              \(bad.relativePath):2: field 'rejected': missing
            """)
    }

    /// Lines longer than the 1 MiB read chunk and lines straddling chunk boundaries read the same
    /// from a file as from memory.
    func testChunkBoundaries() throws {
        let directory = try TestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        var text = ""
        for index in 0..<3000 {
            let reply = String(repeating: "word\(index % 10) ", count: 40 + index % 7)
            text += #"{"user_id": "u\#(index % 13)", "prompt": "p\#(index)", "chosen": "\#(reply)", "rejected": "r"}"# + "\n"
            if index == 1500 {
                text += #"{"user_id": "big", "prompt": "", "chosen": "\#(String(repeating: "z", count: 2_500_000))", "rejected": "r"}"# + "\n"
            }
        }
        let url = directory.appendingPathComponent("big.jsonl")
        try Data(text.utf8).write(to: url)
        let fromFile = try PreferenceDataset.load(url)
        let fromMemory = try PreferenceDataset.parse(Data(text.utf8), name: "big.jsonl")
        XCTAssertEqual(fromFile.comparisons.count, 3001)
        XCTAssertEqual(fromFile.comparisons, fromMemory.comparisons)
        XCTAssertEqual(fromFile.comparisons(for: "big").first?.chosen.utf8.count, 2_500_000)
        XCTAssertEqual(fromFile.comparisons[2999].prompt, "p2998")
        XCTAssertEqual(fromFile.userIDs.count, 14)
    }

    // MARK: - Split

    func testSplitKeepsEachUsersShare() throws {
        let train = try PreferenceDataset.load(TestSupport.lengthprefDirectory.appendingPathComponent("train.jsonl"))
        let (a, b) = train.split(validationFraction: 0.25, seed: 7)
        let (a2, b2) = train.split(validationFraction: 0.25, seed: 7)
        XCTAssertEqual(a.comparisons, a2.comparisons)
        XCTAssertEqual(b.comparisons, b2.comparisons)
        XCTAssertEqual(a.comparisons.count + b.comparisons.count, train.comparisons.count)
        for user in train.userIDs {
            let n = train.comparisons(for: user).count
            XCTAssertEqual(b.comparisons(for: user).count, Int((0.25 * Double(n)).rounded()), user)
        }
        // Both halves keep file order, and together they are the original rows.
        let position = Dictionary(train.comparisons.enumerated().map { ($0.element.prompt + "\u{0}" + $0.element.chosen + "\u{0}" + $0.element.userID, $0.offset) },
                                  uniquingKeysWith: { first, _ in first })
        for half in [a, b] {
            let order = half.comparisons.compactMap { position[$0.prompt + "\u{0}" + $0.chosen + "\u{0}" + $0.userID] }
            XCTAssertEqual(order.count, half.comparisons.count)
            XCTAssertEqual(order, order.sorted())
        }
        XCTAssertNotEqual(train.split(validationFraction: 0.25, seed: 8).dev.comparisons, b.comparisons)
        XCTAssertTrue(train.split(validationFraction: 0, seed: 1).dev.comparisons.isEmpty)
        XCTAssertTrue(train.split(validationFraction: 1, seed: 1).train.comparisons.isEmpty)
    }

    func testPromptSplitHoldsBackWholePrompts() throws {
        let train = try PreferenceDataset.load(TestSupport.repoRoot.appendingPathComponent("data/stylepref/train.jsonl"))
        let prompts = Set(train.comparisons.map(\.prompt))
        let (a, b) = train.split(validationFraction: 0.2, by: .prompts, seed: 7)
        XCTAssertEqual(b.comparisons, train.split(validationFraction: 0.2, by: .prompts, seed: 7).dev.comparisons)
        XCTAssertEqual(a.comparisons.count + b.comparisons.count, train.comparisons.count)
        let heldPrompts = Set(b.comparisons.map(\.prompt)), keptPrompts = Set(a.comparisons.map(\.prompt))
        XCTAssertEqual(heldPrompts.count, Int((0.2 * Double(prompts.count)).rounded()))
        XCTAssertTrue(heldPrompts.isDisjoint(with: keptPrompts), "a held-back prompt is also trained on")
        // stylepref's annotators judge the same pairs: a comparison split shares prompts, this one may not.
        let (c, d) = train.split(validationFraction: 0.2, seed: 7)
        XCTAssertFalse(Set(d.comparisons.map(\.prompt)).isDisjoint(with: Set(c.comparisons.map(\.prompt))))
        XCTAssertNotEqual(train.split(validationFraction: 0.2, by: .prompts, seed: 8).dev.comparisons, b.comparisons)
    }
}

private enum Byte {
    static let newline = UInt8(ascii: "\n")
}

/// Prompts given as chat messages are written out by the data's template, detected or given.
final class MessagePromptDataTests: XCTestCase {
    let rows = [
        #"{"user_id": "a", "prompt": [{"role": "system", "content": "Be kind."}, {"role": "user", "content": "Hi"}], "chosen": "Hello!", "rejected": "What?"}"#,
        #"{"user_id": "a", "prompt": "Human: Bye\n\nAssistant:", "chosen": "Goodbye!", "rejected": "Go."}"#,
    ]

    func testMessagePromptsAreWrittenInTheDetectedTemplate() throws {
        let data = try PreferenceDataset.parse(Data(rows.joined(separator: "\n").utf8), name: "m.jsonl")
        XCTAssertEqual(data.template, .hh)
        XCTAssertEqual(data.hhShare, 1)
        XCTAssertEqual(data.comparisons.map(\.prompt), ["Human: Hi\n\nAssistant:", "Human: Bye\n\nAssistant:"])
        let plain = try PreferenceDataset.parse(Data(rows.joined(separator: "\n").utf8), name: "m.jsonl", template: .plain)
        XCTAssertEqual(plain.comparisons.first?.prompt, "Hi")
        let untagged = [rows[0], #"{"user_id": "a", "prompt": "Bye", "chosen": "Goodbye!", "rejected": "Go."}"#]
        let detected = try PreferenceDataset.parse(Data(untagged.joined(separator: "\n").utf8), name: "m.jsonl")
        XCTAssertEqual(detected.template, .plain, "half the prompts in hh turns is below the 90% that makes hh")
        XCTAssertEqual(detected.hhShare, 0.5)
    }

    func testBadMessagesAreDataIssuesNamingTheField() {
        let bad = #"{"user_id": "a", "prompt": [{"role": "robot", "content": "Hi"}], "chosen": "Hello!", "rejected": "What?"}"#
        XCTAssertThrowsError(try PreferenceDataset.parse(Data(bad.utf8), name: "m.jsonl")) { error in
            XCTAssertTrue("\(error)".contains("'prompt[0].role' is 'robot', an unknown role"), "\(error)")
        }
        let user = #"{"user_id": "a", "prompt": "p", "chosen": "Hello!", "rejected": "What?", "user_info": ["x"]}"#
        XCTAssertThrowsError(try PreferenceDataset.parse(Data(user.utf8), name: "m.jsonl")) { error in
            XCTAssertTrue("\(error)".contains("expected a string or null, got array"), "\(error)")
        }
    }
}
