import PRMCore
import PRMScoring

/// The one writer of v1 request bodies: `ScoringClient`'s requests, the bodies the HTTP front
/// door writes on a client's behalf (GET endpoints, which have none, and the adapters, whose
/// requests become v1 `score`/`rank` requests), and the benchmark's HTTP client. The front door's
/// go through `WireRequest.parse` like any request, so every check and limit is the protocol's.
public enum V1Body {
    /// The envelope (`v`, `id`, `op`) around `members`.
    public static func request(op: String, id: some JSONScalar, members: (inout JSONWriter) -> Void) -> [UInt8] {
        var w = JSONWriter()
        w.beginObject()
        w.key("v"); w.number(ProtocolV1.version)
        w.key("id"); id.write(to: &w)
        w.key("op"); w.string(op)
        members(&w)
        w.endObject()
        return w.bytes
    }

    /// The members of a `rank` request.
    public static func rankMembers(_ request: RankRequest, topK: Int? = nil) -> (inout JSONWriter) -> Void {
        { w in
            w.key("user_id"); optional(&w, request.user)
            w.key("user_info"); optional(&w, request.userInfo)
            w.key("prompt"); ChatTextJSON.prompt(request.prompt, &w)
            w.key("candidates"); w.beginArray(); for c in request.candidates { ChatTextJSON.reply(c, &w) }; w.endArray()
            if let topK { w.key("top_k"); w.number(topK) }
        }
    }

    /// The members of a `score` request.
    public static func scoreMembers(_ items: [ScoringItem]) -> (inout JSONWriter) -> Void {
        { w in
            w.key("items"); w.beginArray()
            for item in items {
                w.beginObject()
                w.key("user_id"); optional(&w, item.userID)
                w.key("user_info"); optional(&w, item.userInfo)
                w.key("prompt"); w.string(item.prompt)
                w.key("response"); w.string(item.response)
                w.endObject()
            }
            w.endArray()
        }
    }

    /// A request with no members beyond its op (`info`, `health`, `metrics`).
    static func bare(_ op: Operation, id: String) -> [UInt8] {
        request(op: op.rawValue, id: id) { _ in }
    }

    static func score(id: String, items: [ScoringItem]) -> [UInt8] {
        request(op: Operation.score.rawValue, id: id, members: scoreMembers(items))
    }

    static func rank(id: String, user: String?, prompt: String, candidates: [String]) -> [UInt8] {
        let rank = RankRequest(user: user, userInfo: nil, prompt: .text(prompt), candidates: candidates.map { .text($0) })
        return request(op: Operation.rank.rawValue, id: id, members: rankMembers(rank))
    }

    private static func optional(_ w: inout JSONWriter, _ text: String?) {
        if let text { w.string(text) } else { w.null() }
    }
}
