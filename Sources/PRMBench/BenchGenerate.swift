import Foundation
import PRMCore
import PRMPolicy
import PRMTraining

/// `prm bench generate`: a policy's sampling speed, batched against one prompt at a time, on the
/// same requests. Every reply draws from its own random stream, so each case generates exactly the
/// same tokens and tokens/s compare like for like.
enum BenchGenerate {
    struct Case: Codable {
        var name: String
        var prompts: Int
        var samplesPerPrompt: Int
        var tokens: Int
        var seconds: Double
        var tokensPerSecond: Double
    }

    struct Report: Codable {
        var date: String
        var machine: String
        var policy: String
        var parameters: Int
        var maxNewTokens: Int
        var cases: [Case]
        /// Batched tokens/s over one-at-a-time tokens/s (same tokens).
        var batchedSpeedup: Double
        var command: String
    }

    static func run(policy folder: URL, data: URL, repeats: Int, output: URL?) throws -> Report {
        let (policy, _, _) = try PolicyCheckpoint.load(folder)
        let settings = SamplingSettings(temperature: 1, maxNewTokens: 48)
        let prompts = Array(Set(try PreferenceDataset.load(data).comparisons.map(\.prompt))).sorted().prefix(32)
        let ids = prompts.map { policy.promptIDs($0, maxNewTokens: settings.maxNewTokens) }
        func requests(_ count: Int, samples: Int) -> [GenerationRequest] {
            (0..<count).map { GenerationRequest(user: 0, prompt: ids[$0], samples: samples, seed: 1000 + UInt64($0)) }
        }
        let layouts: [(name: String, groups: [[GenerationRequest]])] = [
            ("32 prompts one at a time", requests(32, samples: 1).map { [$0] }),
            ("32 prompts batched", [requests(32, samples: 1)]),
            ("4 prompts x 8 samples batched (shared prefix)", [requests(4, samples: 8)]),
        ]
        let progress = ProgressBar(total: layouts.count * repeats, label: "bench generate", unit: "run")
        var cases: [Case] = []
        for layout in layouts {
            var best = Double.infinity, tokens = 0
            for _ in 0..<repeats {
                let start = MonotonicClock.now
                tokens = layout.groups.reduce(0) { total, group in
                    total + Generator(policy: policy).generate(group, settings: settings).joined().reduce(0) { $0 + $1.count }
                }
                best = min(best, MonotonicClock.now - start)
                progress.advance(by: 1)
            }
            cases.append(Case(name: layout.name, prompts: layout.groups.reduce(0) { $0 + $1.count }, samplesPerPrompt: layout.groups[0][0].samples,
                              tokens: tokens, seconds: best, tokensPerSecond: Double(tokens) / best))
        }
        progress.finish()
        let report = Report(date: ISO8601DateFormatter().string(from: Date()), machine: BenchKernels.machineDescription(), policy: folder.path,
                            parameters: policy.parameters.count, maxNewTokens: settings.maxNewTokens, cases: cases,
                            batchedSpeedup: cases[1].tokensPerSecond / cases[0].tokensPerSecond,
                            command: "prm bench " + CommandLine.arguments.dropFirst(2).joined(separator: " "))
        if let output { try BenchKernels.writeResults(report, markdown: markdown(report), to: output) }
        return report
    }

    static func markdown(_ r: Report) -> String {
        let rows = r.cases.map { c in
            "| \(c.name) | \(c.tokens) | \(String(format: "%.3f", c.seconds)) | \(String(format: "%.0f", c.tokensPerSecond)) | \(String(format: "%.2f", c.tokensPerSecond / r.cases[0].tokensPerSecond)) |"
        }.joined(separator: "\n")
        return """
        # prm bench generate

        \(r.machine); \(r.date)

        Command: `\(r.command)`

        Policy \(r.policy) (\(r.parameters) parameters), temperature 1, at most \(r.maxNewTokens) new tokens per reply
        (replies stop earlier at <|end|>). Best of the repeats; the same tokens in every case (per-reply random streams).
        Times include running each prompt once (prefill, up to the policy's window); tokens/s counts generated tokens.

        | case | tokens | s | tokens/s | vs one at a time |
        |---|---:|---:|---:|---:|
        \(rows)

        """
    }
}
