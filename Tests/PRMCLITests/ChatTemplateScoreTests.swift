import Foundation
import XCTest
import PRMCore
import PRMModel
import PRMScoring
import PRMTestSupport

/// A `…ForSequenceClassification` folder served as it is writes each (prompt, reply) in its own
/// chat template, as `tokenizer.apply_chat_template(conversation, tokenize=True)` does: the tiny
/// random Qwen2 (ChatML in tokenizer_config.json) and Llama (Llama-3's template in
/// chat_template.jinja, which writes <|begin_of_text|> itself) folders of Tests/Fixtures/chat-reward,
/// whose ids and scores Tests/Reference/make_chat_reward.py recorded from transformers.
final class ChatTemplateScoreTests: XCTestCase {
    static let fixtures = TestSupport.repoRoot.appendingPathComponent("Tests/Fixtures/chat-reward")
    static let names = ["qwen2-chatml", "llama3"]

    struct Expected: Decodable {
        struct Message: Decodable { let role: String, content: String }
        struct Result: Decodable { let ids: [Int32], score: Double }
        let conversations: [[Message]]
        let models: [String: [Result]]
    }

    static func expected() throws -> Expected {
        try JSONDecoder().decode(Expected.self, from: Data(contentsOf: fixtures.appendingPathComponent("expected.json")))
    }

    /// A conversation as a request gives it: the turns before the last as the prompt, the last as the reply.
    static func item(_ conversation: [Expected.Message]) throws -> ChatItem {
        let messages = try conversation.map { ChatMessage(role: try XCTUnwrap(ChatMessage.Role(rawValue: $0.role)), content: $0.content) }
        return ChatItem(userID: nil, prompt: .messages(Array(messages.dropLast())), response: .messages([messages[messages.count - 1]]))
    }

    /// The token ids prm scores for `items` with the folder served as it is (the window's text).
    static func ids(_ folder: URL, _ items: [ChatItem]) throws -> [[Int32]] {
        let (model, users, _) = try Checkpoint.load(folder)
        let preparer = InputPreparer(model: model, users: users)
        return preparer.prepare(preparer.render(items)).map(\.sequence.text)
    }

    func testIDsEqualApplyChatTemplate() throws {
        let expected = try Self.expected()
        let items = try expected.conversations.map(Self.item)
        for name in Self.names {
            let got = try Self.ids(Self.fixtures.appendingPathComponent(name), items)
            let want = try XCTUnwrap(expected.models[name])
            XCTAssertEqual(got.count, want.count, name)
            for (i, (g, w)) in zip(got, want).enumerated() { XCTAssertEqual(g, w.ids, "\(name), conversation \(i)") }
        }
    }

    /// A string prompt in hh turns is read as those turns: the same ids as the messages.
    func testHHStringPromptIsReadAsTurns() throws {
        let expected = try Self.expected()
        let twoTurns = expected.conversations[1]
        let hh = "Human: \(twoTurns[0].content)\n\nAssistant: \(twoTurns[1].content)\n\nHuman: \(twoTurns[2].content)\n\nAssistant:"
        for name in Self.names {
            let got = try Self.ids(Self.fixtures.appendingPathComponent(name), [ChatItem(userID: nil, prompt: .text(hh), response: .text(twoTurns[3].content))])
            XCTAssertEqual(got, [try XCTUnwrap(expected.models[name])[1].ids], name)
        }
    }

    /// `prm score --input` of every conversation for a user prm does not know: the prompt as
    /// messages, the reply as a string (the assistant turn's content).
    func scores(_ model: URL, in folder: URL, _ extra: String...) throws -> [Double] {
        let requests = folder.appendingPathComponent("requests.jsonl")
        try JSONL.write(try Self.expected().conversations.map { conversation in
            ["user_id": "anyone", "prompt": conversation.dropLast().map { ["role": $0.role, "content": $0.content] },
             "candidates": [conversation[conversation.count - 1].content]] as [String: Any]
        }, to: requests)
        let result = PRM.run(["score", "--model", model.path, "--input", requests.path] + extra)
        assertSucceeded(result)
        return try JSONL.decodeLines(ScoreLine.self, result).map { $0.ranking[0].score }
    }

    func testPrmScoreEqualsTransformers() throws {
        let folder = try scratchFolder("prm-chat-score")
        let expected = try Self.expected()
        for name in Self.names {
            let got = try scores(Self.fixtures.appendingPathComponent(name), in: folder)
            let want = try XCTUnwrap(expected.models[name]).map(\.score)
            XCTAssertEqual(got.count, want.count, name)
            for (g, w) in zip(got, want) { XCTAssertEqual(g, w, accuracy: 1e-4, name) }
        }
    }

    /// A copy of the qwen2 fixture whose tokenizer_config.json's `chat_template` is `template`.
    func qwen2(withTemplate template: Any, in folder: URL) throws -> URL {
        let copy = folder.appendingPathComponent("qwen2-\(UUID().uuidString.prefix(8))")
        try FileManager.default.copyItem(at: Self.fixtures.appendingPathComponent("qwen2-chatml"), to: copy)
        let configURL = copy.appendingPathComponent("tokenizer_config.json")
        var config = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: configURL)) as? [String: Any])
        config["chat_template"] = template
        try JSONSerialization.data(withJSONObject: config).write(to: configURL)
        return copy
    }

    /// The list form of named templates: its "default" is taken.
    func testNamedTemplatesTakeTheDefault() throws {
        let folder = try scratchFolder("prm-chat-named")
        let source = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: Self.fixtures.appendingPathComponent("qwen2-chatml/tokenizer_config.json")))
                                   as? [String: Any])["chat_template"]
        let named = try qwen2(withTemplate: [["name": "tool_use", "template": "{{ tools }}"], ["name": "default", "template": try XCTUnwrap(source)]], in: folder)
        XCTAssertEqual(try Checkpoint.load(named).model.config.template, .chat(.chatML(defaultSystem: "You are a helpful assistant.")))
    }

    /// An unknown template is refused naming the file and key, and --template plain takes the text as given.
    func testUnknownTemplateIsRefusedWithAWayOut() throws {
        let folder = try scratchFolder("prm-chat-unknown")
        let odd = try qwen2(withTemplate: "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}", in: folder)
        let requests = folder.appendingPathComponent("one.jsonl")
        try JSONL.write([["prompt": "Hi", "candidates": ["Hello"]]], to: requests)
        assertFailed(PRM.run("score", "--model", odd.path, "--input", requests.path), command: "score",
                     mentioning: ["tokenizer_config.json: key 'chat_template'", "unknown chat template", "--template plain"])
        let plain = PRM.run("score", "--model", odd.path, "--input", requests.path, "--template", "plain")
        assertSucceeded(plain)
        XCTAssertEqual(try Checkpoint.load(odd, template: .plain).model.config.template, .plain)
    }

    /// `prm adapt` writes a prm checkpoint that keeps the folder's chat template: its generic user
    /// still scores as transformers.
    func testAdaptKeepsTheChatTemplate() throws {
        let folder = try scratchFolder("prm-chat-adapt")
        let llama = Self.fixtures.appendingPathComponent("llama3")
        let data = folder.appendingPathComponent("taste.jsonl"), out = folder.appendingPathComponent("adapted")
        try JSONL.write(InitFromTests.tasteComparisons(), to: data)
        let adapt = PRM.run("adapt", "--model", llama.path, "--data", data.path, "--out", out.path)
        XCTAssertEqual(adapt.status, 0, "\(adapt)")
        XCTAssertEqual(try Checkpoint.load(out).model.config.template, .chat(.llama3(bos: "<|begin_of_text|>")))
        let got = try scores(out, in: folder)
        for (g, w) in zip(got, try XCTUnwrap(try Self.expected().models["llama3"]).map(\.score)) { XCTAssertEqual(g, w, accuracy: 1e-4) }
    }
}

extension ChatTemplateScoreTests {
    /// `prm train --init-from` such a folder writes its data in the folder's chat template: a run
    /// whose rates are 0 scores its generic user as transformers.
    func testTrainInitFromUsesTheChatTemplate() throws {
        let folder = try scratchFolder("prm-chat-train")
        let qwen2 = Self.fixtures.appendingPathComponent("qwen2-chatml")
        let data = folder.appendingPathComponent("taste.jsonl"), out = folder.appendingPathComponent("frozen")
        try JSONL.write(InitFromTests.tasteComparisons(), to: data)
        assertSucceeded(PRM.run("train", "--init-from", qwen2.path, "--data", data.path, "--out", out.path, "--epochs", "1",
                                "--max-length", "256", "--batch-size", "4", "--lr", "0", "--user-lr", "0", "--no-refit-seen"))
        XCTAssertEqual(try Checkpoint.load(out).model.config.template, .chat(.chatML(defaultSystem: "You are a helpful assistant.")))
        let got = try scores(out, in: folder)
        for (g, w) in zip(got, try XCTUnwrap(try Self.expected().models["qwen2-chatml"]).map(\.score)) { XCTAssertEqual(g, w, accuracy: 1e-4) }
    }
}
