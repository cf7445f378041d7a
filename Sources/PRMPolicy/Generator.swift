import Foundation
import PRMCore

/// What to generate: `samples` replies for one (user, prompt), each drawn with its own random
/// stream derived from `seed`, so a reply does not depend on what else is in the batch.
public struct GenerationRequest: Sendable {
    public var user: Int
    /// Prompt ids, ending with the open <|assistant|> (`Policy.promptIDs`).
    public var prompt: [Int32]
    public var samples: Int
    public var seed: UInt64

    public init(user: Int, prompt: [Int32], samples: Int = 1, seed: UInt64) {
        self.user = user
        self.prompt = prompt
        self.samples = samples
        self.seed = seed
    }
}

/// Batched sampling with the KV cache: each prompt is computed once and its replies continue
/// from its cache; every step runs one token of every unfinished reply of every prompt as one
/// batch. A reply ends with <|end|> (kept in its ids) or after `maxNewTokens` tokens.
public final class Generator {
    public let policy: Policy
    /// Tokens decoded since the generator was made (first tokens come from the prompt's pass).
    public private(set) var decodedTokens = 0
    private let scratch = GrowableBuffer()

    public init(policy: Policy) { self.policy = policy }

    /// Reply ids per request, per sample.
    public func generate(_ requests: [GenerationRequest], settings: SamplingSettings) -> [[[Int32]]] {
        let V = policy.vocabularySize
        let end = policy.format.end
        let probabilities = scratch.ensure(V)
        var replies = requests.map { Array(repeating: [Int32](), count: $0.samples) }
        struct Live {
            let request: Int, sample: Int
            let continuation: Policy.Continuation
            var rng: RandomSource
        }
        var live: [Live] = []
        for (r, request) in requests.enumerated() where request.samples > 0 {
            precondition(policy.userRows + request.prompt.count + settings.maxNewTokens <= policy.maxPositions,
                         "prompt and reply exceed the model's positions: window the prompt with Policy.promptIDs")
            let prompt = policy.prefill(user: request.user, prompt: request.prompt)
            for s in 0..<request.samples {
                var rng = RandomSource(seed: request.seed &+ 0x9E37_79B9 &* UInt64(s + 1))
                let first = prompt.firstLogits.withUnsafeBufferPointer { logits in
                    Sampler.sample(logits.baseAddress!, V: V, settings: settings, scratch: probabilities, rng: &rng)
                }
                replies[r][s].append(first)
                if first != end && settings.maxNewTokens > 1 {
                    live.append(Live(request: r, sample: s, continuation: policy.continuation(of: prompt, maxTokens: settings.maxNewTokens), rng: rng))
                }
            }
        }
        while !live.isEmpty {
            let logits = policy.decode(live.map(\.continuation), tokens: live.map { replies[$0.request][$0.sample].last ?? end })
            decodedTokens += live.count
            var still: [Live] = []
            for (b, var sequence) in live.enumerated() {
                let token = Sampler.sample(logits + b * V, V: V, settings: settings, scratch: probabilities, rng: &sequence.rng)
                replies[sequence.request][sequence.sample].append(token)
                if token != end && replies[sequence.request][sequence.sample].count < settings.maxNewTokens { still.append(sequence) }
            }
            live = still
        }
        return replies
    }
}
