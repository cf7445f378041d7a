import Foundation
import PRMCLI
import PRMCore
import PRMServing

/// The deployment shapes `prm bench serve` compares, each run as real processes of the `prm`
/// binary on loopback: one server with all cores, and the proxy with one worker (all cores) or
/// two single-threaded workers.
enum ServeTopology: String, Codable, CaseIterable {
    case server = "one server, 2 threads"
    case proxyOneWorker = "proxy + 1 worker (2 threads)"
    case proxyTwoWorkers = "proxy + 2 workers (1 thread each)"
}

/// A running `prm serve` or `prm proxy` process, stopped with SIGTERM (and waited for).
final class ServiceProcess {
    let process = Process()
    let log: URL

    init(binary: URL, arguments: [String], log: URL) throws {
        self.log = log
        process.executableURL = binary
        process.arguments = arguments
        _ = FileManager.default.createFile(atPath: log.path, contents: nil)
        let handle = try FileHandle(forWritingTo: log)
        process.standardOutput = handle
        process.standardError = handle
        try process.run()
    }

    func stop() {
        guard process.isRunning else { return }
        process.terminate()
        process.waitUntilExit()
    }

    deinit { stop() }
}

/// Processes of one topology, up and answering `health` (through the proxy, with every worker in
/// its pool) before the first measurement.
final class RunningTopology {
    let topology: ServeTopology
    let endpoint: String
    private var processes: [ServiceProcess] = []

    init(_ topology: ServeTopology, model: URL, binary: URL, folder: URL, curve: (server: [String], client: Curve.ClientKeys)?,
         workerCurve: [String]) throws {
        self.topology = topology
        let front = try FreePort.endpoint()
        endpoint = front
        let common = ["--cache-entries", "0"]
        func start(_ name: String, _ arguments: [String]) throws {
            processes.append(try ServiceProcess(binary: binary, arguments: arguments, log: folder.appendingPathComponent("\(name).log")))
        }
        switch topology {
        case .server:
            try start("server", ["serve", "--model", model.path, "--bind", front, "--threads", "2"] + common + (curve?.server ?? []))
        case .proxyOneWorker, .proxyTwoWorkers:
            let back = try FreePort.endpoint()
            try start("proxy", ["proxy", "--front", front, "--back", back, "--heartbeat-ms", "500"] + (curve?.server ?? []))
            let (workers, threads) = topology == .proxyOneWorker ? (1, "2") : (2, "1")
            for w in 0..<workers {
                try start("worker-\(w)", ["serve", "--model", model.path, "--connect", back, "--threads", threads, "--heartbeat-ms", "500"]
                          + common + workerCurve)
            }
        }
        try waitUntilReady(keys: curve?.client, workers: topology == .proxyTwoWorkers ? 2 : 1)
    }

    private func waitUntilReady(keys: Curve.ClientKeys?, workers: Int) throws {
        let client = try ScoringClient(endpoint: endpoint, timeout: 1, retries: 0, keys: keys)
        let deadline = MonotonicClock.now + 60
        while MonotonicClock.now < deadline {
            if let health = try? client.health(), health["healthy"]?.bool == true,
               (health["pool"]?.object?["workers"]?.number?.integer ?? workers) >= workers {
                return
            }
            if let dead = processes.first(where: { !$0.process.isRunning }) {
                throw CLIError("bench serve: a \(topology.rawValue) process exited; see \(dead.log.path)")
            }
            Thread.sleep(forTimeInterval: 0.2)
        }
        throw CLIError("bench serve: \(topology.rawValue) did not become healthy within 60 s")
    }

    func stop() { for process in processes.reversed() { process.stop() } }
    deinit { stop() }
}

/// A loopback TCP endpoint with a port the system had free a moment ago.
enum FreePort {
    static func endpoint() throws -> String {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw CLIError("bench serve: cannot create a socket to find a free port") }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
        }
        guard bound else { throw CLIError("bench serve: cannot find a free port") }
        return "tcp://127.0.0.1:\(UInt16(bigEndian: address.sin_port))"
    }
}

/// Concurrent clients, each one request at a time, over a fixed set of requests.
enum ClientLoad {
    struct Point: Codable {
        var topology: String
        var clients: Int
        var candidates: Int
        var curve: Bool
        var requests: Int
        var seconds: Double
        var requestsPerSecond: Double
        var itemsPerSecond: Double
        var latencyMs: BenchServe.Percentiles
        /// Round trip minus the server's queue and compute time: the wire, JSON and any proxy hop.
        var overheadMs: BenchServe.Percentiles
    }

    static func run(endpoint: String, requests: [(prompt: String, candidates: [String])], clients: Int, keys: Curve.ClientKeys?,
                    topology: ServeTopology, curve: Bool) throws -> Point {
        let latencies = SharedList<Double>(), overheads = SharedList<Double>()
        let seconds = try drive(endpoint: endpoint, keys: keys, clients: clients, requests: requests.count) { client, r in
            let t = MonotonicClock.now
            let reply = try client.rank(prompt: requests[r].prompt, candidates: requests[r].candidates)
            let ms = (MonotonicClock.now - t) * 1000
            latencies.append(ms)
            overheads.append(ms - reply.queueMs - reply.computeMs)
        }
        let items = requests.reduce(0) { $0 + $1.candidates.count }
        return Point(topology: topology.rawValue, clients: clients, candidates: requests.first?.candidates.count ?? 0, curve: curve,
                     requests: requests.count, seconds: seconds, requestsPerSecond: Double(requests.count) / seconds,
                     itemsPerSecond: Double(items) / seconds,
                     latencyMs: BenchServe.Percentiles(latencies.elements),
                     overheadMs: BenchServe.Percentiles(overheads.elements))
    }

    /// Runs `clients` concurrent ZeroMQ clients, each on its own thread with its own socket,
    /// sending requests `0..<requests` round-robin one at a time through `send(client, index)`;
    /// returns the wall time.
    static func drive(endpoint: String, keys: Curve.ClientKeys?, clients: Int, requests: Int,
                      _ send: @escaping @Sendable (ScoringClient, Int) throws -> Void) throws -> Double {
        try fanOut(clients: clients, requests: requests, connect: {
            try ScoringClient(endpoint: endpoint, timeout: 300, retries: 0, keys: keys)
        }, send).seconds
    }

    /// Runs `clients` concurrent clients made by `connect`, each on its own thread, sending
    /// requests `0..<requests` round-robin one at a time; returns the wall time and the CPU time
    /// the client threads used (so a bench can show its load generator is not what limits it).
    /// One thread per client: concurrentPerform would run only as many as there are cores. The
    /// first client failure is thrown once all have finished.
    static func fanOut<Client>(clients: Int, requests: Int, connect: @escaping @Sendable () throws -> Client,
                               _ send: @escaping @Sendable (Client, Int) throws -> Void) throws -> (seconds: Double, clientCPUSeconds: Double) {
        let failures = SharedList<String>(), cpu = SharedList<Double>()
        let group = DispatchGroup()
        let start = MonotonicClock.now
        for worker in 0..<clients {
            group.enter()
            let thread = Thread {
                defer { group.leave() }
                let cpuStart = threadCPUSeconds()
                defer { cpu.append(threadCPUSeconds() - cpuStart) }
                do {
                    let client = try connect()
                    for r in stride(from: worker, to: requests, by: clients) { try send(client, r) }
                } catch {
                    failures.append("client \(worker): \(error)")
                }
            }
            thread.start()
        }
        group.wait()
        let seconds = MonotonicClock.now - start
        if let failure = failures.elements.first { throw CLIError("bench serve: \(failure)") }
        return (seconds, cpu.elements.reduce(0, +))
    }

    /// CPU time of the calling thread (user + system), in seconds.
    static func threadCPUSeconds() -> Double {
        var time = timespec()
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &time)
        return Double(time.tv_sec) + Double(time.tv_nsec) / 1e9
    }
}

/// The topology part of `prm bench serve`: concurrency, candidates and CURVE, as processes.
struct TopologyResults: Codable {
    var concurrency: [ClientLoad.Point] = []
    var candidates: [ClientLoad.Point] = []
    var curve: [ClientLoad.Point] = []
    /// Throughput of two single-threaded workers behind the proxy over one two-thread server, at `compareClients`.
    var twoWorkersFractionOfServer = 0.0
    /// Median overhead (round trip − queue − compute) through the proxy minus directly, one client.
    var proxyAddedMsP50 = 0.0
    /// Throughput lost to CURVE at N = 16.
    var curveCostFraction = 0.0
    var compareClients = 0

    static func clientCounts(quick: Bool) -> [Int] { quick ? [1, 2, 4] : [1, 2, 4, 8, 16, 32] }
    static func candidateCounts(quick: Bool) -> [Int] { quick ? [1, 4] : [1, 4, 16, 64] }
    /// Requests per case: enough that every client sends several.
    static func requestCount(clients: Int, quick: Bool) -> Int { quick ? max(8, 2 * clients) : max(64, 4 * clients) }
    /// The workload pool the cases draw their requests from.
    static func mostRequests(quick: Bool) -> Int { clientCounts(quick: quick).map { requestCount(clients: $0, quick: quick) }.max() ?? 1 }
    static func mostCandidates(quick: Bool) -> Int { candidateCounts(quick: quick).max() ?? 1 }

    /// Runs every case; `workload(requests, candidates)` makes distinct-prompt requests.
    static func measure(model: URL, binary: URL, quick: Bool,
                        workload: (Int, Int) throws -> [(prompt: String, candidates: [String])],
                        progress: ProgressBar) throws -> TopologyResults {
        var results = TopologyResults()
        let folder = try FileManager.default.url(for: .itemReplacementDirectory, in: .userDomainMask,
                                                 appropriateFor: FileManager.default.temporaryDirectory, create: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let clientCounts = Self.clientCounts(quick: quick)
        let candidateCounts = Self.candidateCounts(quick: quick)
        let n = quick ? 4 : 16
        results.compareClients = quick ? 4 : 8
        func requests(for clients: Int, candidates: Int) throws -> [(prompt: String, candidates: [String])] {
            try workload(requestCount(clients: clients, quick: quick), candidates)
        }
        for topology in ServeTopology.allCases {
            let running = try RunningTopology(topology, model: model, binary: binary, folder: folder, curve: nil, workerCurve: [])
            defer { running.stop() }
            for clients in clientCounts {
                let point = try ClientLoad.run(endpoint: running.endpoint, requests: try requests(for: clients, candidates: n),
                                               clients: clients, keys: nil, topology: topology, curve: false)
                results.concurrency.append(point)
                progress.advance(by: 1, extra: String(format: "%@, %d clients: %.0f items/s", topology.rawValue, clients, point.itemsPerSecond))
            }
            if topology == .server {
                for candidates in candidateCounts {
                    let point = try ClientLoad.run(endpoint: running.endpoint, requests: try requests(for: results.compareClients, candidates: candidates),
                                                   clients: results.compareClients, keys: nil, topology: topology, curve: false)
                    results.candidates.append(point)
                    progress.advance(by: 1, extra: String(format: "N = %d: %.0f items/s", candidates, point.itemsPerSecond))
                }
            }
        }
        // CURVE: the same server shape with keys made for the run.
        let keys = folder.appendingPathComponent("keys"), allow = keys.appendingPathComponent("allow")
        try FileManager.default.createDirectory(at: allow, withIntermediateDirectories: true)
        let server = keys.appendingPathComponent("server"), client = allow.appendingPathComponent("client")
        try Curve.writeKeyPair(try Curve.generate(), name: server)
        try Curve.writeKeyPair(try Curve.generate(), name: client)
        let clientKeys = try Curve.ClientKeys(serverKeyFile: server.appendingPathExtension("pub"), secretKeyFile: client.appendingPathExtension("key"))
        let curveRequests = try requests(for: results.compareClients, candidates: n)
        for withCurve in [false, true] {
            let running = try RunningTopology(.server, model: model, binary: binary, folder: folder,
                                              curve: withCurve ? (["--curve-secret-key", server.appendingPathExtension("key").path,
                                                                   "--allow-keys", allow.path], clientKeys) : nil, workerCurve: [])
            defer { running.stop() }
            let point = try ClientLoad.run(endpoint: running.endpoint, requests: curveRequests, clients: results.compareClients,
                                           keys: withCurve ? clientKeys : nil, topology: .server, curve: withCurve)
            results.curve.append(point)
            progress.advance(by: 1, extra: String(format: "CURVE %@: %.0f items/s", withCurve ? "on" : "off", point.itemsPerSecond))
        }
        func point(_ topology: ServeTopology, clients: Int) -> ClientLoad.Point? {
            results.concurrency.first { $0.topology == topology.rawValue && $0.clients == clients }
        }
        if let one = point(.server, clients: results.compareClients), let two = point(.proxyTwoWorkers, clients: results.compareClients) {
            results.twoWorkersFractionOfServer = two.itemsPerSecond / one.itemsPerSecond
        }
        if let direct = point(.server, clients: 1), let proxied = point(.proxyOneWorker, clients: 1) {
            results.proxyAddedMsP50 = proxied.overheadMs.p50 - direct.overheadMs.p50
        }
        if results.curve.count == 2 { results.curveCostFraction = 1 - results.curve[1].itemsPerSecond / results.curve[0].itemsPerSecond }
        return results
    }

    /// Cases `measure` runs, for the progress bar.
    static func caseCount(quick: Bool) -> Int { (quick ? 3 : 6) * ServeTopology.allCases.count + (quick ? 2 : 4) + 2 }

    func markdown() -> String {
        var lines = ["## Deployments (separate processes on loopback, h cache off)", "",
                     "Overhead is the round trip minus the server's queue and compute time; behind the proxy it also holds "
                     + "the wait at the proxy for a free worker slot, which dominates once clients outnumber the slots.", "",
                     "| topology | clients | N | requests/s | items/s | p50 ms | p95 ms | p99 ms | overhead p50 ms |",
                     "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for p in concurrency + candidates + curve {
            lines.append(String(format: "| %@%@ | %d | %d | %.1f | %.0f | %.1f | %.1f | %.1f | %.2f |", p.topology, p.curve ? ", CURVE" : "",
                                p.clients, p.candidates, p.requestsPerSecond, p.itemsPerSecond, p.latencyMs.p50, p.latencyMs.p95,
                                p.latencyMs.p99, p.overheadMs.p50))
        }
        lines += ["",
                  String(format: "- Two single-threaded workers behind the proxy: **%.0f%%** of one two-thread server's throughput (%d clients).",
                         100 * twoWorkersFractionOfServer, compareClients),
                  String(format: "- The proxy adds **%.2f ms** at p50 (round trip minus the server's queue and compute time, one client).", proxyAddedMsP50),
                  String(format: "- CURVE costs **%.1f%%** of throughput (%d clients).", 100 * curveCostFraction, compareClients), ""]
        return lines.joined(separator: "\n")
    }
}

/// A list that client threads append to concurrently (Foundation's NSMutableArray is not safe
/// for that on Linux: concurrent appends crashed the benchmark).
final class SharedList<Element: Sendable>: @unchecked Sendable {
    private let lock = NSLock()
    private var stored: [Element] = []

    func append(_ element: Element) { lock.withLock { stored.append(element) } }

    var elements: [Element] { lock.withLock { stored } }
}
