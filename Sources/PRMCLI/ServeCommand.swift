import Foundation
import PRMCore
import PRMModel
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
        protocols/v1): ops rank, score, adapt, reload, users, info, health and metrics. Clients connect REQ or DEALER \
        sockets; the Python client is in protocols/python, the Swift one is `prm score --server`.

        Requests that arrive together are scored together, up to --batch-tokens tokens, waiting at \
        most --max-wait-ms for a batch to fill. With the linear-head aggregator the hidden state of \
        each text is cached (--cache-entries, within --cache-memory, taken as the cache fills), so \
        ranking the same candidates for another user costs a dot product. SIGTERM or SIGINT: new work \
        is refused (shutting_down), everything accepted is answered, then the server exits 0; after \
        --drain-timeout seconds, requests still queued are answered shutting_down instead of computed \
        (the batch being computed is finished). A checkpoint whose weights have diverged (a probe \
        reply scores NaN or infinite) is refused at start; a request whose scores come out non-finite \
        is answered with an internal error, never with null.

        adapt fits a new user from a few of their comparisons (prm adapt's MAP fit, everything \
        trained frozen) in the compute thread between batches; the user is known to the next \
        requests. Every fit is appended to --user-log (fsync'd JSONL), replayed at start; workers of \
        one proxy share the log (each reads the others' lines before every batch); prm adapt --merge \
        folds it into a checkpoint. Linear-head models with individual users only.

        A Hugging Face …ForSequenceClassification folder (llama, mistral, qwen2, qwen3; num_labels 1) \
        is served as it is: its score head on the last token is the generic user's reward, so every \
        user scores as the folder's model does, text as given (no template; send it in the model's \
        own chat format), in a window of the backbone's positions up to \(ClassificationHead.servedMaxLength) tokens; adapt adds \
        users on top of it (their prior: isotropic around the score head, no trained users to learn \
        one from).

        reload (optionally with a path) and SIGHUP load a checkpoint (by default --model's folder, \
        read again) beside the model served, smoke-test it and switch to it between batches; one \
        that fails is refused and the old model keeps serving. Every rank/score reply names the \
        model that scored it (model_fingerprint; info names it and its load time).

        --http HOST:PORT also answers HTTP (protocols/PROTOCOL.md, "HTTP front door"): the v1 \
        requests at POST /v1/rank, /v1/score and /v1/adapt (op implied by the path), GET /v1/info and \
        /v1/metrics; OpenRLHF's POST /get_reward, slime's POST /reward, TEI's POST /rerank; GET \
        /health/live, /health/ready and /metrics. They share the ZeroMQ requests' queue and batches. \
        Errors map to 400/413/429/503/504; --http-token-file requires Authorization: Bearer TOKEN \
        (401 otherwise; /health/live stays open); --tls-cert/--tls-key serve HTTPS.

        Examples:
          prm serve --model runs/prm
          prm serve --model runs/prm --bind tcp://127.0.0.1:7000 --batch-tokens 16384
          prm serve --model runs/prm --connect tcp://10.0.0.5:5556 --threads 1
          prm serve --model runs/prm --http 127.0.0.1:8080 --http-token-file tokens.txt
        """,
        options: [
            .value("model", placeholder: "DIR", help: "Reward-model checkpoint (from prm train), or a …ForSequenceClassification folder, served as it is for the generic user."),
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
            .value("cache-entries", placeholder: "N", help: "Hidden states kept in the LRU cache (0: none; at most \(maxCacheEntries)).",
                   default: "\(defaults.cacheEntries)"),
            .value("cache-memory", placeholder: "SIZE", help: "Most memory the cache takes, as it fills (e.g. 512MiB, 2GiB or bytes; at most "
                   + "the machine's memory); fewer entries than --cache-entries when they do not fit.", default: "\(defaults.cacheMemory >> 20)MiB"),
            ServiceOptions.maxCandidates, ServiceOptions.maxMessageBytes, ServiceOptions.maxAdaptComparisons,
            .value("user-log", placeholder: "FILE", help: "The adapt op's user log (JSONL, appended, replayed at start; "
                   + "default: \(UserLog.defaultName) in --model); workers of one proxy share it."),
            .value("adapts-per-minute", placeholder: "N", help: "adapt requests accepted per minute; beyond: rate_limited.",
                   default: "\(defaults.adaptsPerMinute)"),
            .value("max-adapted-users", placeholder: "N", help: "Users adapt may add; beyond: too_many_users.", default: "\(defaults.maxAdaptedUsers)"),
            .value("max-request-tokens", placeholder: "N", help: "Tokens of one request after the window.",
                   default: "\(defaults.limits.maxRequestTokens)"),
            .value("max-queued", placeholder: "N", help: "Requests waiting for computation; beyond: overloaded.",
                   default: "\(defaults.limits.maxQueuedRequests)"),
            ServiceOptions.drainTimeout,
            .value("stall-ms", placeholder: "MS", help: "health reports the compute thread stalled after this long without progress.",
                   default: "\(defaults.stallMs)"),
            .value("threads", placeholder: "N", help: "Compute threads (sgemm and prm's parallel regions); give each of several workers on one host its share of the cores. "
                   + "At most \(Threads.limit) here (4 × the cores, at most 256); they start before the server is ready.",
                   default: "\(Parallel.cores)"),
            ServiceOptions.metricsHTTP, PrecisionOption.spec, PrecisionOption.int8Products, TemplateOption.spec,
            CurveOptions.secretKey, CurveOptions.allowKeys, CurveOptions.serverKey,
        ] + HTTPOptions.all)

    static func run<Out: TextOutputStream>(_ arguments: ParsedArguments, output _: inout Out) throws -> Int32 {
        let settings = try settingsFrom(arguments)
        let threads = try arguments.threads(), savedThreads = Compute.threads
        Compute.threads = threads
        defer { Compute.threads = savedThreads }  // in-process callers (tests) get theirs back
        let scorer = try Scorer(checkpoint: URL(fileURLWithPath: settings.modelPath), precision: try arguments.precision(),
                                template: settings.template, tokensPerBatch: settings.batchTokens,
                                cacheEntries: settings.cacheEntries, cacheMemory: settings.cacheMemory)
        let server = try ScoringServer(scorer: scorer, settings: settings)
        let model = scorer.model
        if settings.connect == nil { Endpoints.warnIfExposed(settings.bind, curve: settings.curve.enabled, role: "prm serve") }
        settings.http?.warnIfExposed(role: "prm serve")
        try server.run { endpoint in
            let limits = settings.limits
            Log.info("prm \(PRMVersion.current) serving \(settings.modelPath) on \(endpoint)" + (server.httpAddress.map { " and HTTP on \($0)" } ?? ""))
            Log.info("model: \(model.backbone.modelType), \(model.config.aggregator.rawValue), \(model.config.userModel.kind.rawValue) users "
                     + "(\(scorer.users.count) known), window \(model.config.maxLength) tokens, template \(model.config.template.rawValue), "
                     + "\(model.backbone.inferencePrecision) inference")
            Log.info("limits: \(limits.maxCandidates) candidates, \(limits.maxMessageBytes) bytes, \(limits.maxRequestTokens) tokens per request, "
                     + "\(limits.maxQueuedRequests) queued; batches of \(settings.batchTokens) tokens, wait \(settings.maxWaitMs) ms, "
                     + "cache \(scorer.cacheCapacity) entries (at most \(ByteSize.describe(settings.cacheMemory))); \(Compute.threads) threads on \(Compute.backend)")
        }
        return 0
    }

    static func settingsFrom(_ a: ParsedArguments) throws -> ServerSettings {
        var s = ServerSettings()
        s.modelPath = try a.require("model")
        s.template = try a.servedTemplate()
        s.bind = try a.endpoint("bind") ?? defaults.bind
        if a.isSet("connect") {
            guard !a.isSet("bind") else { throw a.usageError("give --bind (a server) or --connect (a worker), not both") }
            s.connect = try a.endpoint("connect")
        }
        s.slots = try a.count("slots")
        s.heartbeat = try ServiceOptions.heartbeat(a)
        s.curve = try CurveOptions.settings(a)
        s.metricsHTTP = try a.hostPort("metrics-http")
        s.http = try HTTPOptions.settings(a)
        if s.curve.enabled {
            if s.connect == nil, s.curve.allowKeys == nil { throw a.usageError("--curve-secret-key on a server needs --allow-keys DIR") }
            if s.connect != nil, s.curve.serverKey == nil { throw a.usageError("a CURVE worker needs --curve-server-key (the proxy's NAME.pub)") }
        }
        s.batchTokens = try a.count("batch-tokens")
        s.maxWaitMs = try a.double("max-wait-ms") ?? defaults.maxWaitMs
        guard s.maxWaitMs >= 0 else { throw a.usageError("--max-wait-ms must be at least 0") }
        s.cacheEntries = try a.count("cache-entries", atLeast: 0, atMost: maxCacheEntries)
        s.cacheMemory = try a.memorySize("cache-memory")
        s.limits.maxCandidates = try a.count("max-candidates")
        s.limits.maxAdaptComparisons = try a.count("max-adapt-comparisons")
        s.userLog = a.string("user-log").map { URL(fileURLWithPath: $0) }
        s.adaptsPerMinute = try a.count("adapts-per-minute")
        s.maxAdaptedUsers = try a.count("max-adapted-users", atLeast: 0, atMost: .max)
        s.limits.maxMessageBytes = try a.count("max-message-bytes")
        s.limits.maxRequestTokens = try a.count("max-request-tokens")
        s.limits.maxQueuedRequests = try a.count("max-queued")
        s.drainTimeout = try ServiceOptions.drainTimeout(a)
        s.stallMs = try a.double("stall-ms") ?? defaults.stallMs
        guard s.stallMs > 0 else { throw a.usageError("--stall-ms must be positive") }
        return s
    }

    /// Beyond any real use (MiniLM's 100 million states alone are 150 GB): a larger value is a typo.
    static let maxCacheEntries = 100_000_000
}
