import Foundation
import PRMCLI
import PRMCore
import PRMModel
import PRMScoring
import PRMTraining

/// `prm bench train`: MiniLM reward-model training steps on full 256-token windows, as tokens/s and
/// as a fraction of the sgemm peak measured in the same run.
enum BenchTrain {
    struct Report: Codable {
        var date: String
        var machine: String
        /// The backend training ran on; `peakGflops` is its best sgemm rate, `peaks` every backend's.
        var backend: String
        var peakGflops: Double
        var peaks: [String: Double]
        var windowTokens: Int
        var comparisonsPerStep: Int
        var sequencesPerStep: Int
        var tokensPerStep: Int
        var secondsPerStep: Double
        var tokensPerSecond: Double
        var gflops: Double
        var fractionOfPeak: Double
        /// One epoch of the given data at these settings, from its real window lengths and the measured speed.
        var estimatedEpochSeconds: Double
        var epochComparisons: Int
        var command: String
    }

    static func run(model folder: URL, data: URL, steps: Int, output: URL?) throws -> Report {
        let progress = ProgressBar(total: steps + 2, label: "bench train", unit: "step")
        var peaks: [String: Double] = [:]
        for backend in Compute.Backend.allCases {
            peaks[backend.rawValue] = Compute.with(backend: backend) {
                [(1024, 1024, 1024), (4096, 1536, 384), (4096, 384, 1536)]
                    .map { BenchKernels.measureGemm(m: $0.0, n: $0.1, k: $0.2, repeats: 3) }.max() ?? 1
            }
        }
        let peak = peaks[Compute.backend.rawValue] ?? 1
        progress.advance(by: 1, extra: String(format: "%@ sgemm peak %.0f GFLOP/s", Compute.backend.rawValue, peak))

        var settings = TrainingSettings.paper  // individual users, soft prompt, T_u 10, alpha 0.5, 256 tokens
        settings.epochs = 1
        settings.logEvery = 1_000_000
        let dataset = try PreferenceDataset.load(data)
        let users = UserTable(ids: dataset.userIDs)
        let model = try RewardModel.pretrained(backbone: folder, config: settings.rewardModelConfig(users: users.count), seed: 1)
        guard let bert = model.backbone as? BertModel else { throw CLIError("bench train expects a BERT-family encoder") }
        let encoded = EncodedComparison.encode(dataset.comparisons, with: InputPreparer(model: model, users: users))
        // Comparisons whose every window is full: prompt long enough, reply short enough to keep whole.
        let room = settings.maxLength - settings.userTokens - model.tokenizer.specialTokensPerSequence
        let full = encoded.filter { c in
            [c.chosen, c.rejected].allSatisfy { $0.count < room && c.prompt.count + $0.count >= room }
        }
        let perStep = settings.batchSize
        guard full.count >= perStep * (steps + 1) else {
            throw CLIError("\(data.path): only \(full.count) comparisons fill a \(settings.maxLength)-token window; need \(perStep * (steps + 1))")
        }
        let trainer = try Trainer(model: model, users: users, settings: settings, train: Array(full.prefix(perStep * (steps + 1))))
        try trainer.run(untilStep: 1)  // warm-up: allocations, first-touch page faults
        progress.advance(by: 1, extra: "warm-up")
        let start = DispatchTime.now().uptimeNanoseconds
        for step in 2...(steps + 1) {
            try trainer.run(untilStep: step)
            progress.advance(by: 1)
        }
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9 / Double(steps)
        progress.finish()

        let sequencesPerStep = perStep * 4  // chosen/rejected × own user/generic user
        let tokensPerStep = sequencesPerStep * settings.maxLength
        // Forward + backward ≈ 3 × the forward FLOPs (each sgemm reappears twice in the backward pass).
        let flops = 3 * Double(sequencesPerStep) * BenchKernels.encoderFlops(tokens: settings.maxLength, config: bert.config)
        let gflops = flops / seconds / 1e9
        let epochTokens = encoded.reduce(0) { total, c in
            total + [c.chosen, c.rejected].reduce(0) { $0 + 2 * min(settings.maxLength, settings.userTokens + model.tokenizer.specialTokensPerSequence + c.prompt.count + $1.count) }
        }
        let report = Report(date: ISO8601DateFormatter().string(from: Date()), machine: BenchKernels.machineDescription(),
                            backend: Compute.backend.rawValue, peakGflops: peak, peaks: peaks, windowTokens: settings.maxLength, comparisonsPerStep: perStep,
                            sequencesPerStep: sequencesPerStep, tokensPerStep: tokensPerStep, secondsPerStep: seconds,
                            tokensPerSecond: Double(tokensPerStep) / seconds, gflops: gflops, fractionOfPeak: gflops / peak,
                            estimatedEpochSeconds: Double(epochTokens) / (Double(tokensPerStep) / seconds),
                            epochComparisons: encoded.count,
                            command: "prm " + CommandLine.arguments.dropFirst().joined(separator: " "))
        if let output { try BenchKernels.writeResults(report, markdown: markdown(report), to: output) }
        return report
    }

    static func markdown(_ r: Report) -> String {
        """
        # prm bench train

        \(r.machine); \(r.date); training on \(r.backend) (sgemm peaks: \(r.peaks.sorted { $0.key < $1.key }.map { String(format: "%@ %.1f", $0.key, $0.value) }.joined(separator: ", ")) GFLOP/s)

        Command: `\(r.command)`

        | sgemm peak | window | seqs/step | tokens/step | s/step | tokens/s | GFLOP/s | of peak | est. epoch (\(r.epochComparisons) comparisons) |
        |---:|---:|---:|---:|---:|---:|---:|---:|---:|
        | \(String(format: "%.1f", r.peakGflops)) | \(r.windowTokens) | \(r.sequencesPerStep) | \(r.tokensPerStep) | \(String(format: "%.2f", r.secondsPerStep)) | \(String(format: "%.0f", r.tokensPerSecond)) | \(String(format: "%.1f", r.gflops)) | \(String(format: "%.0f%%", 100 * r.fractionOfPeak)) | \(String(format: "%.1f min", r.estimatedEpochSeconds / 60)) |

        A step is the paper's default P-RM (MiniLM backbone, individual users, soft prompt, T_u 10, alpha 0.5,
        batch 16 comparisons in 2 micro-batches): 4 sequences per comparison, forward, backward, clipping and AdamW.
        FLOPs count 3 × the encoder's forward FLOPs. The epoch estimate uses the data's real window lengths.

        """
    }
}
