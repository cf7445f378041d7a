import Foundation
import PRMCLI
import PRMCore
import PRMServing
import Synchronization

/// The adapt-stream part of `prm bench serve`: what a client adapting users continuously costs
/// the others' `rank` latency. One server (started here, its user log in a scratch folder), the
/// same `rank` requests from `clients` clients twice: alone, then while one more client sends
/// `adapt` requests back to back, each a new user with `comparisons` comparisons (an adapt's h
/// are computed in the compute thread's batches, beside the ranks'). Ratios are with / without.
struct AdaptStreamResults: Codable {
    struct Phase: Codable {
        var rankRequests: Int
        var seconds: Double
        var rankLatencyMs: BenchServe.Percentiles
        /// Adapts answered while the ranks ran (0 without the stream).
        var adapts: Int
        var adaptLatencyMs: BenchServe.Percentiles?
    }

    var clients: Int
    var comparisonsPerAdapt: Int
    var without: Phase
    var with: Phase
    var p50Ratio: Double
    var p99Ratio: Double

    static let comparisons = 4

    static func measure(_ folder: URL, workload: BenchServe.Workload, clients: Int) throws -> AdaptStreamResults {
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("prm-bench-adapt-\(ProcessInfo.processInfo.processIdentifier)")
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: scratch) }
        // No h cache: the second phase ranks the first's texts again, and the adapts reuse them;
        // with a cache both would be served from it and the phases would not compare.
        let (endpoint, server) = try BenchServe.startServer(folder, cacheEntries: 0) { settings in
            settings.userLog = scratch.appendingPathComponent("users.jsonl")
            // The stream is the load under test: no rate limit or user cap ends it early.
            settings.adaptsPerMinute = .max
            settings.maxAdaptedUsers = 1_000_000
        }
        defer { try? server?.stop() }
        let warm = try ScoringClient(endpoint: endpoint, timeout: 120, retries: 0)
        _ = try warm.rank(prompt: workload.requests[0].prompt, candidates: workload.requests[0].candidates)
        let without = try phase(endpoint: endpoint, workload: workload, clients: clients, adapting: false)
        let with = try phase(endpoint: endpoint, workload: workload, clients: clients, adapting: true)
        return AdaptStreamResults(clients: clients, comparisonsPerAdapt: comparisons, without: without, with: with,
                                  p50Ratio: with.rankLatencyMs.p50 / max(without.rankLatencyMs.p50, 1e-9),
                                  p99Ratio: with.rankLatencyMs.p99 / max(without.rankLatencyMs.p99, 1e-9))
    }

    /// The ranks of `workload` from `clients` clients; with `adapting`, one more client adapts
    /// new users until they are done.
    private static func phase(endpoint: String, workload: BenchServe.Workload, clients: Int, adapting: Bool) throws -> Phase {
        let requests = workload.requests
        let latencies = SharedList<Double>(), adaptLatencies = SharedList<Double>(), failures = SharedList<String>()
        let done = Mutex(false), stream = DispatchGroup()
        if adapting {
            stream.enter()
            Thread {
                defer { stream.leave() }
                do {
                    let client = try ScoringClient(endpoint: endpoint, timeout: 300, retries: 0)
                    var n = 0
                    while !done.withLock({ $0 }) {
                        let t = MonotonicClock.now
                        _ = try client.call("adapt", members: adaptMembers(user: "bench-adapt-\(n)", requests, from: n))
                        adaptLatencies.append((MonotonicClock.now - t) * 1000)
                        n += 1
                    }
                } catch {
                    failures.append("adapting client: \(error)")
                }
            }.start()
        }
        let seconds = try ClientLoad.drive(endpoint: endpoint, keys: nil, clients: clients, requests: requests.count) { client, r in
            let t = MonotonicClock.now
            _ = try client.rank(prompt: requests[r].prompt, candidates: requests[r].candidates)
            latencies.append((MonotonicClock.now - t) * 1000)
        }
        done.withLock { $0 = true }
        stream.wait()
        if let failure = failures.elements.first { throw CLIError("bench serve: \(failure)") }
        let adapts = adaptLatencies.elements
        return Phase(rankRequests: requests.count, seconds: seconds, rankLatencyMs: BenchServe.Percentiles(latencies.elements),
                     adapts: adapts.count, adaptLatencyMs: adapting ? BenchServe.Percentiles(adapts) : nil)
    }

    /// An adapt of `user`: `comparisons` comparisons from consecutive requests of the workload
    /// (its prompt, its first reply chosen over its second).
    private static func adaptMembers(user: String, _ requests: [(prompt: String, candidates: [String])], from n: Int) -> (inout JSONWriter) -> Void {
        { w in
            w.key("user_id"); w.string(user)
            w.key("comparisons")
            w.beginArray()
            for k in 0..<comparisons {
                let request = requests[(n * comparisons + k) % requests.count]
                w.object(["prompt": request.prompt, "chosen": request.candidates[0], "rejected": request.candidates[1]])
            }
            w.endArray()
        }
    }

    func markdown() -> String {
        var lines = ["## rank latency under a concurrent adapt stream", "",
                     "\(clients) clients rank the same \(without.rankRequests) requests twice on one server: alone, then while one more client "
                        + "sends adapt requests back to back (each a new user with \(comparisonsPerAdapt) comparisons).", "",
                     "| case | rank p50 (ms) | rank p99 (ms) | adapts answered | adapt p50 (ms) |", "|---|---:|---:|---:|---:|"]
        for (name, p) in [("ranks alone", without), ("ranks + adapt stream", with)] {
            lines.append(String(format: "| %@ | %.1f | %.1f | %d | %@ |", name, p.rankLatencyMs.p50, p.rankLatencyMs.p99, p.adapts,
                                p.adaptLatencyMs.map { String(format: "%.1f", $0.p50) } ?? "–"))
        }
        lines += ["", String(format: "With the stream: rank p50 **%.2f×**, p99 **%.2f×** of alone.", p50Ratio, p99Ratio), ""]
        return lines.joined(separator: "\n")
    }
}
