import Foundation
import PRMCore
import PRMModel
import PRMScoring

/// `prm bench reward`: a reward-model checkpoint scoring given token ids as the generic user at
/// `--precision` (fp32, bf16 or int8, as `prm score` loads it), so that a peer runs exactly the same sequences (bench/decoder_vs_transformers.py: transformers'
/// `LlamaForSequenceClassification` on the same weights). Each item is a prompt's and a reply's
/// ids; the checkpoint's window applies, and the items go through `RewardModel.pooledStates`, the
/// product's scoring path: packed batches under the `Scorer`'s token budget, and on a causal
/// backbone the prompt that replies share computed once. Every score is recorded, for the peer's
/// equality check.
enum BenchRewardScore {
    /// The input file: cases of (prompt, reply) token ids.
    struct Inputs: Codable {
        struct Item: Codable {
            var prompt: [Int32]
            var reply: [Int32]
        }
        struct Case: Codable {
            var name: String
            var items: [Item]
        }
        var cases: [Case]
    }

    struct Case: Codable {
        var name: String
        var sequences: Int
        var tokens: Int
        var seconds: Double
        var sequencesPerSecond: Double
        var tokensPerSecond: Double
        /// The process's peak from the checkpoint's load on (the model, then this case's scoring).
        var peakRSSMB: Double
        var scores: [Float]

        enum CodingKeys: String, CodingKey {
            case name, sequences, tokens, seconds, sequencesPerSecond = "sequences_per_s", tokensPerSecond = "tokens_per_s"
            case peakRSSMB = "peak_rss_mb", scores
        }
    }

    struct Report: Codable {
        var date: String
        var machine: String
        var rewardModel: String
        /// The backbone's inference precision (`--precision`, with `--int8-products`' plan at int8).
        var precision: String
        var threads: Int
        var tokenBudget: Int
        var repeats: Int
        var loadSeconds: Double
        var cases: [Case]
        var command: String

        enum CodingKeys: String, CodingKey {
            case date, machine, rewardModel = "reward_model", precision, threads, tokenBudget = "token_budget", repeats
            case loadSeconds = "load_seconds", cases, command
        }
    }

    /// The `Scorer`'s default token budget (what `prm score`, `prm eval` and the service use).
    static let tokenBudget = 8192

    static func run(checkpoint: URL, inputs url: URL, precision: Precision, repeats: Int, output: URL?) throws -> Report {
        let inputs = try JSONDecoder().decode(Inputs.self, from: Data(contentsOf: url))
        try ResidentMemory.resetPeak()
        let loadStart = MonotonicClock.now
        let (model, _, _) = try ModelProbe.load(checkpoint, precision: precision)
        let loadSeconds = MonotonicClock.now - loadStart
        var cases: [Case] = []
        for inputCase in inputs.cases {
            let sequences = inputCase.items.map { model.window.sequence(for: RewardInput(user: 0, prompt: $0.prompt, reply: $0.reply)).sequence }
            var scores: [Float] = []
            let seconds = BenchKernels.measure(repeats: repeats) { scores = genericScores(model, sequences) }
            let tokens = sequences.reduce(0) { $0 + $1.length }
            cases.append(Case(name: inputCase.name, sequences: sequences.count, tokens: tokens, seconds: seconds,
                              sequencesPerSecond: Double(sequences.count) / seconds, tokensPerSecond: Double(tokens) / seconds,
                              peakRSSMB: try ResidentMemory.peakMegabytes(), scores: scores))
        }
        let report = Report(date: ISO8601DateFormatter().string(from: Date()), machine: BenchKernels.machineDescription(),
                            rewardModel: checkpoint.relativePath,
                            precision: Int8Plan.describe(precision, products: Int8Plan.products), threads: Compute.threads, tokenBudget: tokenBudget, repeats: repeats,
                            loadSeconds: loadSeconds, cases: cases,
                            command: "prm bench " + CommandLine.arguments.dropFirst(2).joined(separator: " "))
        if let output { try BenchKernels.writeResults(report, markdown: markdown(report), to: output) }
        return report
    }

    /// The generic user's reward for each sequence.
    static func genericScores(_ model: RewardModel, _ sequences: [ModelSequence]) -> [Float] {
        let C = model.backbone.hiddenSize
        var h = [Float](repeating: 0, count: sequences.count * C)
        return h.withUnsafeMutableBufferPointer { buffer in
            model.pooledStates(sequences, tokensPerBatch: tokenBudget, into: buffer.baseAddress!)
            return sequences.indices.map { model.reward(pooled: buffer.baseAddress! + $0 * C, user: 0) }
        }
    }

    static func markdown(_ r: Report) -> String {
        var lines = ["# prm bench reward", "", "\(r.machine); \(r.threads) threads; \(r.date)", "", "Command: `\(r.command)`", "",
                     "Checkpoint `\(r.rewardModel)` at \(r.precision) loaded in \(String(format: "%.2f", r.loadSeconds)) s; token budget \(r.tokenBudget), best of \(r.repeats).", "",
                     "| case | sequences | tokens | ms | sequences/s | tokens/s | peak RSS MB |", "|---|---:|---:|---:|---:|---:|---:|"]
        for c in r.cases {
            lines.append("| \(c.name) | \(c.sequences) | \(c.tokens) | " + String(format: "%.1f | %.2f | %.0f | %.0f |", c.seconds * 1000,
                                                                                  c.sequencesPerSecond, c.tokensPerSecond, c.peakRSSMB))
        }
        return lines.joined(separator: "\n") + "\n"
    }
}
