import Foundation
import PRMCLI
import PRMCore
import PRMModel
import PRMScoring
import PRMServing

/// `prm bench serve`: the scoring service measured against its own computation, in one run.
///
/// Requests are real: a prompt (the last human turn of a built-in dialogue) and N real replies of
/// about 64 tokens. Each request has its own prompt, so no h is ever reused across them unless a
/// case says so. Cases:
/// - latency: one client, one request at a time; the wire + JSON + queueing overhead is the
///   client's round trip minus the server-reported compute time;
/// - throughput: C concurrent clients against the in-process batched throughput of the same
///   requests through the `Scorer` (the ceiling a server can reach);
/// - cache: one candidate set ranked for U users, with the h cache and without;
/// - the HTTP front door against ZeroMQ on the same server (`HTTPFrontDoorResults`);
/// - rank latency with and without a client adapting users continuously (`AdaptStreamResults`).
/// The server is started in this process on a loopback port (or `--endpoint` measures a running
/// one), and sgemm is measured in the same run so every figure has its hardware reference.
enum BenchServe {
    struct Percentiles: Codable {
        var p50: Double, p95: Double, p99: Double, mean: Double

        init(_ samples: [Double]) {
            let sorted = samples.sorted()
            func rank(_ p: Double) -> Double {
                sorted.isEmpty ? 0 : sorted[min(sorted.count - 1, max(0, Int((p * Double(sorted.count)).rounded(.up)) - 1))]
            }
            (p50, p95, p99) = (rank(0.5), rank(0.95), rank(0.99))
            mean = sorted.isEmpty ? 0 : sorted.reduce(0, +) / Double(sorted.count)
        }
    }

    struct Latency: Codable {
        var requests: Int
        var roundTripMs: Percentiles
        var computeMs: Percentiles
        var queueMs: Percentiles
        /// Round trip minus the server's compute time: wire, JSON, tokenization and queueing.
        var overheadMs: Percentiles
        var overheadFractionOfComputeP50: Double
    }

    struct Throughput: Codable {
        var clients: Int
        var requests: Int
        var items: Int
        var seconds: Double
        var itemsPerSecond: Double
        var inProcessItemsPerSecond: Double
        var fractionOfInProcess: Double
        var meanRequestsPerBatch: Double
    }

    struct Cache: Codable {
        var users: Int
        var uncachedSeconds: Double
        var cachedSeconds: Double
        var speedup: Double
        var hitRate: Double
    }

    struct Report: Codable {
        var date: String
        var machine: String
        var command: String
        /// The checkpoint as given on the command line, so a repo-relative path stays relative in the recorded file.
        var model: String
        var endpoint: String
        var candidates: Int
        var meanReplyTokens: Double
        var meanSequenceTokens: Double
        var sgemmPeakGflops: Double
        var latency: Latency
        var throughput: Throughput
        var cache: Cache?
        /// The HTTP front door against ZeroMQ (servers started by this run only).
        var http: HTTPFrontDoorResults?
        /// Deployments as processes (servers started by this run only).
        var topologies: TopologyResults?
        /// Rank latency with and without a concurrent adapt stream (servers started by this run only).
        var adaptStream: AdaptStreamResults?
    }

    struct Workload {
        var requests: [(prompt: String, candidates: [String])]
        var replyTokens: [Int]
    }

    static func run(model folder: URL?, endpoint: String?, requests count: Int, clients: Int, candidates: Int, users: Int,
                    data: URL, quick: Bool, binary: URL?, output: URL?) throws -> Report {
        guard let folder else { throw CLIError("bench serve needs --model DIR (a checkpoint from prm train) to score in process") }
        let deployments = endpoint == nil && binary != nil
        let progress = ProgressBar(total: 7 + (deployments ? TopologyResults.caseCount(quick: quick) : 0), label: "bench serve", unit: "case")
        let peak = BenchKernels.measureGemm(m: 4096, n: 1536, k: 384, repeats: 3)
        progress.advance(by: 1, extra: String(format: "sgemm %.0f GFLOP/s", peak))

        let inProcess = try Scorer(checkpoint: folder)
        let workload = try makeWorkload(data: data, tokenizer: inProcess, requests: count, candidates: candidates)
        let allItems = workload.requests.flatMap { request in
            request.candidates.map { ScoringItem(userID: nil, prompt: request.prompt, response: $0) }
        }
        let prepared = inProcess.preparer.prepare(allItems)
        _ = inProcess.score(Array(prepared.prefix(candidates)))  // warm-up: first-touch of buffers
        let inProcessSeconds = BenchKernels.measure(repeats: 2) { _ = inProcess.score(prepared) }
        let inProcessRate = Double(prepared.count) / inProcessSeconds
        progress.advance(by: 1, extra: String(format: "in process %.0f items/s", inProcessRate))

        let server = try endpoint.map { ($0, nil as BackgroundServer?) } ?? startServer(folder, cacheEntries: 0, http: true)
        defer { try? server.1?.stop() }
        let latency = try measureLatency(endpoint: server.0, workload: workload)
        progress.advance(by: 1, extra: String(format: "overhead %.2f ms of %.1f ms compute", latency.overheadMs.p50, latency.computeMs.p50))
        let throughput = try measureThroughput(endpoint: server.0, workload: workload, clients: clients, inProcessRate: inProcessRate)
        progress.advance(by: 1, extra: String(format: "%d clients: %.0f%% of in process", clients, 100 * throughput.fractionOfInProcess))
        // A server given by --endpoint may have no HTTP front door, and its address is unknown.
        let http = try server.1?.server.httpAddress.map { try HTTPFrontDoorResults.measure(zeromq: server.0, http: $0, workload: workload) }
        progress.advance(by: 1, extra: http.map { String(format: "HTTP p50 %+.1f%%, single samples %.0f%% of ZeroMQ", 100 * $0.latency.overheadP50,
                                                            100 * $0.singleSamples.fractionOfZeromq) } ?? "no HTTP front door")
        try server.1?.stop()

        // The cache case needs two servers that differ only in the cache; a server given by
        // --endpoint is whatever it is, so the case runs only on servers started here.
        var cache: Cache?
        var adaptStream: AdaptStreamResults?
        if endpoint == nil {
            cache = try measureCache(folder, request: workload.requests[0], users: users, knownUsers: inProcess.users)
            progress.advance(by: 1, extra: String(format: "cache %.0f× faster", cache?.speedup ?? 0))
            adaptStream = try AdaptStreamResults.measure(folder, workload: workload, clients: clients)
            progress.advance(by: 1, extra: String(format: "adapt stream: rank p99 %.2f×", adaptStream?.p99Ratio ?? 0))
        }
        var topologies: TopologyResults?
        if deployments, let binary {
            let pool = try makeWorkload(data: data, tokenizer: inProcess, requests: TopologyResults.mostRequests(quick: quick),
                                        candidates: TopologyResults.mostCandidates(quick: quick))
            topologies = try TopologyResults.measure(model: folder, binary: binary, quick: quick, workload: { requests, n in
                guard requests <= pool.requests.count else { throw CLIError("bench serve: at most \(pool.requests.count) requests per case") }
                return pool.requests.prefix(requests).map { ($0.prompt, Array($0.candidates.prefix(n))) }
            }, progress: progress)
        }
        progress.finish()
        let sequenceTokens = Double(prepared.reduce(0) { $0 + $1.tokens }) / Double(max(prepared.count, 1))
        let report = Report(date: ISO8601DateFormatter().string(from: Date()), machine: BenchKernels.machineDescription(),
                            command: "prm bench serve " + CommandLine.arguments.dropFirst(3).joined(separator: " "),
                            model: folder.relativePath, endpoint: endpoint ?? "in-process server on loopback", candidates: candidates,
                            meanReplyTokens: Double(workload.replyTokens.reduce(0, +)) / Double(max(workload.replyTokens.count, 1)),
                            meanSequenceTokens: sequenceTokens, sgemmPeakGflops: peak,
                            latency: latency, throughput: throughput, cache: cache, http: http, topologies: topologies,
                            adaptStream: adaptStream)
        if let output { try BenchKernels.writeResults(report, markdown: markdown(report), to: output) }
        return report
    }

    /// Requests of `candidates` real replies of 48–80 tokens each under distinct real prompts.
    static func makeWorkload(data: URL, tokenizer scorer: Scorer, requests: Int, candidates: Int) throws -> Workload {
        let rows = try JSONLines.values(try InputFiles.read(data.path), name: data.path).compactMap(\.value.object)
        var seenPrompts = Set<String>(), prompts: [String] = []
        for row in rows {
            guard let dialogue = row["prompt"]?.string, let turn = lastHumanTurn(dialogue), seenPrompts.insert(turn).inserted else { continue }
            prompts.append(turn)
        }
        var seenReplies = Set<String>(), pool: [String] = []
        for row in rows {
            for key in ["chosen", "rejected"] {
                if let reply = row[key]?.string, seenReplies.insert(reply).inserted { pool.append(reply) }
            }
        }
        let lengths = scorer.preparer.tokenize(pool).map(\.count)
        let replies = zip(pool, lengths).filter { (48...80).contains($0.1) }
        guard replies.count >= candidates, prompts.count >= requests else {
            throw CLIError("\(data.path): need \(requests) prompts and \(candidates) replies of 48–80 tokens; found \(prompts.count) and \(replies.count)")
        }
        var workload = Workload(requests: [], replyTokens: [])
        for r in 0..<requests {
            let chosen = (0..<candidates).map { replies[(r * candidates + $0) % replies.count] }
            workload.requests.append((prompts[r], chosen.map(\.0)))
            workload.replyTokens += chosen.map(\.1)
        }
        return workload
    }

    /// "Human: <the last human turn>\n\nAssistant:" of a dialogue prompt.
    static func lastHumanTurn(_ dialogue: String) -> String? {
        guard let start = dialogue.range(of: "Human:", options: .backwards) else { return nil }
        return String(dialogue[start.lowerBound...])
    }

    /// A server in this process on a loopback port; `http`: with the HTTP front door on another.
    static func startServer(_ folder: URL, cacheEntries: Int, http: Bool = false,
                            configure: (inout ServerSettings) -> Void = { _ in }) throws -> (String, BackgroundServer?) {
        var settings = ServerSettings()
        settings.bind = "tcp://127.0.0.1:0"
        settings.http = http ? HTTPSettings(address: "127.0.0.1:0") : nil
        settings.cacheEntries = cacheEntries
        settings.modelPath = folder.path
        configure(&settings)
        let scorer = try Scorer(checkpoint: folder, tokensPerBatch: settings.batchTokens, cacheEntries: cacheEntries)
        let server = try BackgroundServer(try ScoringServer(scorer: scorer, settings: settings))
        return (server.endpoint, server)
    }

    static func measureLatency(endpoint: String, workload: Workload) throws -> Latency {
        let client = try ScoringClient(endpoint: endpoint, timeout: 120, retries: 0)
        let first = workload.requests[0]
        _ = try client.rank(prompt: first.prompt, candidates: first.candidates)  // warm-up
        var roundTrips: [Double] = [], compute: [Double] = [], queue: [Double] = [], overhead: [Double] = []
        for request in workload.requests.dropFirst() {
            let start = MonotonicClock.now
            let reply = try client.rank(prompt: request.prompt, candidates: request.candidates)
            let ms = (MonotonicClock.now - start) * 1000
            roundTrips.append(ms)
            compute.append(reply.computeMs)
            queue.append(reply.queueMs)
            overhead.append(ms - reply.computeMs)
        }
        let (c, o) = (Percentiles(compute), Percentiles(overhead))
        return Latency(requests: roundTrips.count, roundTripMs: Percentiles(roundTrips), computeMs: c, queueMs: Percentiles(queue),
                       overheadMs: o, overheadFractionOfComputeP50: o.p50 / max(c.p50, 1e-9))
    }

    static func measureThroughput(endpoint: String, workload: Workload, clients: Int, inProcessRate: Double) throws -> Throughput {
        let requests = workload.requests
        let before = try BatchCounts(endpoint: endpoint)
        let seconds = try ClientLoad.drive(endpoint: endpoint, keys: nil, clients: clients, requests: requests.count) { client, r in
            _ = try client.rank(prompt: requests[r].prompt, candidates: requests[r].candidates)
        }
        let batches = try BatchCounts(endpoint: endpoint).since(before)
        let items = requests.reduce(0) { $0 + $1.candidates.count }
        let rate = Double(items) / seconds
        return Throughput(clients: clients, requests: requests.count, items: items, seconds: seconds, itemsPerSecond: rate,
                          inProcessItemsPerSecond: inProcessRate, fractionOfInProcess: rate / inProcessRate,
                          meanRequestsPerBatch: batches.meanRequests)
    }

    /// One candidate set ranked for `users` users (known ids first, then new ones), sequentially.
    static func measureCache(_ folder: URL, request: (prompt: String, candidates: [String]), users: Int, knownUsers: UserTable) throws -> Cache {
        let ids = knownUsers.indices.keys.sorted() + (0..<users).map { "new-user-\($0)" }
        func time(cacheEntries: Int) throws -> (Double, Double) {
            let (endpoint, server) = try startServer(folder, cacheEntries: cacheEntries)
            defer { try? server?.stop() }
            let client = try ScoringClient(endpoint: endpoint, timeout: 120, retries: 0)
            _ = try client.rank(prompt: "Human: warm up\n\nAssistant:", candidates: ["ok"])
            let start = MonotonicClock.now
            for user in ids.prefix(users) { _ = try client.rank(prompt: request.prompt, candidates: request.candidates, userID: user) }
            let seconds = MonotonicClock.now - start
            let cache = try client.metrics()["cache"]?.object
            return (seconds, cache?["hit_rate"]?.number?.value ?? 0)
        }
        let (uncached, _) = try time(cacheEntries: 0)
        let (cached, hitRate) = try time(cacheEntries: ServerSettings().cacheEntries)
        return Cache(users: users, uncachedSeconds: uncached, cachedSeconds: cached, speedup: uncached / cached, hitRate: hitRate)
    }

    static func markdown(_ r: Report) -> String {
        var lines = ["# prm bench serve", "", "\(r.machine); \(r.date)", "", "Command: `\(r.command)`", "",
                     "Model `\(r.model)`; server: \(r.endpoint). Requests: \(r.candidates) real replies "
                        + String(format: "(%.0f tokens on average; %.0f per scored sequence with the prompt) each under its own real prompt. ",
                                 r.meanReplyTokens, r.meanSequenceTokens)
                        + String(format: "sgemm peak in this run: %.0f GFLOP/s.", r.sgemmPeakGflops), ""]
        let l = r.latency
        lines += ["| one client, one request at a time (\(l.requests) requests) | p50 | p95 | p99 |", "|---|---:|---:|---:|"]
        for (name, p) in [("round trip (ms)", l.roundTripMs), ("server compute (ms)", l.computeMs), ("server queue (ms)", l.queueMs),
                          ("wire + JSON + queueing = round trip − compute (ms)", l.overheadMs)] {
            lines.append(String(format: "| %@ | %.2f | %.2f | %.2f |", name, p.p50, p.p95, p.p99))
        }
        lines += ["", String(format: "Overhead at p50: **%.1f%%** of compute time.", 100 * l.overheadFractionOfComputeP50), ""]
        let t = r.throughput
        lines += ["| throughput | items/s | of in-process batched |", "|---|---:|---:|",
                  String(format: "| in process, batched (Scorer, %d requests at once) | %.0f | 100%% |", t.requests, t.inProcessItemsPerSecond),
                  String(format: "| %d concurrent clients over ZeroMQ (%.1f requests per batch) | %.0f | **%.0f%%** |", t.clients,
                         t.meanRequestsPerBatch, t.itemsPerSecond, 100 * t.fractionOfInProcess), ""]
        if let c = r.cache {
            lines += [String(format: "Ranking one candidate set for %d users: %.2f s without the h cache, %.3f s with it: **%.0f× faster** (hit rate %.0f%%).",
                             c.users, c.uncachedSeconds, c.cachedSeconds, c.speedup, 100 * c.hitRate), ""]
        }
        if let h = r.http { lines.append(h.markdown()) }
        if let a = r.adaptStream { lines.append(a.markdown()) }
        if let t = r.topologies { lines.append(t.markdown()) }
        return lines.joined(separator: "\n")
    }
}
