import Foundation
import PRMCLI
import PRMCore
import PRMModel

/// `prm bench kernels`: the machine's sgemm peak on every backend and MiniLM forward throughput on
/// the selected one, measured in one run, so encoder speed is reported as a fraction of what this
/// machine's sgemm can do.
enum BenchKernels {
    struct GemmResult: Codable { var backend: String; var shape: String; var m: Int; var n: Int; var k: Int; var gflops: Double }
    struct ForwardResult: Codable {
        var name: String
        var sequences: Int
        var tokens: Int
        /// Tokens a padded (B × max length) batch would have run.
        var paddedTokens: Int
        var seconds: Double
        var sequencesPerSecond: Double
        var gflops: Double
        var fractionOfPeak: Double
        var paddingWaste: Double
    }
    /// An FFN's first layer at a low precision with GELU fused into the product (`LowPrecisionLinear`
    /// with `gelu`) against the same product followed by prm's bias + GELU pass, same run.
    struct FusedGELUResult: Codable {
        var precision: String
        var shape: String
        var fusedSeconds: Double
        var unfusedSeconds: Double
        /// unfused / fused time.
        var speedup: Double
    }
    struct Report: Codable {
        var date: String
        var machine: String
        /// The backend the forward passes ran on; `peakGflops` is its best sgemm rate.
        var backend: String
        var threads: Int
        var peakGflops: Double
        var gemm: [GemmResult]
        var forward: [ForwardResult]
        var fusedGELU: [FusedGELUResult]
        var command: String
    }

    static func run(model folder: URL, repeats: Int, data: URL?, output: URL?) throws -> Report {
        let model = try Backbones.load(folder: folder)
        guard let bert = model.backbone as? BertModel else { throw CLIError("bench kernels expects a BERT-family encoder") }
        let (C, I) = (bert.config.hiddenSize, bert.config.intermediateSize)
        let shapes = [("1024³", 1024, 1024, 1024),
                      ("qkv 4096×384→1152", 4096, 3 * C, C), ("ffn-in 4096×384→1536", 4096, I, C),
                      ("ffn-out 4096×1536→384", 4096, C, I), ("attn-out 4096×384→384", 4096, C, C),
                      ("ffn-in 128×384→1536", 128, I, C)]
        let progress = ProgressBar(total: Compute.Backend.allCases.count * shapes.count + 3, label: "bench kernels", unit: "case")
        var gemm: [GemmResult] = []
        for backend in Compute.Backend.allCases {
            for (name, m, n, k) in shapes {
                let gflops = Compute.with(backend: backend) { measureGemm(m: m, n: n, k: k, repeats: repeats) }
                gemm.append(GemmResult(backend: backend.rawValue, shape: name, m: m, n: n, k: k, gflops: gflops))
                progress.advance(by: 1, extra: "\(backend) \(name): \(Int(gflops)) GFLOP/s")
            }
        }
        let peak = gemm.filter { $0.backend == Compute.backend.rawValue }.map(\.gflops).max() ?? 1

        let embedder = SentenceEmbedder(model: model, maxTokens: 512)
        let replies = try realReplies(data: data, count: 32)
        let long = embedder.tokenize(replies.sorted { $0.count > $1.count }).map { Array($0.prefix(128)) }
        let exactly128 = long.map { $0.count == 128 ? $0 : ($0 + [Int32](repeating: $0.last ?? 102, count: 128 - $0.count)) }
        let cases: [(String, [[Int32]])] = [
            ("batch 1×128", [exactly128[0]]),
            ("batch 32×128", exactly128),
            ("ragged 32 real replies", embedder.tokenize(replies)),
        ]
        var forward: [ForwardResult] = []
        for (name, sequences) in cases {
            let seconds = measure(repeats: repeats) { _ = embedder.encode(sequences) }
            let flops = sequences.reduce(0.0) { $0 + encoderFlops(tokens: $1.count, config: bert.config) }
            let tokens = sequences.reduce(0) { $0 + $1.count }
            let padded = sequences.count * (sequences.map(\.count).max() ?? 0)
            let gflops = flops / seconds / 1e9
            forward.append(ForwardResult(name: name, sequences: sequences.count, tokens: tokens, paddedTokens: padded,
                                         seconds: seconds, sequencesPerSecond: Double(sequences.count) / seconds,
                                         gflops: gflops, fractionOfPeak: gflops / peak, paddingWaste: 0))
            progress.advance(by: 1, extra: String(format: "%@: %.0f%% of peak", name, 100 * gflops / peak))
        }
        let fused = measureFusedGELU(rows: [4096, 128], inputs: C, outputs: I, repeats: repeats)
        progress.finish()
        let report = Report(date: ISO8601DateFormatter().string(from: Date()), machine: machineDescription(),
                            backend: Compute.backend.rawValue, threads: Compute.threads, peakGflops: peak, gemm: gemm, forward: forward,
                            fusedGELU: fused, command: "prm " + CommandLine.arguments.dropFirst().joined(separator: " "))
        if let output { try writeResults(report, markdown: markdown(report), to: output) }
        return report
    }

    /// FLOPs of one encoder pass over a sequence of T tokens: 2·(4C² + 2CI) per token per layer for
    /// the dense layers, plus 4·T·C per token per layer for QKᵀ and PV. 22.4 MFLOP/token at T = 128 for MiniLM-L6.
    static func encoderFlops(tokens T: Int, config: BertConfig) -> Double {
        let (C, I, L) = (Double(config.hiddenSize), Double(config.intermediateSize), Double(config.numHiddenLayers))
        let perToken = 2 * (4 * C * C + 2 * C * I) + 4 * Double(T) * C
        return perToken * L * Double(T)
    }

    /// Best-of-repeats GFLOP/s of an (m,k)·(k,n) sgemm.
    static func measureGemm(m: Int, n: Int, k: Int, repeats: Int) -> Double {
        var rng = RandomSource(seed: 1)
        let a = Tensor(shape: [m, k]), b = Tensor(shape: [n, k]), c = Tensor(shape: [m, n])
        for i in 0..<a.count { a[i] = rng.nextNormal() }
        for i in 0..<b.count { b[i] = rng.nextNormal() }
        let seconds = measure(repeats: repeats) {
            BLAS.gemm(transB: true, m: m, n: n, k: k, a: a.data, lda: k, b: b.data, ldb: k, beta: 0, c: c.data, ldc: n)
        }
        return 2 * Double(m) * Double(n) * Double(k) / seconds / 1e9
    }

    /// Each precision this CPU runs natively: an (rows, C)·(C, I) product with bias and exact GELU
    /// fused, against the product then `GELU.forwardAddingBias`.
    static func measureFusedGELU(rows: [Int], inputs C: Int, outputs I: Int, repeats: Int) -> [FusedGELUResult] {
        var rng = RandomSource(seed: 2)
        let w = Tensor(shape: [I, C]), b = Tensor(shape: [I])
        for i in 0..<w.count { w[i] = 0.05 * rng.nextNormal() }
        for i in 0..<b.count { b[i] = 0.1 * rng.nextNormal() }
        var results: [FusedGELUResult] = []
        for precision in Precision.native where precision != .fp32 {
            let fused = LowPrecisionLinear(weight: w.data, outputs: I, inputs: C, precision: precision, gelu: .erf)
            let plain = LowPrecisionLinear(weight: w.data, outputs: I, inputs: C, precision: precision)
            for m in rows {
                let x = Tensor(shape: [m, C]), out = Tensor(shape: [m, I]), scratch = GrowableBuffer()
                for i in 0..<x.count { x[i] = rng.nextNormal() }
                let fusedSeconds = measure(repeats: repeats) { fused.forward(out: out.data, inp: x.data, rows: m, bias: b.data, scratch: scratch) }
                let unfusedSeconds = measure(repeats: repeats) {
                    plain.forward(out: out.data, inp: x.data, rows: m, bias: nil, scratch: scratch)
                    GELU.forwardAddingBias(out.data, bias: b.data, N: m, I: I, form: .erf)
                }
                results.append(FusedGELUResult(precision: precision.rawValue, shape: "ffn-in \(m)×\(C)→\(I)", fusedSeconds: fusedSeconds,
                                               unfusedSeconds: unfusedSeconds, speedup: unfusedSeconds / fusedSeconds))
            }
        }
        return results
    }

    /// Best wall time over `repeats` runs after one warm-up (best-of is the least noisy estimate on a shared machine).
    static func measure(repeats: Int, _ body: () -> Void) -> Double {
        body()
        var best = Double.infinity
        for _ in 0..<max(repeats, 1) {
            let start = DispatchTime.now().uptimeNanoseconds
            body()
            best = min(best, Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
        }
        return best
    }

    /// The first `count` chosen replies of the lengthpref data (real, ragged).
    static func realReplies(data: URL?, count: Int) throws -> [String] {
        let url = data ?? DefaultData.lengthprefTrain()
        let rows = try JSONLines.values(try InputFiles.read(url.path), name: url.path)
        let replies = rows.compactMap { $0.value.object?["chosen"]?.string }
        guard replies.count >= count else { throw CLIError("\(url.path): need \(count) replies, found \(replies.count)") }
        return Array(replies.prefix(count))
    }

    static func machineDescription() -> String {
        let cpu = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8))?
            .split(separator: "\n").first { $0.hasPrefix("model name") }?
            .split(separator: ":").last?.trimmingCharacters(in: .whitespaces) ?? "unknown CPU"
        return "\(cpu), \(ProcessInfo.processInfo.activeProcessorCount) cores"
    }

    /// A benchmark's results: JSON at `url`, the markdown table beside it (same name, .md).
    static func writeResults<T: Encodable>(_ report: T, markdown: String, to url: URL) throws {
        try AtomicFile.writeJSON(report, to: url)
        try AtomicFile.write(Data(markdown.utf8), to: url.deletingPathExtension().appendingPathExtension("md"))
    }

    static func markdown(_ r: Report) -> String {
        var lines = ["# prm bench kernels", "", "\(r.machine); \(r.threads) threads; \(r.date)", "",
                     "Command: `\(r.command)`", "", "| backend | sgemm shape | GFLOP/s |", "|---|---|---:|"]
        for g in r.gemm { lines.append("| \(g.backend) | \(g.shape) | \(String(format: "%.1f", g.gflops)) |") }
        lines += ["", "Forward passes on \(r.backend); its peak (best of the above): \(String(format: "%.1f", r.peakGflops)) GFLOP/s", "",
                  "| MiniLM forward | seqs | tokens | padded tokens | ms | seq/s | GFLOP/s | of peak | padding waste |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for f in r.forward {
            lines.append("| \(f.name) | \(f.sequences) | \(f.tokens) | \(f.paddedTokens) | \(String(format: "%.1f", f.seconds * 1000)) | "
                         + "\(String(format: "%.1f", f.sequencesPerSecond)) | \(String(format: "%.1f", f.gflops)) | "
                         + "\(String(format: "%.0f%%", 100 * f.fractionOfPeak)) | \(String(format: "%.0f%%", 100 * f.paddingWaste)) |")
        }
        lines += ["", "Sequences are packed back to back (no padding rows), so padding waste is 0 by construction;",
                  "'padded tokens' is what a right-padded B × max-length batch would have computed.", "",
                  "FFN first layer with bias and exact GELU fused into the low-precision product (bf16: oneDNN's eltwise post-op;",
                  "int8: the dequantization loop) against the product then prm's bias + GELU pass:", "",
                  "| precision | shape | fused ms | unfused ms | unfused / fused |", "|---|---|---:|---:|---:|"]
        for f in r.fusedGELU {
            lines.append("| \(f.precision) | \(f.shape) | \(String(format: "%.3f", f.fusedSeconds * 1000)) | "
                         + "\(String(format: "%.3f", f.unfusedSeconds * 1000)) | \(String(format: "%.2f", f.speedup))× |")
        }
        return lines.joined(separator: "\n") + "\n"
    }
}
