import Foundation
import XCTest
import PRMCore
import PRMModel
import PRMTestSupport
@testable import PRMPolicy

/// Sampling from the real SmolLM2 GGUF model: cached, batched greedy decoding equals greedy
/// decoding that recomputes the whole sequence at every step, and each sample's stream is its own.
final class ChatGeneratorTests: XCTestCase {
    nonisolated(unsafe) static var cached: ChatGenerator?

    static func generator() throws -> ChatGenerator {
        if let cached { return cached }
        let generator = try ChatGenerator.load(gguf: try TestSupport.smolLM2File())
        cached = generator
        return generator
    }

    func testCachedGreedyEqualsUncachedTokenForToken() throws {
        let generator = try Self.generator()
        let model = generator.model
        let V = model.vocabularySize
        let prompt = generator.promptIDs([ChatMessage(role: .user, content: "What is the capital of France?")])
        let settings = SamplingSettings(temperature: 0, maxNewTokens: 20)
        let replies = generator.generate(prompt: prompt, samples: 2, seed: 3, settings: settings)
        // Uncached: every step runs prompt + reply so far through a fresh cache.
        var reference: [Int32] = []
        var logits = [Float](repeating: 0, count: V)
        while reference.count < settings.maxNewTokens {
            let ids = prompt + reference
            let hidden = model.extend(model.makeCache(), tokens: ids)
            logits.withUnsafeMutableBufferPointer { model.logits(out: $0.baseAddress!, hidden: hidden + (ids.count - 1) * model.config.hiddenSize, N: 1) }
            let next = Int32((0..<V).max { logits[$0] < logits[$1] }!)
            reference.append(next)
            if generator.stopIDs.contains(next) { break }
        }
        XCTAssertEqual(replies[0], reference)
        XCTAssertEqual(replies[1], reference)
        XCTAssertTrue(generator.text(ofReply: reference).contains("Paris"), generator.text(ofReply: reference))
    }

    func testSamplesHaveTheirOwnStreams() throws {
        let generator = try Self.generator()
        let prompt = generator.promptIDs([ChatMessage(role: .user, content: "Tell me about cats.")])
        let settings = SamplingSettings(temperature: 1, topK: 40, maxNewTokens: 12)
        let three = generator.generate(prompt: prompt, samples: 3, seed: 5, settings: settings)
        let one = generator.generate(prompt: prompt, samples: 1, seed: 5, settings: settings)
        XCTAssertEqual(one[0], three[0], "a sample does not depend on how many others are drawn")
        XCTAssertEqual(generator.generate(prompt: prompt, samples: 3, seed: 5, settings: settings), three, "same seed, same replies")
        XCTAssertGreaterThan(Set(three).count, 1, "samples differ")
        XCTAssertEqual(generator.template.render([ChatMessage(role: .user, content: "Tell me about cats.")], addGenerationPrompt: true),
                       "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n<|im_start|>user\nTell me about cats.<|im_end|>\n<|im_start|>assistant\n")
    }
}
