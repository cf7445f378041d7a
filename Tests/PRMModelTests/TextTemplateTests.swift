import Foundation
import XCTest
import PRMCore
@testable import PRMModel

/// How chat messages become a checkpoint's text, how a training set's template is detected, and
/// that checkpoints written before templates existed load and save as before.
final class TextTemplateTests: XCTestCase {
    let dialogue = [ChatMessage(role: .system, content: "You are terse."), ChatMessage(role: .user, content: "Hi"),
                    ChatMessage(role: .assistant, content: "Hello!"), ChatMessage(role: .user, content: "Dinner idea?")]

    func testHHWritesHumanAndAssistantTurnsAndLeavesSystemMessagesOut() {
        // The same text protocols/python's render_prompt wrote (tests/test_trl.py pins it there).
        XCTAssertEqual(TextTemplate.hh.prompt(dialogue), "Human: Hi\n\nAssistant: Hello!\n\nHuman: Dinner idea?\n\nAssistant:")
        XCTAssertEqual(TextTemplate.hh.prompt(.messages([ChatMessage(role: .user, content: "Hi")])), "Human: Hi\n\nAssistant:")
        XCTAssertEqual(TextTemplate.hh.prompt(.text("as sent")), "as sent", "a string is scored as sent")
        XCTAssertEqual(TextTemplate.hh.reply(.messages([ChatMessage(role: .assistant, content: "Soup.")])), "Soup.")
    }

    func testPlainJoinsTheContents() {
        XCTAssertEqual(TextTemplate.plain.prompt(dialogue), "Hi\n\nHello!\n\nDinner idea?")
        XCTAssertEqual(TextTemplate.plain.reply(.text("Soup.")), "Soup.")
    }

    func testFollowsChecksTheTurnStructure() {
        XCTAssertTrue(TextTemplate.hh.follows("Human: Hi\n\nAssistant:"))
        XCTAssertTrue(TextTemplate.hh.follows("\n\nHuman: Hi\n\nAssistant: Hello\n\nHuman: More?\n\nAssistant: "))
        XCTAssertFalse(TextTemplate.hh.follows("Hi"))
        XCTAssertFalse(TextTemplate.hh.follows("Human: Hi"), "no Assistant: tag for the reply to answer")
        XCTAssertTrue(TextTemplate.hh.follows("Human: Hi\\n\\nAssistant:"), "shell-escaped text has the tags: counted as hh, scored as sent")
        XCTAssertTrue(TextTemplate.plain.follows("anything"))
    }

    func testDetectionGoesByTheShareOfHHPrompts() {
        let hh = ChatText.text("Human: Hi\n\nAssistant:"), plain = ChatText.text("Hi")
        let mostly = TextTemplate.detect(Array(repeating: hh, count: 9) + [plain])
        XCTAssertEqual(mostly, TemplateDetection(template: .hh, hhShare: 0.9))
        XCTAssertEqual(TextTemplate.detect(Array(repeating: hh, count: 8) + [plain, plain]).template, .plain)
        XCTAssertEqual(TextTemplate.detect([.messages(dialogue), plain]).hhShare, 0.5, "messages count as hh turns")
        XCTAssertEqual(TextTemplate.detect([ChatText]()).template, .plain)
    }

    func testConfigWithoutTheKeyIsHHAndSavesWithoutIt() throws {
        let old = #"{"aggregator":"linear-head","max_length":32,"user_model":{"clusters":10,"kind":"individual","shared_generic":true,"user_tokens":1,"users":2}}"#
        let config = try JSONDecoder().decode(RewardModelConfig.self, from: Data(old.utf8))
        XCTAssertEqual(config.template, .hh)
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        let saved = try encoder.encode(config)
        XCTAssertFalse(String(decoding: saved, as: UTF8.self).contains("template"), "saved as before: no template key")
        XCTAssertEqual(try encoder.encode(JSONDecoder().decode(RewardModelConfig.self, from: saved)), saved)
        var plain = config
        plain.template = .plain
        let written = try encoder.encode(plain)
        XCTAssertTrue(String(decoding: written, as: UTF8.self).contains(#""template":"plain""#))
        XCTAssertEqual(try JSONDecoder().decode(RewardModelConfig.self, from: written), plain)
    }

    func testMessagesFromJSONNameWhatWasWrong() throws {
        func prompt(_ json: String) throws(ModelError) -> ChatText {
            guard let value = try? JSONReader.parse(Array(json.utf8)) else { throw ModelError("bad test JSON") }
            return try ChatText.prompt(value, field: "prompt")
        }
        XCTAssertEqual(try prompt(#"[{"role":"user","content":"Hi"}]"#), .messages([ChatMessage(role: .user, content: "Hi")]))
        for (json, fragment) in [("[]", "'prompt' is an empty list"), (#"[{"role":"tool","content":"4"}]"#, "'prompt[0].role' is 'tool', an unknown role"),
                                 (#"[{"role":"user"}]"#, "missing field 'prompt[0].content'"), (#"[{"role":"user","content":[]}]"#, "'prompt[0].content' must be a string, got array"),
                                 ("true", "must be a string or a list")] {
            XCTAssertThrowsError(try prompt(json)) { error in
                XCTAssertTrue("\(error)".contains(fragment), "'\(error)' lacks '\(fragment)'")
            }
        }
    }
}
