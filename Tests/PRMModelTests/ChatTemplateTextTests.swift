import Foundation
import XCTest
import PRMCore
import PRMTestSupport
@testable import PRMModel

/// A model's own chat template as a checkpoint's text template: prompt and reply split where the
/// reply's turn opens (their texts joined are the whole conversation, as jinja renders it), recorded
/// in config.json and read back, Llama-3's trim and bos_token. Ids against transformers:
/// Tests/PRMCLITests/ChatTemplateScoreTests.swift.
final class ChatTemplateTextTests: XCTestCase {
    let templates: [ChatTemplate] = [.chatML(defaultSystem: nil), .chatML(defaultSystem: "Be kind."), .llama3(bos: "<|begin_of_text|>")]
    let dialogue = [ChatMessage(role: .user, content: "Hi"), ChatMessage(role: .assistant, content: "Hello!"),
                    ChatMessage(role: .user, content: "  Dinner idea? ")]

    func testPromptAndReplyJoinToTheWholeConversation() {
        for template in templates {
            let text = TextTemplate.chat(template)
            let reply = ChatMessage(role: .assistant, content: "\nSoup.\u{1F} ")
            XCTAssertEqual(text.prompt(dialogue) + text.reply(.messages([reply])),
                           template.render(dialogue + [reply], addGenerationPrompt: false), "\(template)")
            XCTAssertEqual(text.prompt(dialogue) + template.replyOpening, template.render(dialogue, addGenerationPrompt: true), "\(template)")
        }
    }

    func testLlama3TrimsContentsAndWritesBOSOnce() {
        let text = ChatTemplate.llama3(bos: "<B>").render(dialogue, addGenerationPrompt: true)
        XCTAssertEqual(text, "<B><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\nHello!<|eot_id|>"
                       + "<|start_header_id|>user<|end_header_id|>\n\nDinner idea?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n")
        XCTAssertEqual(ChatTemplate.jinjaTrim("\u{1C}\u{A0} a b\u{2029}\n"), "a b", "Python's str.strip(): White_Space and U+001C…U+001F")
        XCTAssertEqual(ChatTemplate.jinjaTrim("\u{200B}a"), "\u{200B}a", "a zero-width space is not whitespace to Python")
    }

    func testHHStringPromptBecomesTurns() {
        let text = TextTemplate.chat(.chatML(defaultSystem: nil))
        XCTAssertEqual(text.prompt(.text("Human: Hi\n\nAssistant: Hello!\n\nHuman: Dinner idea?\n\nAssistant:")),
                       text.prompt([ChatMessage(role: .user, content: "Hi"), ChatMessage(role: .assistant, content: "Hello!"),
                                    ChatMessage(role: .user, content: "Dinner idea?")]))
        XCTAssertEqual(text.prompt(.text("What now?")), "<|im_start|>user\nWhat now?<|im_end|>\n<|im_start|>")
        XCTAssertTrue(text.follows("anything"))
        XCTAssertTrue(text.writesSpecialTokens)
        XCTAssertFalse(TextTemplate.plain.writesSpecialTokens)
    }

    func testRecordedInTheConfigAndReadBack() throws {
        for template in templates {
            let config = RewardModelConfig(aggregator: .linearHead, userModel: UserModelConfig(kind: .individual, tokens: 1, users: 0),
                                           maxLength: 32, template: .chat(template))
            let written = try JSONEncoder().encode(config)
            XCTAssertTrue(String(decoding: written, as: UTF8.self).contains(#""chat_template":"\#(template.name)""#))
            XCTAssertEqual(try JSONDecoder().decode(RewardModelConfig.self, from: written), config)
        }
        XCTAssertEqual(TextTemplate.chat(.llama3(bos: "x")).rawValue, "llama3")
        XCTAssertNil(TextTemplate(rawValue: "llama3"), "a chat template comes from a folder, not from its name")
        XCTAssertThrowsError(try JSONDecoder().decode(TextTemplate.self, from: Data(#"{"chat_template":"zephyr"}"#.utf8)))
    }

    func testLlama3NeedsABOSToken() throws {
        let source = try XCTUnwrap(String(data: Data(contentsOf: TestSupport.repoRoot.appendingPathComponent("Tests/Fixtures/chat-reward/llama3/chat_template.jinja")),
                                          encoding: .utf8))
        XCTAssertEqual(try ChatTemplate.recognize(source, bosToken: "<s>", origin: "x"), .llama3(bos: "<s>"))
        XCTAssertThrowsError(try ChatTemplate.recognize(source, origin: "dir/chat_template.jinja")) { error in
            XCTAssertTrue("\(error)".hasPrefix("dir/chat_template.jinja: the Llama-3 chat template writes bos_token"), "\(error)")
        }
    }
}
