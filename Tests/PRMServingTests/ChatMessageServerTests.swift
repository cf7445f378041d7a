import Foundation
import XCTest
import PRMCore
import PRMModel
import PRMScoring
import PRMScoringTestSupport
@testable import PRMServing

/// Chat messages over a real ZeroMQ socket: the server writes them with the checkpoint's template,
/// so a dialogue scores the same as messages or as the text they stand for, and string prompts
/// in another format are counted.
final class ChatMessageServerTests: XCTestCase {
    func serve() throws -> (client: ScoringClient, stop: () -> Void) {
        var settings = ServerSettings()
        settings.bind = "tcp://127.0.0.1:0"
        settings.modelPath = "tiny"
        let running = try BackgroundServer(try ScoringServer(scorer: try TinyScorers.linearHead(), settings: settings))
        let stop: () -> Void = {
            do { try running.stop(timeout: 20) } catch { XCTFail("the server did not drain: \(error)") }
        }
        addTeardownBlock { stop() }
        return (try ScoringClient(endpoint: running.endpoint, timeout: 10, retries: 0), stop)
    }

    static let dialogue = [ChatMessage(role: .system, content: "You are a cook."), ChatMessage(role: .user, content: "Dinner idea?"),
                           ChatMessage(role: .assistant, content: "Pasta?"), ChatMessage(role: .user, content: "Something warmer.")]
    static let rendered = "Human: Dinner idea?\n\nAssistant: Pasta?\n\nHuman: Something warmer.\n\nAssistant:"
    static let replies = ["Soup.", "A hot curry with rice.", "Ice cream."]

    func testMessagesScoreAsTheTextTheyStandFor() throws {
        let (client, stop) = try serve()
        let asText = try client.rank(prompt: Self.rendered, candidates: Self.replies, userID: "ann")
        let asMessages = try client.rank(RankRequest(user: "ann", userInfo: nil, prompt: .messages(Self.dialogue),
                                                     candidates: Self.replies.map { .messages([ChatMessage(role: .assistant, content: $0)]) }))
        XCTAssertEqual(asMessages.scores.count, Self.replies.count)
        for (a, b) in zip(asMessages.scores, asText.scores) { XCTAssertEqual(a, b, accuracy: 1e-6) }
        XCTAssertEqual(asMessages.order, asText.order)
        let model = try XCTUnwrap(client.info()["model"]?.object)
        XCTAssertEqual(model["template"]?.string, "hh")
        let prompts = try XCTUnwrap(client.metrics()["prompts"]?.object)
        XCTAssertEqual(prompts["off_template"]?.number?.integer, 0, "the rendered text and the messages both follow hh")
        _ = try client.rank(prompt: "Dinner idea?", candidates: Self.replies)
        XCTAssertEqual(try client.metrics()["prompts"]?.object?["off_template"]?.number?.integer, 1, "a prompt without a Human: turn is counted")
        stop()
    }

    func testBadMessagesAreRefusedAndTheServerKeepsServing() throws {
        let (client, stop) = try serve()
        let bad = RankRequest(user: nil, userInfo: nil, prompt: .messages([]), candidates: [.text("a")])
        XCTAssertThrowsError(try client.rank(bad)) { error in
            guard case ClientError.server(let code, let message) = error else { return XCTFail("\(error)") }
            XCTAssertEqual(code, ErrorCode.badRequest.rawValue)
            XCTAssertTrue(message.contains("field 'prompt' is an empty list of messages"), message)
        }
        XCTAssertEqual(try client.rank(prompt: Self.rendered, candidates: ["ok"]).scores.count, 1, "the next request is served")
        stop()
    }
}
