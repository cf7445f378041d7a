import Foundation
import PRMCore
import PRMModel
import PRMPolicy

/// `prm bench generate --policy FILE.gguf`: decoding speed of a GGUF chat model (SmolLM2) after
/// one prompt, batch 1 and 8 samples sharing the prompt's cache, as a fraction of the memory
/// bandwidth measured in the same run (a decoding step reads every weight once: the bound for batch 1).
enum BenchChatGenerate {
    struct Case: Codable {
        var name: String
        var sequences: Int
        var tokens: Int
        var seconds: Double
        var tokensPerSecond: Double
        /// Weight bytes read per second (steps/s × bytes per step) over the measured bandwidth.
        var bandwidthFraction: Double
    }

    struct Report: Codable {
        var date: String
        var machine: String
        var model: String
        /// The layers' inference precision (`--precision`; the LM head stays fp32).
        var precision: String
        var parameters: Int
        var weightBytesPerStep: Int
        var promptTokens: Int
        var stepsPerCase: Int
        var bandwidthGBPerSecond: Double
        var cases: [Case]
        /// 8 samples' tokens/s over batch 1's.
        var samplesSpeedup: Double
        var loadSeconds: Double
        var peakRSSMB: Double
        var command: String
    }

    static let steps = 64

    static func run(model url: URL, precision: Precision, repeats: Int, output: URL?) throws -> Report {
        // The bandwidth probe's 512 MB buffer is freed before the peak is reset: the peak is the model's.
        let bandwidthBefore = (0..<repeats).map { _ in measureBandwidth() }.max() ?? 0
        try ResidentMemory.resetPeak()
        let loadStart = MonotonicClock.now
        let generator = try ChatGenerator.load(gguf: url, precision: precision)
        let loadSeconds = MonotonicClock.now - loadStart
        let model = generator.model
        let prompt = generator.promptIDs([ChatMessage(role: .user, content: "Any tips for sleeping better?")])
        let bytes = model.weightBytesPerToken
        let timed = [1, 8].map { samples in
            (samples, (0..<repeats).map { _ in timeDecoding(model, prompt: prompt, samples: samples) }.min() ?? .infinity)
        }
        let peakRSS = try ResidentMemory.peakMegabytes()
        // Probed again after the cases and the faster probe kept, so a probe slowed by a moment's
        // contention cannot flatter the fractions.
        let bandwidth = max(bandwidthBefore, (0..<repeats).map { _ in measureBandwidth() }.max() ?? 0)
        let cases = timed.map { samples, best in
            Case(name: samples == 1 ? "batch 1" : "\(samples) samples of one prompt (shared prompt cache)",
                 sequences: samples, tokens: samples * steps, seconds: best, tokensPerSecond: Double(samples * steps) / best,
                 bandwidthFraction: Double(steps) / best * Double(bytes) / bandwidth)
        }
        let report = Report(date: ISO8601DateFormatter().string(from: Date()), machine: BenchKernels.machineDescription(),
                            model: url.lastPathComponent, precision: Int8Plan.describe(precision, products: Int8Plan.products), parameters: model.parameters.count, weightBytesPerStep: bytes,
                            promptTokens: prompt.count, stepsPerCase: steps, bandwidthGBPerSecond: bandwidth / 1e9, cases: cases,
                            samplesSpeedup: cases[1].tokensPerSecond / cases[0].tokensPerSecond, loadSeconds: loadSeconds,
                            peakRSSMB: peakRSS,
                            command: "prm bench " + CommandLine.arguments.dropFirst(2).joined(separator: " "))
        if let output { try BenchKernels.writeResults(report, markdown: markdown(report), to: output) }
        return report
    }

    /// Seconds for `steps` decoding steps of `samples` sequences after the prompt (the prompt's
    /// pass is not timed): each step's token is the previous step's argmax, logits included.
    static func timeDecoding(_ model: LlamaModel, prompt: [Int32], samples: Int) -> Double {
        let (C, V) = (model.config.hiddenSize, model.vocabularySize)
        let shared = model.makeCache()
        let hidden = model.extend(shared, tokens: prompt)
        var logits = [Float](repeating: 0, count: samples * V)
        logits.withUnsafeMutableBufferPointer { model.logits(out: $0.baseAddress!, hidden: hidden + (prompt.count - 1) * C, N: 1) }
        // Different first tokens per sample, so the batch is not one sequence repeated.
        let ranked = (0..<V).sorted { logits[$0] > logits[$1] }
        var tokens = (0..<samples).map { Int32(ranked[$0]) }
        let own = (0..<samples).map { _ in model.makeCache() }
        for cache in own { cache.reserve(rows: steps) }
        let start = MonotonicClock.now
        for _ in 0..<steps {
            let hidden = model.decodeStep(prefixes: Array(repeating: shared, count: samples), own: own, tokens: tokens)
            logits.withUnsafeMutableBufferPointer { model.logits(out: $0.baseAddress!, hidden: hidden, N: samples) }
            tokens = (0..<samples).map { b in Int32((0..<V).max { logits[b * V + $0] < logits[b * V + $1] }!) }
        }
        return MonotonicClock.now - start
    }

    /// Bytes per second of reading a 512 MB buffer on every core (read-only streaming, as a
    /// decoding step reads its weights), best of three passes. Each core sums its half with four
    /// 16-lane accumulators, so the adds keep up with memory: the wrapping integer sum this
    /// replaced vectorised poorly and read 36–37 GB/s where a C probe read 54–64 GB/s in the same
    /// minute, which made decoding look faster than the bandwidth (bench/results/decode_profile.md).
    static func measureBandwidth() -> Double {
        let count = 128 << 20
        let buffer = UnsafeMutablePointer<Float>.allocate(capacity: count)
        defer { buffer.deallocate() }
        Parallel.forRange(count) { range in for i in range { buffer[i] = Float(i & 1023) } }
        let sums = UnsafeMutablePointer<Float>.allocate(capacity: 64)
        defer { sums.deallocate() }
        sums.initialize(repeating: 0, count: 64)
        var best = Double.infinity
        for _ in 0..<3 {
            let start = MonotonicClock.now
            Parallel.forChunks(count / 64) { chunk, blocks in
                var (a0, a1, a2, a3) = (Vec(repeating: 0), Vec(repeating: 0), Vec(repeating: 0), Vec(repeating: 0))
                for block in blocks {
                    let p = UnsafeRawPointer(buffer + block * 64)
                    a0 += p.loadUnaligned(as: Vec.self)
                    a1 += p.loadUnaligned(fromByteOffset: 64, as: Vec.self)
                    a2 += p.loadUnaligned(fromByteOffset: 128, as: Vec.self)
                    a3 += p.loadUnaligned(fromByteOffset: 192, as: Vec.self)
                }
                sums[chunk % 64] += ((a0 + a1) + (a2 + a3)).laneSum
            }
            best = min(best, MonotonicClock.now - start)
        }
        // Keeps the sums observable, so the reads cannot be optimised away.
        precondition(!sums[0].isNaN)
        return Double(count * MemoryLayout<Float>.size) / best
    }

    static func markdown(_ r: Report) -> String {
        let rows = r.cases.map { c in
            "| \(c.name) | \(c.tokens) | \(String(format: "%.3f", c.seconds)) | \(String(format: "%.1f", c.tokensPerSecond)) | \(String(format: "%.2f", c.bandwidthFraction)) |"
        }.joined(separator: "\n")
        return """
        # prm bench generate (GGUF chat model)

        \(r.machine); \(r.date)

        Command: `\(r.command)`

        \(r.model) at --precision \(r.precision) (layers' matrices; the LM head fp32): \(r.parameters) parameters, \(r.weightBytesPerStep / 1_000_000) MB of weights read per decoding step;
        load (dequantize) \(String(format: "%.2f", r.loadSeconds)) s; a \(r.promptTokens)-token chat prompt, then \(r.stepsPerCase)
        greedy decoding steps per sequence (logits and argmax included, the prompt's pass not timed). Best of the repeats.
        Memory bandwidth measured in the same run (reading 512 MB on every core, before and after the cases; the faster): \(String(format: "%.1f", r.bandwidthGBPerSecond)) GB/s.
        Peak RSS from loading on \(String(format: "%.0f", r.peakRSSMB)) MB.

        | case | tokens | s | tokens/s | weight bytes/s ÷ bandwidth |
        |---|---:|---:|---:|---:|
        \(rows)

        8 samples / batch 1 tokens/s: \(String(format: "%.2f", r.samplesSpeedup))×.

        """
    }
}
