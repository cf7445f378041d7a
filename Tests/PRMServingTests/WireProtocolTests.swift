import Foundation
import XCTest
import PRMCore
import PRMModel
@testable import PRMServing

/// Request validation and reply encoding of protocol v1, without sockets: each malformed class
/// gets its stable code and a message naming the field.
final class WireProtocolTests: XCTestCase {
    static let limits: ServerLimits = {
        var l = ServerLimits()
        l.maxCandidates = 4
        l.maxMessageBytes = 2_000
        return l
    }()

    func parse(_ text: String) throws(WireError) -> WireRequest { try WireRequest.parse(Array(text.utf8), limits: Self.limits) }

    func assertError(_ body: [UInt8], _ code: ErrorCode, id: JSONValue?, mentioning fragment: String,
                     file: StaticString = #filePath, line: UInt = #line) {
        do {
            let request = try WireRequest.parse(body, limits: Self.limits)
            XCTFail("accepted \(String(decoding: body, as: UTF8.self).prefix(200)) as \(request.operation)", file: file, line: line)
        } catch {
            XCTAssertEqual(error.code, code, "\(error)", file: file, line: line)
            XCTAssertEqual(error.id, id, "\(error)", file: file, line: line)
            XCTAssertTrue(error.message.contains(fragment), "'\(error.message)' lacks '\(fragment)'", file: file, line: line)
        }
    }

    func assertError(_ text: String, _ code: ErrorCode, id: JSONValue?, mentioning fragment: String,
                     file: StaticString = #filePath, line: UInt = #line) {
        assertError(Array(text.utf8), code, id: id, mentioning: fragment, file: file, line: line)
    }

    let seven = JSONValue.number(JSONNumber(7))

    func testValidRequests() throws {
        let rank = try parse(#"{"v":1,"id":7,"op":"rank","user_id":"u","prompt":"p","candidates":["a","b"],"top_k":1,"deadline_ms":50,"extra":{"x":[1]}}"#)
        XCTAssertEqual(rank.id, seven)
        XCTAssertEqual(rank.deadlineMs, 50)
        guard case .rank(let request, let topK) = rank.body else { return XCTFail() }
        XCTAssertEqual(request.user, "u"); XCTAssertNil(request.userInfo); XCTAssertEqual(request.prompt, .text("p"))
        XCTAssertEqual(request.candidates, [.text("a"), .text("b")]); XCTAssertEqual(topK, 1)
        XCTAssertEqual(rank.items.map(\.response), [.text("a"), .text("b")])
        let score = try parse(#"{"v":1,"id":"s","op":"score","items":[{"prompt":"p","response":"r","user_id":null,"user_info":"i"}]}"#)
        XCTAssertEqual(score.items.first?.userInfo, "i")
        XCTAssertNil(score.items.first?.userID)
        for op in ["info", "health", "metrics"] { XCTAssertEqual(try parse(#"{"v":1,"id":1,"op":"\#(op)"}"#).operation.rawValue, op) }
    }

    func testEveryMalformedClassHasItsCode() {
        assertError("{bad", .badJSON, id: nil, mentioning: "byte 2")
        assertError(#"{"v":1,"id":1,"id":2,"op":"info"}"#, .badJSON, id: nil, mentioning: "duplicate key 'id'")
        assertError(#"{"v":NaN,"id":1,"op":"info"}"#, .badJSON, id: nil, mentioning: "expected a value")
        assertError(#"{"v":1,"id":1,"op":"rank","top_k":Infinity}"#, .badJSON, id: nil, mentioning: "expected a value")
        assertError(String(repeating: "[", count: 100) + String(repeating: "]", count: 100), .badJSON, id: nil, mentioning: "nested deeper")
        assertError([0x7B, 0xFF, 0x7D], .badUTF8, id: nil, mentioning: "UTF-8")
        assertError(Array(repeating: 0x20, count: 2_001), .tooLarge, id: nil, mentioning: "limit is 2000")
        assertError("[1,2]", .badRequest, id: nil, mentioning: "must be a JSON object, got an array")
        assertError(#""rank""#, .badRequest, id: nil, mentioning: "got a string")
        assertError(#"{"v":1,"op":"info"}"#, .badRequest, id: nil, mentioning: "missing field 'id'")
        assertError(#"{"v":1,"id":{"a":1},"op":"info"}"#, .badRequest, id: nil, mentioning: "'id' must be a string or a number, got object")
        assertError(#"{"v":1,"id":true,"op":"info"}"#, .badRequest, id: nil, mentioning: "got boolean")
        assertError(#"{"id":7,"op":"info"}"#, .badRequest, id: seven, mentioning: "missing field 'v'")
        assertError(#"{"v":"1","id":7,"op":"info"}"#, .badRequest, id: seven, mentioning: "'v' must be a number")
        assertError(#"{"v":2,"id":7,"op":"info"}"#, .unsupportedVersion, id: seven, mentioning: "version 2")
        assertError(#"{"v":1e400,"id":7,"op":"info"}"#, .unsupportedVersion, id: seven, mentioning: "1e400")
        assertError(#"{"v":1,"id":7}"#, .badRequest, id: seven, mentioning: "missing field 'op'")
        assertError(#"{"v":1,"id":7,"op":5}"#, .badRequest, id: seven, mentioning: "'op' must be a string")
        assertError(#"{"v":1,"id":7,"op":"explode"}"#, .unknownOp, id: seven, mentioning: "unknown op 'explode'")
        assertError(#"{"v":1,"id":7,"op":"rank","candidates":["a"]}"#, .badRequest, id: seven, mentioning: "missing field 'prompt'")
        assertError(#"{"v":1,"id":7,"op":"rank","prompt":3,"candidates":["a"]}"#, .badRequest, id: seven, mentioning: "'prompt' must be a string or a list of {\"role\", \"content\"} messages, got number")
        assertError(#"{"v":1,"id":7,"op":"rank","prompt":"p"}"#, .badRequest, id: seven, mentioning: "missing field 'candidates'")
        assertError(#"{"v":1,"id":7,"op":"rank","prompt":"p","candidates":"a"}"#, .badRequest, id: seven, mentioning: "must be a list")
        assertError(#"{"v":1,"id":7,"op":"rank","prompt":"p","candidates":[]}"#, .badRequest, id: seven, mentioning: "'candidates' is empty")
        assertError(#"{"v":1,"id":7,"op":"rank","prompt":"p","candidates":["a",1]}"#, .badRequest, id: seven, mentioning: "'candidates[1]' must be a string or a {\"role\": \"assistant\", \"content\"} message, got number")
        assertError(#"{"v":1,"id":7,"op":"rank","prompt":"p","candidates":["a","b","c","d","e"]}"#, .tooManyCandidates, id: seven,
                    mentioning: "5 entries; the limit is 4")
        assertError(#"{"v":1,"id":7,"op":"rank","prompt":"p","candidates":["a"],"user_id":5}"#, .badRequest, id: seven,
                    mentioning: "'user_id' must be a string or null")
        for k in ["0", "-1", "1.5", "0.0", "1e400", "\"2\"", "[1]"] {
            assertError(#"{"v":1,"id":7,"op":"rank","prompt":"p","candidates":["a"],"top_k":\#(k)}"#, .badRequest, id: seven,
                        mentioning: "'top_k' must be a positive integer")
        }
        for d in ["0", "-5", "1e400", "\"soon\""] {
            assertError(#"{"v":1,"id":7,"op":"info","deadline_ms":\#(d)}"#, .badRequest, id: seven, mentioning: "'deadline_ms' must be a positive number")
        }
        assertError(#"{"v":1,"id":7,"op":"score","items":[{"prompt":"p"}]}"#, .badRequest, id: seven, mentioning: "missing field 'items[0].response'")
        assertError(#"{"v":1,"id":7,"op":"score","items":[{"prompt":"p","response":"r"},7]}"#, .badRequest, id: seven, mentioning: "items[1] must be an object")
        assertError(#"{"v":1,"id":7,"op":"score","items":[{"prompt":"p","response":"r","user_info":[]}]}"#, .badRequest, id: seven,
                    mentioning: "'items[0].user_info' must be a string or null")
    }

    func testChatMessagesAreReadAsPromptsAndReplies() throws {
        let rank = try parse(#"{"v":1,"id":7,"op":"rank","prompt":[{"role":"system","content":"Be brief."},{"role":"user","content":"Hi"}],"candidates":["a",{"role":"assistant","content":"b"}]}"#)
        XCTAssertEqual(rank.items.map(\.prompt), Array(repeating: .messages([ChatMessage(role: .system, content: "Be brief."), ChatMessage(role: .user, content: "Hi")]), count: 2))
        XCTAssertEqual(rank.items.map(\.response), [.text("a"), .messages([ChatMessage(role: .assistant, content: "b")])])
        let score = try parse(#"{"v":1,"id":7,"op":"score","items":[{"prompt":[{"role":"user","content":"Hi"}],"response":{"role":"assistant","content":"Hello"}}]}"#)
        XCTAssertEqual(score.items.first?.response, .messages([ChatMessage(role: .assistant, content: "Hello")]))
    }

    func testBadMessagesNameTheFieldAndWhatWasWrong() {
        func rank(_ prompt: String, _ candidates: String = #"["a"]"#) -> String {
            #"{"v":1,"id":7,"op":"rank","prompt":\#(prompt),"candidates":\#(candidates)}"#
        }
        assertError(rank("[]"), .badRequest, id: seven, mentioning: "field 'prompt' is an empty list of messages")
        assertError(rank(#"[{"role":"user","content":"a"},{"role":"bot","content":"b"}]"#), .badRequest, id: seven,
                    mentioning: "field 'prompt[1].role' is 'bot', an unknown role; expected one of system, user, assistant")
        assertError(rank(#"[{"role":"user"}]"#), .badRequest, id: seven, mentioning: "missing field 'prompt[0].content'")
        assertError(rank(#"[{"content":"a"}]"#), .badRequest, id: seven, mentioning: "missing field 'prompt[0].role'")
        assertError(rank(#"[{"role":"user","content":3}]"#), .badRequest, id: seven, mentioning: "field 'prompt[0].content' must be a string, got number")
        assertError(rank(#"["Hi"]"#), .badRequest, id: seven, mentioning: "field 'prompt[0]' must be a {\"role\", \"content\"} message object, got string")
        assertError(rank(#""p""#, #"["a",{"role":"user","content":"b"}]"#), .badRequest, id: seven,
                    mentioning: "field 'candidates[1].role' is 'user'; a reply is an 'assistant' message")
        assertError(rank(#""p""#, #"[{"role":"assistant","content":null}]"#), .badRequest, id: seven,
                    mentioning: "field 'candidates[0].content' must be a string, got null")
        assertError(#"{"v":1,"id":7,"op":"score","items":[{"prompt":[{"role":"user","content":"a"}],"response":["r"]}]}"#, .badRequest, id: seven,
                    mentioning: "field 'items[0].response' must be a string or a {\"role\": \"assistant\", \"content\"} message, got array")
        assertError(#"{"v":1,"id":7,"op":"score","items":[{"prompt":[{"role":"User","content":"a"}],"response":"r"}]}"#, .badRequest, id: seven,
                    mentioning: "field 'items[0].prompt[0].role' is 'User', an unknown role")
    }

    func testBinaryGarbageNeverGetsPastTheParser() {
        var rng = RandomSource(seed: 17)
        for _ in 0..<2_000 {
            let bytes = (0..<Int(rng.next() % 64)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            do {
                _ = try WireRequest.parse(bytes, limits: Self.limits)
                XCTFail("garbage accepted: \(bytes)")
            } catch {
                XCTAssertTrue([.badJSON, .badUTF8, .badRequest].contains(error.code), "\(error)")
            }
        }
    }

    func testEnvelopes() {
        let id: [UInt8] = [0, 1, 2, 3]
        let body = Array("{}".utf8)
        func check(_ frames: [[UInt8]], route: [[UInt8]], body expected: [UInt8]?, file: StaticString = #filePath, line: UInt = #line) {
            let (envelope, body, problem) = Envelope.split(frames)
            XCTAssertEqual(envelope.route, route, file: file, line: line)
            XCTAssertEqual(body, expected, file: file, line: line)
            XCTAssertEqual(problem == nil, expected != nil, file: file, line: line)
        }
        check([id, [], body], route: [id, []], body: body)                 // REQ
        check([id, body], route: [id], body: body)                         // DEALER, bare
        check([id, [], body], route: [id, []], body: body)                 // DEALER with delimiter
        check([id, Array("hop".utf8), [], body], route: [id, Array("hop".utf8), []], body: body)  // through a broker
        check([id, []], route: [id, []], body: nil)                        // no body
        check([id, [], body, body], route: [id, []], body: nil)            // two bodies
        check([id, Array("a".utf8), Array("b".utf8)], route: [id], body: nil)
    }

    func testRepliesFollowTheSchemaShape() throws {
        let rank = try XCTUnwrap(try JSONReader.parse(WireReply.rank(id: seven, scores: [0.5, 2, 2, -1], topK: 3, knownUser: true, truncated: [3],
                                                                     timing: .init(queueMs: 0.12345, computeMs: 3), fingerprint: "00ff")).object)
        XCTAssertEqual(rank.keys, ["v", "id", "ok", "scores", "order", "known_user", "truncated", "timing", "model_fingerprint"])
        XCTAssertEqual(rank["order"]?.array?.compactMap { $0.number?.integer }, [1, 2, 0], "best first, ties by index, top_k long")
        XCTAssertEqual(rank["timing"]?.object?["queue_ms"]?.number?.value, 0.123)
        let error = try XCTUnwrap(try JSONReader.parse(WireReply.error(WireError(.overloaded, "busy"))).object)
        XCTAssertEqual(error["id"], .null)
        XCTAssertEqual(error["ok"], .bool(false))
        XCTAssertEqual(error["error"]?.object?["code"]?.string, "overloaded")
    }

    /// A score is a number in both reply schemas: a NaN or infinite one makes the reply an
    /// `internal` error naming the item (and keeping the id), never a null.
    func testNonFiniteScoresAreAnInternalErrorNotNull() {
        let (id, timing) = (seven, WireReply.Timing(queueMs: 0, computeMs: 1))
        let replies: [(String, () throws(WireError) -> [UInt8])] = [
            ("score 2 of 3 is nan", { () throws(WireError) in
                try WireReply.rank(id: id, scores: [0.5, .nan, 1], topK: nil, knownUser: true, truncated: [], timing: timing, fingerprint: "") }),
            ("score 1 of 2 is -inf", { () throws(WireError) in
                try WireReply.score(id: id, scores: [-.infinity, 1], knownUser: [true, false], truncated: [], timing: timing, fingerprint: "") }),
        ]
        for (message, reply) in replies {
            do {
                let body = try reply()
                XCTFail("a reply was written: \(String(decoding: body, as: UTF8.self))")
            } catch {
                XCTAssertEqual(error.code, .internal)
                XCTAssertEqual(error.id, seven)
                XCTAssertTrue(error.message.hasPrefix(message), error.message)
            }
        }
    }
}
