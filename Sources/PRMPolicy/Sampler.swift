import Foundation
import PRMCore

/// How replies are drawn from the policy.
public struct SamplingSettings: Codable, Sendable, Equatable {
    /// Softmax temperature; 0 is greedy decoding (the most likely token, the lowest id on a tie).
    public var temperature: Float = 1
    /// Keep only the k most likely tokens (0: all).
    public var topK = 0
    /// Keep the smallest set of most likely tokens whose probability reaches p (1: all).
    public var topP: Float = 1
    /// The reply stops at <|end|> or after this many tokens.
    public var maxNewTokens = 48

    enum CodingKeys: String, CodingKey { case temperature, topK = "top_k", topP = "top_p", maxNewTokens = "max_new_tokens" }

    public init() {}

    public init(temperature: Float, topK: Int = 0, topP: Float = 1, maxNewTokens: Int) {
        self.temperature = temperature
        self.topK = topK
        self.topP = topP
        self.maxNewTokens = maxNewTokens
    }

    /// Checks ranges; the message names the option.
    public func validate() throws {
        if !(temperature >= 0 && temperature.isFinite) { throw PolicyError("--temperature must be ≥ 0, got \(temperature)") }
        if topK < 0 { throw PolicyError("--top-k must be ≥ 0, got \(topK)") }
        if !(topP > 0 && topP <= 1) { throw PolicyError("--top-p must be in (0, 1], got \(topP)") }
        if maxNewTokens < 1 { throw PolicyError("--max-new-tokens must be at least 1, got \(maxNewTokens)") }
    }
}

/// Draws one token from a row of logits.
enum Sampler {
    /// argmax at temperature 0; else a draw from softmax(logits / T) restricted to the top-k ids
    /// and then to the smallest most-likely set whose mass reaches top-p, renormalised.
    /// `scratch` holds V floats.
    static func sample(_ logits: UnsafePointer<Float>, V: Int, settings: SamplingSettings, scratch: UnsafeMutablePointer<Float>,
                       rng: inout RandomSource) -> Int32 {
        if settings.temperature == 0 {
            var best = 0
            for v in 1..<V where logits[v] > logits[best] { best = v }
            return Int32(best)
        }
        let inverse = 1 / settings.temperature
        var maximum = -Float.infinity
        for v in 0..<V { maximum = max(maximum, logits[v]) }
        var total: Float = 0
        for v in 0..<V {
            scratch[v] = VectorMath.exp((logits[v] - maximum) * inverse)
            total += scratch[v]
        }
        // Draws in `ids`' order from the unnormalised probabilities in scratch.
        func draw<Ids: Sequence<Int>>(_ ids: Ids, mass: Float) -> Int32 {
            var target = rng.nextUniform() * mass
            var last = 0
            for v in ids where scratch[v] > 0 {
                target -= scratch[v]
                last = v
                if target < 0 { return Int32(v) }
            }
            return Int32(last)  // rounding left a sliver of mass: the last token with any probability
        }
        guard (settings.topK > 0 && settings.topK < V) || settings.topP < 1 else { return draw(0..<V, mass: total) }
        // Most likely first; ties keep the lower id first, so the set is well defined.
        var order = Array(0..<V).sorted { scratch[$0] > scratch[$1] || (scratch[$0] == scratch[$1] && $0 < $1) }
        if settings.topK > 0 && settings.topK < V { order.removeLast(V - settings.topK) }
        if settings.topP < 1 {
            var mass: Float = 0, keep = 0
            for v in order {
                mass += scratch[v] / total
                keep += 1
                if mass >= settings.topP { break }
            }
            order.removeLast(order.count - keep)
        }
        return draw(order, mass: order.reduce(Float(0)) { $0 + scratch[$1] })
    }
}
