import Foundation
import PRMCLI
import PRMCore
import PRMModel
import PRMScoring

/// `prm bench score`: scoring-path throughput and latency of the sentence embedder's inference
/// pass from token ids, with sgemm on MiniLM's shapes for every backend measured in the same run,
/// and the process's peak resident memory per case. `--dump-inputs` writes every case's token ids
/// so a peer (bench/ort_peer.py, ONNX Runtime) runs exactly the same inputs. With a reward-model
/// checkpoint it also times one prompt's N candidates ranked through the `Scorer`.
enum BenchScore {
    struct GemmResult: Codable {
        var backend: String
        var shape: String
        var m: Int, n: Int, k: Int
        var gflops: Double
    }

    struct CaseResult: Codable {
        var name: String
        var backend: String
        var sequences: Int
        var tokens: Int
        /// Packed batches the case ran as.
        var batches: Int
        /// Best wall time over the repeats.
        var seconds: Double
        var sequencesPerSecond: Double
        var tokensPerSecond: Double
        var gflops: Double
        /// gflops over the best sgemm rate of the same backend in this run.
        var fractionOfPeak: Double
        /// The process's resident high-water mark during the case (reset before it).
        var peakRSSMB: Double

        enum CodingKeys: String, CodingKey {
            case name = "case", backend, sequences, tokens, batches, seconds, sequencesPerSecond = "seq_per_s"
            case tokensPerSecond = "tokens_per_s", gflops, fractionOfPeak = "fraction_of_peak", peakRSSMB = "peak_rss_mb"
        }
    }

    /// One prompt's candidates ranked by the reward model: the service's scoring path (`Scorer`:
    /// tokenization, window, packed `Backbone.infer`, head), no h cache.
    struct RankingResult: Codable {
        var backend: String
        var candidates: Int
        /// Tokens the backbone read (prompt and reply windows of every candidate).
        var tokens: Int
        /// Best wall time of one ranking over the repeats.
        var seconds: Double
        var candidatesPerSecond: Double
        /// The process's resident high-water mark during the case (reset before it).
        var peakRSSMB: Double

        enum CodingKeys: String, CodingKey {
            case backend, candidates, tokens, seconds, candidatesPerSecond = "candidates_per_s", peakRSSMB = "peak_rss_mb"
        }
    }

    struct Ranking: Codable {
        /// The checkpoint, or nil when none was given (the cases were skipped; `note` says so).
        var rewardModel: String?
        var note: String?
        var cases: [RankingResult]
        /// At bf16 or int8: how the precision orders candidates compared with fp32.
        var fidelity: RankingFidelity?

        enum CodingKeys: String, CodingKey { case rewardModel = "reward_model", note, cases, fidelity }
    }

    /// Embeddings at the run's precision against fp32's on the same token ids.
    struct EmbeddingFidelity: Codable {
        var name: String
        var sequences: Int
        var cosineMin: Double
        var cosineMean: Double

        enum CodingKeys: String, CodingKey { case name = "case", sequences, cosineMin = "cosine_min", cosineMean = "cosine_mean" }
    }

    /// Rewards at the run's precision against fp32's for the same candidates: the share of
    /// candidate pairs ordered the same, and of best-of-N groups whose best is the same.
    struct RankingFidelity: Codable {
        var candidates: Int
        var pairs: Int
        var pairsSameOrder: Double
        /// N → share of the consecutive groups of N candidates whose pick is the same.
        var bestOfSame: [String: Double]
        var maxAbsoluteRewardDifference: Double

        enum CodingKeys: String, CodingKey {
            case candidates, pairs, pairsSameOrder = "pairs_same_order", bestOfSame = "best_of_same"
            case maxAbsoluteRewardDifference = "max_abs_reward_diff"
        }
    }

    struct Tokenization: Codable {
        var texts: Int
        var tokens: Int
        var seconds: Double
        var textsPerSecond: Double

        enum CodingKeys: String, CodingKey { case texts, tokens, seconds, textsPerSecond = "texts_per_s" }
    }

    struct Report: Codable {
        var date: String
        var machine: String
        /// The backend selected for the run (`--backend`, PRM_BACKEND, default).
        var backend: String
        /// The encoder's inference precision (`--precision`).
        var precision: String
        var threads: Int
        var tokenBudget: Int
        var repeats: Int
        var sgemm: [GemmResult]
        var tokenize: Tokenization
        var cases: [CaseResult]
        /// At bf16 or int8, per case of real or 64×128 inputs; empty at fp32.
        var fidelity: [EmbeddingFidelity]
        var ranking: Ranking
        var command: String

        enum CodingKeys: String, CodingKey {
            case date, machine, backend, precision, threads, tokenBudget = "token_budget", repeats, sgemm, tokenize, cases, fidelity
            case ranking, command
        }
    }

    /// One case: its sequences of token ids and how they are batched.
    struct Case {
        enum Batching {
            /// Consecutive sequences, as they arrive, packed up to the token budget.
            case arrival
            /// The embedder's own strategy: length-sorted, packed up to the token budget.
            case sorted
        }

        let name: String
        let sequences: [[Int32]]
        let batching: Batching
    }

    static let replies = 512
    static let maxTokens = 128
    static let tokenBudget = 8192
    static let candidateCounts = [1, 4, 16, 64]
    /// Best-of-N group sizes whose picks are compared with fp32's.
    static let bestOfCounts = [4, 16]

    static func run(model folder: URL, data: URL, rewardModel: URL?, repeats: Int, allBackends: Bool, precision: Precision = .fp32,
                    dumpInputs: URL?, output: URL?) throws -> Report {
        let backends = allBackends ? Compute.Backend.allCases : [Compute.backend]
        let (sgemm, tokenization, results, fidelity) = try embedderCases(model: folder, data: data, repeats: repeats, backends: backends,
                                                                         precision: precision, dumpInputs: dumpInputs)
        // After the embedder cases have released their model, so the peaks are the reward model's.
        let ranking = try rewardModel.map {
            try rankingCases(checkpoint: $0, data: data, repeats: repeats, backends: backends, precision: precision)
        } ?? Ranking(rewardModel: nil, note: "skipped: no --reward-model checkpoint given", cases: [])
        let report = Report(date: ISO8601DateFormatter().string(from: Date()), machine: BenchKernels.machineDescription(),
                            backend: Compute.backend.rawValue, precision: Int8Plan.describe(precision, products: Int8Plan.products), threads: Compute.threads,
                            tokenBudget: tokenBudget, repeats: repeats,
                            sgemm: sgemm, tokenize: tokenization, cases: results, fidelity: fidelity, ranking: ranking,
                            command: "prm " + CommandLine.arguments.dropFirst().joined(separator: " "))
        if let output { try BenchKernels.writeResults(report, markdown: markdown(report), to: output) }
        return report
    }

    /// sgemm per backend, tokenization, the embedder's cases (a)-(c) at `precision`, and their
    /// embeddings' fidelity to fp32's (bf16, int8).
    static func embedderCases(model folder: URL, data: URL, repeats: Int, backends: [Compute.Backend], precision: Precision,
                              dumpInputs: URL?) throws -> ([GemmResult], Tokenization, [CaseResult], [EmbeddingFidelity]) {
        try precision.requireNative()
        let model = try Backbones.load(folder: folder, precision: precision)
        guard let bert = model.backbone as? BertModel else { throw CLIError("bench score expects a BERT-family encoder") }
        let embedder = SentenceEmbedder(model: model, maxTokens: maxTokens, tokensPerBatch: tokenBudget)

        let texts = try distinctReplies(data: data, count: replies)
        var tokenizeSeconds = Double.infinity
        var real: [[Int32]] = []
        for _ in 0..<max(repeats, 1) {
            let start = DispatchTime.now().uptimeNanoseconds
            real = embedder.tokenize(texts)
            tokenizeSeconds = min(tokenizeSeconds, Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
        }
        let tokenization = Tokenization(texts: texts.count, tokens: real.reduce(0) { $0 + $1.count }, seconds: tokenizeSeconds,
                                        textsPerSecond: Double(texts.count) / tokenizeSeconds)
        // Smallest batch first: buffers an earlier case grew are never larger than the current one's.
        let cases = [
            Case(name: "latency-1x128", sequences: uniform(texts, count: 1, length: 128, embedder: embedder), batching: .sorted),
            Case(name: "uniform-64x64", sequences: uniform(texts, count: 64, length: 64, embedder: embedder), batching: .sorted),
            Case(name: "uniform-32x128", sequences: uniform(texts, count: 32, length: 128, embedder: embedder), batching: .sorted),
            Case(name: "uniform-64x128", sequences: uniform(texts, count: 64, length: 128, embedder: embedder), batching: .sorted),
            Case(name: "real-\(replies)-arrival", sequences: real, batching: .arrival),
            Case(name: "real-\(replies)-sorted", sequences: real, batching: .sorted),
        ]
        if let dumpInputs { try writeInputs(cases, to: dumpInputs) }

        let (C, I) = (bert.config.hiddenSize, bert.config.intermediateSize)
        let shapes = [("ffn-in 4096×1536×384", 4096, I, C), ("ffn-out 4096×384×1536", 4096, C, I),
                      ("qkv 4096×1152×384", 4096, 3 * C, C), ("one reply 30×1536×384", 30, I, C)]
        let progress = ProgressBar(total: backends.count * (shapes.count + cases.count), label: "bench score", unit: "case")
        var sgemm: [GemmResult] = []
        for backend in backends {
            for (name, m, n, k) in shapes {
                let gflops = Compute.with(backend: backend) { BenchKernels.measureGemm(m: m, n: n, k: k, repeats: repeats) }
                sgemm.append(GemmResult(backend: backend.rawValue, shape: name, m: m, n: n, k: k, gflops: gflops))
                progress.advance(extra: String(format: "%@ %@: %.0f GFLOP/s", backend.rawValue, name, gflops))
            }
        }

        var results: [CaseResult] = []
        for scoringCase in cases {
            let groups = batches(scoringCase, embedder: embedder)
            let flops = scoringCase.sequences.reduce(0.0) { $0 + BenchKernels.encoderFlops(tokens: $1.count, config: bert.config) }
            let tokens = scoringCase.sequences.reduce(0) { $0 + $1.count }
            for backend in backends {
                let peak = sgemm.filter { $0.backend == backend.rawValue }.map(\.gflops).max() ?? 1
                try ResidentMemory.resetPeak()
                let seconds = Compute.with(backend: backend) {
                    BenchKernels.measure(repeats: repeats) {
                        for group in groups { _ = embedder.encode(group) }
                    }
                }
                let gflops = flops / seconds / 1e9
                results.append(CaseResult(name: scoringCase.name, backend: backend.rawValue, sequences: scoringCase.sequences.count,
                                          tokens: tokens, batches: groups.count, seconds: seconds,
                                          sequencesPerSecond: Double(scoringCase.sequences.count) / seconds,
                                          tokensPerSecond: Double(tokens) / seconds, gflops: gflops, fractionOfPeak: gflops / peak,
                                          peakRSSMB: try ResidentMemory.peakMegabytes()))
                progress.advance(extra: String(format: "%@ %@: %.1f seq/s", backend.rawValue, scoringCase.name,
                                               Double(scoringCase.sequences.count) / seconds))
            }
        }
        progress.finish()
        let compared = cases.filter { $0.name == "uniform-64x128" || $0.name == "real-\(replies)-sorted" }
        let fidelity = precision == .fp32 ? [] : try embeddingFidelity(compared, folder: folder, embedder: embedder)
        return (sgemm, tokenization, results, fidelity)
    }

    /// Cosines between the embedder's vectors and those of an fp32 model loaded beside it (a
    /// second copy, loaded after the timed cases so their peaks do not include it).
    static func embeddingFidelity(_ cases: [Case], folder: URL, embedder: SentenceEmbedder) throws -> [EmbeddingFidelity] {
        let reference = SentenceEmbedder(model: try Backbones.load(folder: folder), maxTokens: maxTokens, tokensPerBatch: tokenBudget)
        return cases.map { scoringCase in
            let cosines = zip(embedder.embed(tokenized: scoringCase.sequences), reference.embed(tokenized: scoringCase.sequences))
                .map { cosine($0, $1) }
            return EmbeddingFidelity(name: scoringCase.name, sequences: cosines.count, cosineMin: cosines.min() ?? 1,
                                     cosineMean: cosines.reduce(0, +) / Double(max(cosines.count, 1)))
        }
    }

    static func cosine(_ a: [Float], _ b: [Float]) -> Double {
        var (dot, aa, bb) = (0.0, 0.0, 0.0)
        for (x, y) in zip(a, b) { dot += Double(x) * Double(y); aa += Double(x) * Double(x); bb += Double(y) * Double(y) }
        return aa > 0 && bb > 0 ? dot / (aa * bb).squareRoot() : 0
    }

    /// The `replies` real replies as candidates of the first row's prompt and user, rewarded at
    /// `scorer`'s precision and at fp32: pairs and best-of-N picks ordered the same.
    static func rankingFidelity(_ scorer: Scorer, checkpoint: URL, items: [ScoringItem]) throws -> RankingFidelity {
        let low = scorer.score(items).map(\.score)
        let fp32 = try Scorer(checkpoint: checkpoint, tokensPerBatch: tokenBudget).score(items).map(\.score)
        var (same, pairs) = (0, 0)
        for i in low.indices {
            for j in (i + 1)..<low.count {
                pairs += 1
                if (low[i] < low[j]) == (fp32[i] < fp32[j]) && (low[i] == low[j]) == (fp32[i] == fp32[j]) { same += 1 }
            }
        }
        var bestOf: [String: Double] = [:]
        for n in bestOfCounts {
            let groups = stride(from: 0, to: low.count - n + 1, by: n).map { $0..<($0 + n) }
            let agreeing = groups.filter { g in g.max { low[$0] < low[$1] } == g.max { fp32[$0] < fp32[$1] } }.count
            bestOf[String(n)] = Double(agreeing) / Double(max(groups.count, 1))
        }
        let worst = zip(low, fp32).map { Double(abs($0 - $1)) }.max() ?? 0
        return RankingFidelity(candidates: low.count, pairs: pairs, pairsSameOrder: Double(same) / Double(max(pairs, 1)),
                               bestOfSame: bestOf, maxAbsoluteRewardDifference: worst)
    }

    /// (d) The first row's prompt of `data` with N of its distinct replies as candidates, ranked
    /// for the row's user through a `Scorer` on the checkpoint (no h cache, so every ranking
    /// computes every candidate), for each N in `candidateCounts`.
    static func rankingCases(checkpoint: URL, data: URL, repeats: Int, backends: [Compute.Backend], precision: Precision) throws -> Ranking {
        let scorer = try Scorer(checkpoint: checkpoint, precision: precision, tokensPerBatch: tokenBudget)
        let (prompt, user) = try firstPrompt(data: data)
        let candidates = try distinctReplies(data: data, count: candidateCounts.max() ?? 1)
        let progress = ProgressBar(total: backends.count * candidateCounts.count, label: "bench score ranking", unit: "case")
        var cases: [RankingResult] = []
        for count in candidateCounts {
            let items = candidates.prefix(count).map { ScoringItem(userID: user, prompt: prompt, response: $0) }
            let tokens = scorer.preparer.prepare(items).reduce(0) { $0 + $1.tokens }
            for backend in backends {
                try ResidentMemory.resetPeak()
                let seconds = Compute.with(backend: backend) { BenchKernels.measure(repeats: repeats) { _ = scorer.score(items) } }
                cases.append(RankingResult(backend: backend.rawValue, candidates: count, tokens: tokens, seconds: seconds,
                                           candidatesPerSecond: Double(count) / seconds, peakRSSMB: try ResidentMemory.peakMegabytes()))
                progress.advance(extra: String(format: "%@ N=%d: %.1f ms", backend.rawValue, count, seconds * 1000))
            }
        }
        progress.finish()
        let fidelity = precision == .fp32 ? nil : try rankingFidelity(
            scorer, checkpoint: checkpoint,
            items: try distinctReplies(data: data, count: replies).map { ScoringItem(userID: user, prompt: prompt, response: $0) })
        return Ranking(rewardModel: checkpoint.relativePath, note: nil, cases: cases, fidelity: fidelity)
    }

    /// The first row's prompt and user id (nil when the row has none) of a preference file.
    static func firstPrompt(data url: URL) throws -> (prompt: String, user: String?) {
        for (_, value) in try JSONLines.values(try InputFiles.read(url.path), name: url.path) {
            if let row = value.object, let prompt = row["prompt"]?.string { return (prompt, row["user_id"]?.string) }
        }
        throw CLIError("\(url.path): no row with a 'prompt' string")
    }

    /// The case's packed batches, each at most the token budget.
    static func batches(_ scoringCase: Case, embedder: SentenceEmbedder) -> [[[Int32]]] {
        let lengths = scoringCase.sequences.map(\.count)
        let groups: [[Int]]
        switch scoringCase.batching {
        case .sorted:
            groups = PackedBatch.lengthGroups(lengths, tokensPerBatch: embedder.tokensPerBatch)
        case .arrival:
            var all: [[Int]] = [], current: [Int] = [], tokens = 0
            for (index, length) in lengths.enumerated() {
                if !current.isEmpty && tokens + length > embedder.tokensPerBatch {
                    all.append(current)
                    current = []
                    tokens = 0
                }
                current.append(index)
                tokens += length
            }
            if !current.isEmpty { all.append(current) }
            groups = all
        }
        return groups.map { $0.map { scoringCase.sequences[$0] } }
    }

    /// The first `count` distinct `chosen`/`rejected` strings of a preference file, in file order.
    static func distinctReplies(data url: URL, count: Int) throws -> [String] {
        var seen = Set<String>(), replies: [String] = []
        for (_, value) in try JSONLines.values(try InputFiles.read(url.path), name: url.path) {
            guard let row = value.object else { continue }
            for key in ["chosen", "rejected"] {
                if let text = row[key]?.string, replies.count < count, seen.insert(text).inserted { replies.append(text) }
            }
        }
        guard replies.count == count else { throw CLIError("\(url.path): need \(count) distinct replies, found \(replies.count)") }
        return replies
    }

    /// `count` sequences of exactly `length` tokens built from real replies: each reply's tokens
    /// repeated until long enough, cut to `length` with the model's special tokens included.
    static func uniform(_ texts: [String], count: Int, length: Int, embedder: SentenceEmbedder) -> [[Int32]] {
        let tokenizer = embedder.model.tokenizer
        let room = length - tokenizer.specialTokensPerSequence
        return tokenizer.encodeBatch(Array(texts.prefix(count)), addSpecialTokens: false).map { ids in
            var repeated = ids
            while repeated.count < room && !ids.isEmpty { repeated += ids }
            return tokenizer.addingSpecialTokens(Array(repeated.prefix(room))).map(Int32.init)
        }
    }

    /// {"case name": [[ids…], …]} for every case.
    static func writeInputs(_ cases: [Case], to url: URL) throws {
        var inputs: [String: [[Int32]]] = [:]
        for scoringCase in cases { inputs[scoringCase.name] = scoringCase.sequences }
        try AtomicFile.writeJSON(inputs, to: url)
    }

    static func markdown(_ r: Report) -> String {
        var lines = ["# prm bench score", "", "\(r.machine); \(r.threads) threads; backend \(r.backend); precision \(r.precision); \(r.date)", "",
                     "Command: `\(r.command)`", "", "| backend | sgemm shape (M×N×K) | GFLOP/s |", "|---|---|---:|"]
        for g in r.sgemm { lines.append("| \(g.backend) | \(g.shape) | \(String(format: "%.1f", g.gflops)) |") }
        lines += ["", String(format: "Tokenization (not in the timings below): %d texts, %d tokens in %.1f ms (%.0f texts/s).",
                             r.tokenize.texts, r.tokenize.tokens, r.tokenize.seconds * 1000, r.tokenize.textsPerSecond), "",
                  "| case | backend | seqs | tokens | batches | ms | seq/s | tokens/s | GFLOP/s | of peak | peak RSS MB |",
                  "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for c in r.cases {
            lines.append("| \(c.name) | \(c.backend) | \(c.sequences) | \(c.tokens) | \(c.batches) | "
                         + String(format: "%.1f | %.1f | %.0f | %.1f | %.0f%% | %.0f |", c.seconds * 1000, c.sequencesPerSecond,
                                  c.tokensPerSecond, c.gflops, 100 * c.fractionOfPeak, c.peakRSSMB))
        }
        lines += ["", "Timings are from token ids through the embedder's inference pass (embeddings, encoder, mean pooling,",
                  "L2 normalisation), best of \(r.repeats), \(r.tokenBudget)-token packed batches (no padding). 'arrival' packs",
                  "replies in the order they come, 'sorted' is the embedder's length-sorted grouping. 'of peak' divides by the",
                  "best sgemm rate of the same backend above. Peak RSS is the whole process (weights included) during the case."]
        if !r.fidelity.isEmpty {
            lines += ["", "Embeddings at \(r.precision) against fp32 on the same token ids:", "",
                      "| case | seqs | cosine min | cosine mean |", "|---|---:|---:|---:|"]
            for f in r.fidelity {
                lines.append("| \(f.name) | \(f.sequences) | " + String(format: "%.5f | %.6f |", f.cosineMin, f.cosineMean))
            }
        }
        lines += ["", "## Reward model: one prompt's N candidates ranked through the Scorer", ""]
        if let note = r.ranking.note { lines.append("Reward model cases \(note).") }
        if !r.ranking.cases.isEmpty {
            lines += ["Checkpoint `\(r.ranking.rewardModel ?? "")`.", "",
                      "| candidates | backend | tokens | ms | candidates/s | peak RSS MB |", "|---:|---|---:|---:|---:|---:|"]
            for c in r.ranking.cases {
                lines.append("| \(c.candidates) | \(c.backend) | \(c.tokens) | "
                             + String(format: "%.1f | %.1f | %.0f |", c.seconds * 1000, c.candidatesPerSecond, c.peakRSSMB))
            }
            lines += ["", "One ranking: tokenization, the window (prompt cut from the left, whole reply kept), packed inference and",
                      "the reward head, best of \(r.repeats), no h cache. Peak RSS is the whole process with the reward model loaded."]
        }
        if let f = r.ranking.fidelity {
            lines += ["", String(format: "Ranking at %@ against fp32, %d real replies as one prompt's candidates: %.2f %% of %d pairs "
                                 + "ordered the same, best-of-4 picks %.1f %% the same, best-of-16 %.1f %%; largest reward difference %.4f.",
                                 r.precision, f.candidates, 100 * f.pairsSameOrder, f.pairs, 100 * (f.bestOfSame["4"] ?? 0),
                                 100 * (f.bestOfSame["16"] ?? 0), f.maxAbsoluteRewardDifference)]
        }
        return lines.joined(separator: "\n") + "\n"
    }
}
