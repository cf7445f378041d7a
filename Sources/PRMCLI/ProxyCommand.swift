import Foundation
import PRMCore
import PRMServing

/// `prm proxy`: one v1 endpoint in front of many `prm serve --connect` workers.
enum ProxyCommand: Subcommand {
    static let defaults = ProxySettings()

    static let spec = CommandSpec(
        name: "proxy",
        abstract: "Put several scoring workers behind one endpoint, with heartbeats and resends.",
        discussion: """
        Clients connect to --front and speak protocol v1 exactly as to one server; workers \
        (`prm serve --model DIR --connect tcp://HOST:PORT`, with PORT the proxy's --back) connect to \
        --back, on this host or others. Each request goes to the live worker with the fewest requests \
        in flight. A worker silent for --liveness heartbeats is dropped and the requests it held go to \
        another worker (rank and score are idempotent), so a plain REQ client loses nothing. Workers \
        reconnect by themselves after a proxy restart. info, health and metrics describe the pool. \
        SIGTERM or SIGINT: new work is refused, everything accepted is answered, then the proxy exits \
        0; after --drain-timeout seconds, requests not answered yet are answered shutting_down.

        With --curve-secret-key and --allow-keys both sides use CURVE: clients and workers alike \
        must hold a key whose public half is in the allow-list folder.

        --http HOST:PORT answers HTTP as `prm serve --http` does (protocols/PROTOCOL.md, "HTTP \
        front door"); the requests go to the workers like ZeroMQ ones, and /health/ready is 503 \
        while no worker is alive.

        Examples:
          prm proxy --front tcp://127.0.0.1:5555 --back tcp://127.0.0.1:5556
          prm serve --model runs/prm --connect tcp://127.0.0.1:5556 --threads 1   # once per worker
          prm proxy --http 127.0.0.1:8080 --http-token-file tokens.txt
        """,
        options: [
            .value("front", placeholder: "ENDPOINT", help: "Where clients connect.", default: defaults.front),
            .value("back", placeholder: "ENDPOINT", help: "Where workers connect.", default: defaults.back),
            .value("heartbeat-ms", placeholder: "MS", help: "Heartbeat interval (match the workers').",
                   default: "\(defaults.heartbeat.intervalMs)"),
            .value("liveness", placeholder: "N", help: "Silent heartbeats before a worker is dropped.", default: "\(defaults.heartbeat.liveness)"),
            .value("resends", placeholder: "N", help: "Times a request held by a dead worker is sent to another.", default: "\(defaults.resends)"),
            ServiceOptions.drainTimeout,
            ServiceOptions.maxCandidates, ServiceOptions.maxMessageBytes, ServiceOptions.maxAdaptComparisons,
            .value("max-queued", placeholder: "N", help: "Requests waiting for a worker; beyond: overloaded.",
                   default: "\(defaults.limits.maxQueuedRequests)"),
            ServiceOptions.metricsHTTP,
            CurveOptions.secretKey, CurveOptions.allowKeys,
        ] + HTTPOptions.all)

    static func run<Out: TextOutputStream>(_ arguments: ParsedArguments, output _: inout Out) throws -> Int32 {
        var s = ProxySettings()
        s.front = try arguments.endpoint("front") ?? defaults.front
        s.back = try arguments.endpoint("back") ?? defaults.back
        s.heartbeat = try ServiceOptions.heartbeat(arguments)
        s.resends = try arguments.count("resends", atLeast: 0)
        s.drainTimeout = try ServiceOptions.drainTimeout(arguments)
        s.limits.maxCandidates = try arguments.count("max-candidates")
        s.limits.maxAdaptComparisons = try arguments.count("max-adapt-comparisons")
        s.limits.maxMessageBytes = try arguments.count("max-message-bytes")
        s.limits.maxQueuedRequests = try arguments.count("max-queued")
        s.curve = try CurveOptions.settings(arguments)
        s.metricsHTTP = try arguments.hostPort("metrics-http")
        s.http = try HTTPOptions.settings(arguments)
        if s.curve.enabled, s.curve.allowKeys == nil { throw arguments.usageError("--curve-secret-key needs --allow-keys DIR") }
        Endpoints.warnIfExposed(s.front, curve: s.curve.enabled, role: "prm proxy (clients)")
        Endpoints.warnIfExposed(s.back, curve: s.curve.enabled, role: "prm proxy (workers)")
        s.http?.warnIfExposed(role: "prm proxy")
        let proxy = try ScoringProxy(settings: s)
        try proxy.run { front, back in
            Log.info("prm \(PRMVersion.current) proxy: clients on \(front)" + (proxy.httpAddress.map { " and HTTP on \($0)" } ?? "") + ", workers on \(back); heartbeat \(s.heartbeat.intervalMs) ms × \(s.heartbeat.liveness)")
        }
        return 0
    }
}
