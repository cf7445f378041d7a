import Foundation
import XCTest
import PRMCore
import PRMTokenizers
import PRMTestSupport
@testable import PRMModel

/// The Llama decoder on the real SmolLM2 GGUF file against an independent float64 numpy forward
/// over the same file's tensors dequantized by gguf-py (Tests/Reference/smollm2_reference.py),
/// which rotates adjacent pairs on the file's permuted q/k rows as llama.cpp does, while prm puts
/// the rows back and rotates halves as Hugging Face does; the chat template against jinja2; the
/// KV cache and batched decoding against the full forward.
final class LlamaReferenceTests: XCTestCase {
    struct Loaded {
        let model: LlamaModel
        let tokenizer: GGUFTokenizer
        let template: ChatTemplate
    }

    nonisolated(unsafe) static var cached: Loaded?

    static func load() throws -> Loaded {
        if let cached { return cached }
        let file = try GGUFFile(contentsOf: try TestSupport.smolLM2File())
        let loaded = Loaded(model: try LlamaModel.load(gguf: file), tokenizer: try GGUFTokenizer(file),
                            template: try ChatTemplate.recognize(try file.string("tokenizer.chat_template"), origin: file.url.path))
        cached = loaded
        return loaded
    }

    struct Chats: Decodable {
        struct Chat: Decodable {
            struct Message: Decodable { let role: String; let content: String }
            let messages: [Message]
            let rendered: String
        }
        let chats: [Chat]
    }

    static let prompts: [[ChatMessage]] = [
        [ChatMessage(role: .user, content: "What is the capital of France?")],
        [ChatMessage(role: .user, content: "Write a haiku about the sea.")],
        [ChatMessage(role: .system, content: "You answer in one word."), ChatMessage(role: .user, content: "Name a colour of the sky 2 times.")],
    ]

    func testConfigFromGGUFMetadata() throws {
        let config = try Self.load().model.config
        XCTAssertEqual(config, LlamaConfig(modelType: "llama", vocabSize: 49152, hiddenSize: 576, intermediateSize: 1536, numHiddenLayers: 30,
                                           numAttentionHeads: 9, numKeyValueHeads: 3, rmsNormEps: 1e-5, ropeTheta: 100_000,
                                           maxPositionEmbeddings: 8192, tieWordEmbeddings: true, bosTokenID: 1, eosTokenID: 2))
        XCTAssertEqual(try Self.load().template, .chatML(defaultSystem: "You are a helpful AI assistant named SmolLM, trained by Hugging Face"))
    }

    func testChatTemplateRendersAsJinja() throws {
        let loaded = try Self.load()
        let expected = try JSONDecoder().decode(Chats.self, from: Data(contentsOf: TestSupport.ggufFixtures.appendingPathComponent("smollm2-tokenizer.json")))
        XCTAssertEqual(expected.chats.count, 3)
        for chat in expected.chats {
            let messages = try chat.messages.map { ChatMessage(role: try XCTUnwrap(ChatMessage.Role(rawValue: $0.role)), content: $0.content) }
            XCTAssertEqual(loaded.template.render(messages, addGenerationPrompt: true), chat.rendered)
        }
        XCTAssertThrowsError(try ChatTemplate.recognize("{{ bos_token }}{% for m in messages %}{{ m['content'] }}{% endfor %}", origin: "x.gguf: key 'tokenizer.chat_template'")) { error in
            XCTAssertTrue("\(error)".hasPrefix("x.gguf: key 'tokenizer.chat_template': unknown chat template"), "\(error)")
        }
    }

    func testLogitsMatchFloat64NumpyOnThreePrompts() throws {
        let loaded = try Self.load()
        let reference = try SafetensorsFile(contentsOf: TestSupport.ggufFixtures.appendingPathComponent("smollm2-logits.safetensors"))
        let model = loaded.model
        let V = model.vocabularySize
        func ints(_ name: String) throws -> [Int] { try reference.tensor(name).array.map { Int($0) } }
        try TestSupport.eachBackend { backend in
            for (i, messages) in Self.prompts.enumerated() {
                let text = loaded.template.render(messages, addGenerationPrompt: true)
                let ids = loaded.tokenizer.tokenizer.encode(text, addSpecialTokens: false)
                XCTAssertEqual(ids, try ints("ids.\(i)"), "prompt \(i): ids")
                let T = ids.count
                let hidden = model.extend(model.makeCache(), tokens: ids.map(Int32.init))
                var logits = [Float](repeating: 0, count: T * V)
                logits.withUnsafeMutableBufferPointer { model.logits(out: $0.baseAddress!, hidden: hidden, N: T) }
                let argmax = (0..<T).map { t in (0..<V).max { logits[t * V + $0] < logits[t * V + $1] }! }
                XCTAssertEqual(argmax, try ints("argmax.\(i)"), "\(backend) prompt \(i): argmax at every position")
                let last = Array(logits[(T - 1) * V..<T * V])
                let checked = try ints("top_ids.\(i)") + ints("sample_ids.\(i)")
                let expected = try reference.tensor("top_logits.\(i)").array + reference.tensor("sample_logits.\(i)").array
                let scale = expected.map(abs).max()!
                let worst = zip(checked, expected).map { abs(last[$0] - $1) }.max()!
                XCTAssertLessThanOrEqual(worst / scale, 1e-3, "\(backend) prompt \(i): largest logit difference \(worst), scale \(scale)")
                XCTAssertEqual(Array(last.indices.sorted { last[$0] > last[$1] }.prefix(5)), Array(try ints("top_ids.\(i)").prefix(5)), "\(backend) prompt \(i): top 5")
            }
        }
    }

    func testCacheAndBatchedStepsEqualTheFullForward() throws {
        let model = try Self.load().model
        let (C, V) = (model.config.hiddenSize, model.vocabularySize)
        let prompt: [Int32] = [1, 4093, 198, 19556, 28, 638, 359, 346, 47, 2, 198, 1, 520, 9531, 198]
        let replies: [[Int32]] = [[504, 3575, 282], [17830, 30], [57, 216, 33, 34]]
        func fullLastHidden(_ ids: [Int32]) -> [Float] {
            let hidden = model.extend(model.makeCache(), tokens: ids)
            return Array(UnsafeBufferPointer(start: hidden + (ids.count - 1) * C, count: C))
        }
        // Token by token through one cache.
        let cache = model.makeCache()
        _ = model.extend(cache, tokens: prompt)
        for (k, token) in replies[0].enumerated() {
            let step = Array(UnsafeBufferPointer(start: model.extend(cache, tokens: [token]), count: C))
            assertClose(step, fullLastHidden(prompt + replies[0].prefix(k + 1)), "extend step \(k)")
        }
        // Three replies decoded together over the shared prompt cache.
        let shared = model.makeCache()
        _ = model.extend(shared, tokens: prompt)
        let own = replies.map { _ in model.makeCache() }
        for k in 0..<2 {
            // Copied out: the returned rows live in the model's buffers, which the full forward reuses.
            let hidden = Array(UnsafeBufferPointer(start: model.decodeStep(prefixes: Array(repeating: shared, count: 3), own: own,
                                                                           tokens: replies.map { $0[k] }), count: 3 * C))
            for b in 0..<3 {
                assertClose(Array(hidden[b * C..<(b + 1) * C]), fullLastHidden(prompt + replies[b].prefix(k + 1)), "batched step \(k) reply \(b)")
            }
        }
        XCTAssertEqual(shared.count, prompt.count, "the shared prefix is read, not changed")
        XCTAssertEqual(V, 49152)
    }

    private func assertClose(_ a: [Float], _ b: [Float], _ label: String, file: StaticString = #filePath, line: UInt = #line) {
        let scale = max(b.map(abs).max() ?? 1, 1e-6)
        let worst = zip(a, b).map { abs($0 - $1) }.max() ?? 0
        XCTAssertLessThanOrEqual(worst / scale, 1e-4, "\(label): largest difference \(worst), scale \(scale)", file: file, line: line)
    }
}
