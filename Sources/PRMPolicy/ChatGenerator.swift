import Foundation
import PRMCore
import PRMTokenizers
import PRMModel

/// A pretrained chat model read from a GGUF file (SmolLM2-135M-Instruct) as a source of
/// candidate replies: prompts are written with the file's own chat template, each prompt is
/// computed once into a KV cache, and its samples decode together over that shared cache, each
/// with its own random stream. A reply ends at the end-of-turn or end-of-text token.
public final class ChatGenerator {
    public let model: LlamaModel
    public let vocabulary: GGUFTokenizer
    public let template: ChatTemplate
    /// Tokens that end a reply (kept out of its text).
    public let stopIDs: Set<Int32>
    /// Tokens decoded since the generator was made (first tokens come from the prompt's pass).
    public private(set) var decodedTokens = 0
    private let logitsBuffer = GrowableBuffer(), probabilities = GrowableBuffer()

    public init(model: LlamaModel, vocabulary: GGUFTokenizer, template: ChatTemplate) {
        self.model = model
        self.vocabulary = vocabulary
        self.template = template
        let ends = [vocabulary.eosID, vocabulary.tokenizer.id(of: template.endOfTurn)].compactMap { $0 }
        stopIDs = Set(ends.map(Int32.init))
    }

    /// Loads the model, its tokenizer and its chat template from one GGUF file, the layers'
    /// matrix products prepared for `precision` (refused when the CPU lacks it).
    public static func load(gguf url: URL, precision: Precision = .fp32) throws -> ChatGenerator {
        let file = try GGUFFile(contentsOf: url)
        let source = try file.string("tokenizer.chat_template")
        let vocabulary = try GGUFTokenizer(file)
        let bos = vocabulary.bosID.map { vocabulary.tokenizer.decode([$0], skipSpecialTokens: false) }
        let template = try ChatTemplate.recognize(source, bosToken: bos, origin: "\(url.path): key 'tokenizer.chat_template'")
        let model = try LlamaModel.load(gguf: file)
        try model.useInferencePrecision(precision)
        return ChatGenerator(model: model, vocabulary: vocabulary, template: template)
    }

    /// The prompt's ids: the conversation in the chat template, ending with the open assistant
    /// turn; the file's BOS first when it asks for one and the template does not write it.
    public func promptIDs(_ messages: [ChatMessage]) -> [Int32] {
        let text = template.render(messages, addGenerationPrompt: true)
        let ids = vocabulary.tokenizer.encode(text, addSpecialTokens: false).map(Int32.init)
        guard vocabulary.addsBOS, !template.writesBOS, let bos = vocabulary.bosID else { return ids }
        return [Int32(bos)] + ids
    }

    /// `samples` replies to one prompt (ids, the stop token included when reached). Sample s
    /// draws from its own stream derived from `seed` and s, so it does not depend on the others.
    public func generate(prompt: [Int32], samples: Int, seed: UInt64, settings: SamplingSettings) -> [[Int32]] {
        let (C, V) = (model.config.hiddenSize, model.vocabularySize)
        precondition(!prompt.isEmpty && prompt.count + settings.maxNewTokens <= model.maxPositions,
                     "prompt and reply exceed the model's \(model.maxPositions) positions")
        let probabilities = self.probabilities.ensure(V)
        let shared = model.makeCache()
        let hidden = model.extend(shared, tokens: prompt)
        let first = logitsBuffer.ensure(V)
        model.logits(out: first, hidden: hidden + (prompt.count - 1) * C, N: 1)
        let firstLogits = Array(UnsafeBufferPointer(start: first, count: V))
        var replies = Array(repeating: [Int32](), count: samples)
        struct Live {
            let sample: Int
            let cache: KVCache
            var rng: RandomSource
        }
        var live: [Live] = []
        for s in 0..<samples {
            var rng = RandomSource(seed: seed &+ 0x9E37_79B9 &* UInt64(s + 1))
            let token = firstLogits.withUnsafeBufferPointer {
                Sampler.sample($0.baseAddress!, V: V, settings: settings, scratch: probabilities, rng: &rng)
            }
            replies[s].append(token)
            if !stopIDs.contains(token) && settings.maxNewTokens > 1 {
                let cache = model.makeCache()
                cache.reserve(rows: settings.maxNewTokens)
                live.append(Live(sample: s, cache: cache, rng: rng))
            }
        }
        while !live.isEmpty {
            let B = live.count
            let hidden = model.decodeStep(prefixes: Array(repeating: shared, count: B), own: live.map(\.cache),
                                          tokens: live.map { replies[$0.sample].last! })
            let logits = logitsBuffer.ensure(B * V)
            model.logits(out: logits, hidden: hidden, N: B)
            decodedTokens += B
            var still: [Live] = []
            for (b, var sequence) in live.enumerated() {
                let token = Sampler.sample(logits + b * V, V: V, settings: settings, scratch: probabilities, rng: &sequence.rng)
                replies[sequence.sample].append(token)
                if !stopIDs.contains(token) && replies[sequence.sample].count < settings.maxNewTokens { still.append(sequence) }
            }
            live = still
        }
        return replies
    }

    /// A reply's text: its ids up to the stop token, special tokens dropped.
    public func text(ofReply ids: [Int32]) -> String {
        let content = ids.prefix { !stopIDs.contains($0) }.map(Int.init)
        return vocabulary.tokenizer.decode(content, skipSpecialTokens: true)
    }
}
