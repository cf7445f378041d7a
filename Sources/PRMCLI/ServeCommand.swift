import Foundation
import PRMCore
import PRMScoring
import PRMServing

/// `prm serve`: the ZeroMQ scoring service (protocols/PROTOCOL.md).
enum ServeCommand: Subcommand {
    static let defaults = ServerSettings()

    static let spec = CommandSpec(
        name: "serve",
        abstract: "Serve a reward model over ZeroMQ: rank and score candidate replies per user.",
        discussion: """
        Binds a ROUTER socket and speaks protocol v1 (protocols/PROTOCOL.md; JSON Schemas in \
        protocols/v1): ops rank, score, info, health and metrics. Clients connect REQ or DEALER \
        sockets; the Python client is in protocols/python, the Swift one is `prm score --server`.

        Requests that arrive together are scored together, up to --batch-tokens tokens, waiting at \
        most --max-wait-ms for a batch to fill. With the linear-head aggregator the hidden state of \
        each text is cached (--cache-entries), so ranking the same candidates for another user costs \
        a dot product. SIGTERM or SIGINT: new work is refused (shutting_down), everything accepted \
        is answered, then the server exits 0; after --drain-timeout seconds, requests still queued \
        are answered shutting_down instead of computed (the batch being computed is finished).

        Examples:
          prm serve --model runs/prm
          prm serve --model runs/prm --bind tcp://127.0.0.1:7000 --batch-tokens 16384
          prm serve --model runs/prm --connect tcp://10.0.0.5:5556 --threads 1
        """,
        options: [
            .value("model", placeholder: "DIR", help: "Reward-model checkpoint (from prm train)."),
            .value("bind", placeholder: "ENDPOINT", help: "Where to listen (loopback by default).", default: defaults.bind),
            .value("connect", placeholder: "ENDPOINT", help: "Be a worker of the prm proxy whose --back is ENDPOINT instead of binding."),
            .value("slots", placeholder: "N", help: "Worker: requests the proxy may have in flight here.", default: "\(defaults.slots)"),
            .value("heartbeat-ms", placeholder: "MS", help: "Worker: heartbeat interval (match the proxy's).",
                   default: "\(defaults.heartbeat.intervalMs)"),
            .value("liveness", placeholder: "N", help: "Worker: silent heartbeats before the proxy is taken for gone.",
                   default: "\(defaults.heartbeat.liveness)"),
            .value("batch-tokens", placeholder: "N", help: "Tokens per compute batch (bounds activation memory).",
                   default: "\(defaults.batchTokens)"),
            .value("max-wait-ms", placeholder: "MS", help: "Longest wait for a batch to fill.", default: "\(defaults.maxWaitMs)"),
            .value("cache-entries", placeholder: "N", help: "Hidden states kept in the LRU cache (0: none).",
                   default: "\(defaults.cacheEntries)"),
            .value("max-candidates", placeholder: "N", help: "Candidates per rank, items per score.",
                   default: "\(defaults.limits.maxCandidates)"),
            .value("max-message-bytes", placeholder: "N", help: "Largest request body.", default: "\(defaults.limits.maxMessageBytes)"),
            .value("max-request-tokens", placeholder: "N", help: "Tokens of one request after the window.",
                   default: "\(defaults.limits.maxRequestTokens)"),
            .value("max-queued", placeholder: "N", help: "Requests waiting for computation; beyond: overloaded.",
                   default: "\(defaults.limits.maxQueuedRequests)"),
            drainTimeoutOption,
            .value("stall-ms", placeholder: "MS", help: "health reports the compute thread stalled after this long without progress.",
                   default: "\(defaults.stallMs)"),
            .value("threads", placeholder: "N", help: "Compute threads (sgemm and prm's parallel regions); give each of several workers on one host its share of the cores.",
                   default: "\(Parallel.cores)"),
            .value("metrics-http", placeholder: "HOST:PORT", help: "Answer GET /metrics in Prometheus's text format there (e.g. 127.0.0.1:9464)."),
            CurveOptions.secretKey, CurveOptions.allowKeys, CurveOptions.serverKey,
        ])

    static func run<Out: TextOutputStream>(_ arguments: ParsedArguments, output _: inout Out) throws -> Int32 {
        let settings = try settingsFrom(arguments)
        let threads = try positive(arguments, "threads"), savedThreads = Compute.threads
        Compute.threads = threads
        defer { Compute.threads = savedThreads }  // in-process callers (tests) get theirs back
        let scorer = try Scorer(checkpoint: URL(fileURLWithPath: settings.modelPath), tokensPerBatch: settings.batchTokens,
                                cacheEntries: settings.cacheEntries)
        let server = try ScoringServer(scorer: scorer, settings: settings)
        let model = scorer.model
        if settings.connect == nil { Endpoints.warnIfExposed(settings.bind, curve: settings.curve.enabled, role: "prm serve") }
        try server.run { endpoint in
            let limits = settings.limits
            Log.info("prm \(PRMVersion.current) serving \(settings.modelPath) on \(endpoint)")
            Log.info("model: \(model.backbone.modelType), \(model.config.aggregator.rawValue), \(model.config.userModel.kind.rawValue) users "
                     + "(\(scorer.users.count) known), window \(model.config.maxLength) tokens")
            Log.info("limits: \(limits.maxCandidates) candidates, \(limits.maxMessageBytes) bytes, \(limits.maxRequestTokens) tokens per request, "
                     + "\(limits.maxQueuedRequests) queued; batches of \(settings.batchTokens) tokens, wait \(settings.maxWaitMs) ms, "
                     + "cache \(settings.cacheEntries) entries; \(Compute.threads) threads on \(Compute.backend)")
        }
        return 0
    }

    static func settingsFrom(_ a: ParsedArguments) throws -> ServerSettings {
        var s = ServerSettings()
        s.modelPath = try a.require("model")
        s.bind = a.string("bind", default: defaults.bind)
        if a.isSet("connect") {
            guard !a.isSet("bind") else { throw a.usageError("give --bind (a server) or --connect (a worker), not both") }
            s.connect = a.string("connect")
        }
        s.slots = try positive(a, "slots")
        s.heartbeat = try heartbeat(a)
        s.curve = try CurveOptions.settings(a)
        s.metricsHTTP = a.string("metrics-http")
        if s.curve.enabled {
            if s.connect == nil, s.curve.allowKeys == nil { throw a.usageError("--curve-secret-key on a server needs --allow-keys DIR") }
            if s.connect != nil, s.curve.serverKey == nil { throw a.usageError("a CURVE worker needs --curve-server-key (the proxy's NAME.pub)") }
        }
        s.batchTokens = try positive(a, "batch-tokens")
        s.maxWaitMs = try a.double("max-wait-ms") ?? defaults.maxWaitMs
        guard s.maxWaitMs >= 0 else { throw a.usageError("--max-wait-ms must be at least 0") }
        s.cacheEntries = try a.int("cache-entries") ?? defaults.cacheEntries
        guard s.cacheEntries >= 0 else { throw a.usageError("--cache-entries must be at least 0") }
        s.limits.maxCandidates = try positive(a, "max-candidates")
        s.limits.maxMessageBytes = try positive(a, "max-message-bytes")
        s.limits.maxRequestTokens = try positive(a, "max-request-tokens")
        s.limits.maxQueuedRequests = try positive(a, "max-queued")
        s.drainTimeout = try drainTimeout(a)
        s.stallMs = try a.double("stall-ms") ?? defaults.stallMs
        guard s.stallMs > 0 else { throw a.usageError("--stall-ms must be positive") }
        return s
    }

    /// An integer option that must be at least 1 (its declared default when absent).
    static func positive(_ a: ParsedArguments, _ name: String) throws -> Int {
        guard let value = try a.int(name), value >= 1 else { throw a.usageError("--\(name) must be a positive integer") }
        return value
    }

    /// --drain-timeout (serve and proxy share it).
    static let drainTimeoutOption = OptionSpec.value(
        "drain-timeout", placeholder: "SECONDS",
        help: "After SIGTERM/SIGINT: seconds to finish accepted work; what still waits then is answered shutting_down. "
            + "The default outlasts the bundled clients' \(ScoringClient.defaultTimeout) s reply timeout.",
        default: "\(ServerSettings.defaultDrainTimeout)")

    static func drainTimeout(_ a: ParsedArguments) throws -> Double {
        guard let seconds = try a.double("drain-timeout"), seconds >= 0 else {
            throw a.usageError("--drain-timeout must be a number of seconds, 0 or more")
        }
        return seconds
    }

    /// --heartbeat-ms and --liveness (serve and proxy share them).
    static func heartbeat(_ a: ParsedArguments) throws -> Heartbeat {
        var h = Heartbeat()
        h.intervalMs = try a.double("heartbeat-ms") ?? h.intervalMs
        guard h.intervalMs >= 10 else { throw a.usageError("--heartbeat-ms must be at least 10") }
        h.liveness = try positive(a, "liveness")
        return h
    }
}
