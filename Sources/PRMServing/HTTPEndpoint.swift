import PRMCore

/// The paths of the HTTP front door (protocols/PROTOCOL.md, "HTTP front door"), and how each
/// becomes a v1 request and its v1 reply an HTTP answer.
enum HTTPEndpoint: String, CaseIterable, Sendable {
    case rank = "/v1/rank", score = "/v1/score", adapt = "/v1/adapt", info = "/v1/info", metrics = "/v1/metrics"
    case getReward = "/get_reward", reward = "/reward", rerank = "/rerank"
    case live = "/health/live", ready = "/health/ready", prometheus = "/metrics"

    /// The method it answers (HEAD too where it is GET).
    var method: String {
        switch self {
        case .rank, .score, .adapt, .getReward, .reward, .rerank: "POST"
        case .info, .metrics, .live, .ready, .prometheus: "GET"
        }
    }

    /// Liveness is open without a token: orchestrators' probes carry none, and it tells nothing
    /// but that the process runs.
    var needsToken: Bool { self != .live }

    /// The v1 request that serves an HTTP request here, with the op its path implies; nil for the
    /// endpoints answered without one (liveness, Prometheus).
    func v1Request(_ body: [UInt8], limits: ServerLimits) throws(WireError) -> (body: [UInt8], impliedOp: Operation?)? {
        switch self {
        case .rank: (Self.naming(.rank, body), .rank)
        case .score: (Self.naming(.score, body), .score)
        case .adapt: (Self.naming(.adapt, body), .adapt)
        case .info: (V1Body.bare(.info, id: "info"), nil)
        case .metrics: (V1Body.bare(.metrics, id: "metrics"), nil)
        case .ready: (V1Body.bare(.health, id: "ready"), nil)
        case .getReward: (try OpenRLHFReward.request(WireRequest.object(body), limits: limits), nil)
        case .reward: (try SlimeReward.request(WireRequest.object(body), limits: limits), nil)
        case .rerank: (try TEIRerank.request(WireRequest.object(body), limits: limits), nil)
        case .live, .prometheus: nil
        }
    }

    /// The HTTP answer to `request` (the HTTP body) from the v1 reply `reply`; `code` is the
    /// reply's error code (nil: ok).
    func answer(_ reply: [UInt8], code: ErrorCode?, request: [UInt8]) -> HTTPAnswer {
        if let code { return .json(reply, status: code.httpStatus) }
        do throws(WireError) {
            switch self {
            case .rank, .score, .adapt, .info, .metrics, .live, .prometheus: return .json(reply)
            case .ready: return .json(reply, status: try Self.isReady(reply) ? 200 : 503)
            case .getReward: return .json(OpenRLHFReward.reply(try V1Scores(reply), request: try WireRequest.object(request)))
            case .reward: return .json(SlimeReward.reply(try V1Scores(reply), request: try WireRequest.object(request)))
            case .rerank: return .json(TEIRerank.reply(try V1Scores(reply), request: try WireRequest.object(request)))
            }
        } catch {
            return .error(error)
        }
    }

    /// The body with `"op"` added when it has none: the body travels on as it is (a proxy passes
    /// it to a worker, which parses it again), so the op the path implies must be in it. A body
    /// that is not a JSON object is left for the v1 parse to refuse.
    private static func naming(_ op: Operation, _ body: [UInt8]) -> [UInt8] {
        guard let object = try? WireRequest.object(body), object["op"] == nil else { return body }
        var w = JSONWriter(capacity: body.count + 16)
        w.value(.object(JSONObject(object.members + [(key: "op", value: .string(op.rawValue))])))
        return w.bytes
    }

    /// Ready: serving (not draining) and healthy (the compute thread not stalled; a proxy: a
    /// worker alive). The model is loaded before the HTTP front door listens.
    private static func isReady(_ health: [UInt8]) throws(WireError) -> Bool {
        let object = try WireRequest.object(health)
        return object["status"]?.string == "serving" && object["healthy"]?.bool == true
    }
}
