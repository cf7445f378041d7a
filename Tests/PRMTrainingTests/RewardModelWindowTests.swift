import Foundation
import XCTest
import PRMModel
import PRMTestSupport
@testable import PRMTraining

/// The text window and sequence sharing of the reward model.
final class RewardModelWindowTests: XCTestCase {
    func testWindowKeepsTheWholeReplyAndTrimsThePromptFromTheLeft() throws {
        let model = try TinyModels.rewardModel(TinyModels.settings(), users: 1, folder: TinyModels.backboneFolder())
        let cls = try XCTUnwrap(model.tokenizer.id(of: "[CLS]")).int32, sep = try XCTUnwrap(model.tokenizer.id(of: "[SEP]")).int32
        let prompt = (1000..<1100).map(Int32.init), reply = (2000..<2011).map(Int32.init)
        let window = model.window.textTokens(prompt: prompt, reply: reply, room: 30).tokens
        XCTAssertEqual(window.count, 30)
        XCTAssertEqual(window, [cls] + Array(prompt.suffix(30 - 2 - reply.count)) + reply + [sep])

        let shortPrompt = Array(prompt.prefix(3))
        XCTAssertEqual(model.window.textTokens(prompt: shortPrompt, reply: reply, room: 30).tokens, [cls] + shortPrompt + reply + [sep])

        let longReply = (3000..<3100).map(Int32.init)
        XCTAssertEqual(model.window.textTokens(prompt: prompt, reply: longReply, room: 30).tokens, [cls] + Array(longReply.prefix(28)) + [sep],
                       "a reply longer than the window keeps its beginning and drops the prompt")
    }

    func testSoftPromptWindowCountsUserTokens() throws {
        var settings = TinyModels.settings(.softPrompt, .individual)
        settings.userTokens = 5
        settings.maxLength = 40
        let model = try TinyModels.rewardModel(settings, users: 2, folder: TinyModels.backboneFolder())
        let input = RewardInput(user: 1, explicit: TinyModels.ids(model, "I like brevity"), prompt: (1000..<1200).map(Int32.init),
                                reply: TinyModels.ids(model, "fine"))
        _ = model.forward([input])
        XCTAssertEqual(model.lastForwardTokens, 40, "explicit + user tokens + text fill exactly max_length")
    }

    func testLinearHeadComputesEachTextOnce() throws {
        let model = try TinyModels.rewardModel(TinyModels.settings(.linearHead, .individual), users: 3, folder: TinyModels.backboneFolder())
        // Offsets start at zero (every user equals the generic one); give each user its own.
        for entry in model.parameters.entries where entry.group == .user {
            for i in 0..<entry.count { model.parameters.values[entry.offset + i] += Float(i % 7) * 0.01 }
        }
        let prompt = TinyModels.ids(model, "Human: hello\n\nAssistant:"), reply = TinyModels.ids(model, "Hi there, how can I help?")
        let one = model.forward([RewardInput(user: 1, prompt: prompt, reply: reply)])
        let single = model.lastForwardTokens
        let many = model.forward((0...3).map { RewardInput(user: $0, prompt: prompt, reply: reply) })
        XCTAssertEqual(model.lastForwardTokens, single, "four users of one text share one backbone pass")
        XCTAssertEqual(many[1], one[0])
        XCTAssertEqual(Set(many).count, 4, "each user gets their own reward from the shared h")
    }
}

private extension Int {
    var int32: Int32 { Int32(self) }
}
