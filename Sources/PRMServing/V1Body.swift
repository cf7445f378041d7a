import PRMCore
import PRMScoring

/// v1 request bodies the HTTP front door writes on a client's behalf: for GET endpoints, which
/// have no body, and for the adapters, whose requests become v1 `score`/`rank` requests. They go
/// through `WireRequest.parse` like any request, so every check and limit is the protocol's.
enum V1Body {
    /// A request with no members beyond its op (`info`, `health`, `metrics`).
    static func bare(_ op: Operation, id: String) -> [UInt8] {
        var w = start(op, id: id)
        w.endObject()
        return w.bytes
    }

    static func score(id: String, items: [ScoringItem]) -> [UInt8] {
        var w = start(.score, id: id)
        w.key("items")
        w.beginArray()
        for item in items {
            w.beginObject()
            optionalString(&w, "user_id", item.userID)
            w.key("prompt"); w.string(item.prompt)
            w.key("response"); w.string(item.response)
            w.endObject()
        }
        w.endArray()
        w.endObject()
        return w.bytes
    }

    static func rank(id: String, user: String?, prompt: String, candidates: [String]) -> [UInt8] {
        var w = start(.rank, id: id)
        optionalString(&w, "user_id", user)
        w.key("prompt"); w.string(prompt)
        w.key("candidates")
        w.beginArray()
        for candidate in candidates { w.string(candidate) }
        w.endArray()
        w.endObject()
        return w.bytes
    }

    private static func start(_ op: Operation, id: String) -> JSONWriter {
        var w = JSONWriter()
        w.beginObject()
        w.key("v"); w.number(ProtocolV1.version)
        w.key("id"); w.string(id)
        w.key("op"); w.string(op.rawValue)
        return w
    }

    private static func optionalString(_ w: inout JSONWriter, _ key: String, _ value: String?) {
        w.key(key)
        if let value { w.string(value) } else { w.null() }
    }
}
