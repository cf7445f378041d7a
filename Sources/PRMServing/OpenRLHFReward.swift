import PRMCore
import PRMScoring

/// `POST /get_reward`, OpenRLHF's remote reward model. Its trainer sends
/// `{"query": [prompt+response], "prompts": [prompt], "labels": [label]}` (openrlhf/utils/
/// remote_rm_utils.py, `remote_rm_fn`) and reads `rewards`, `scores` and `extra_logs` from the
/// reply, as its reference server openrlhf/cli/serve_rm.py answers them
/// (`{"rewards": r, "scores": r, "extra_logs": {...}}`, one number per query).
///
/// The user of `query[i]` is `labels[i]` (`RewardLabel`); the response is `query[i]` after its
/// prefix `prompts[i]`. A query that does not start with its prompt is refused (400, naming the
/// index): scoring a guessed split would give a plausible but wrong reward.
enum OpenRLHFReward: HTTPAdapter {
    static func request(_ object: JSONObject, limits: ServerLimits) throws(WireError) -> [UInt8] {
        let fields = RequestFields(object: object, id: nil)
        let queries = try fields.strings("query", limit: limits.maxCandidates)
        let prompts = try fields.strings("prompts", limit: limits.maxCandidates)
        guard prompts.count == queries.count else {
            throw WireError(.badRequest, "query has \(queries.count) entries and prompts \(prompts.count); they must pair up")
        }
        let labels = try self.labels(object["labels"], count: queries.count)
        var items: [ScoringItem] = []
        items.reserveCapacity(queries.count)
        for (index, (query, prompt)) in zip(queries, prompts).enumerated() {
            guard query.hasPrefix(prompt) else {
                throw WireError(.badRequest, "query[\(index)] does not start with prompts[\(index)]: the response is what follows the prompt in the query")
            }
            let user = try RewardLabel.user(labels[index], field: "labels[\(index)]")
            items.append(ScoringItem(userID: user, userInfo: nil, prompt: prompt, response: String(query.dropFirst(prompt.count))))
        }
        return V1Body.score(id: "get_reward", items: items)
    }

    /// `labels`, one per query; absent or null: every sample's user is the generic one.
    private static func labels(_ value: JSONValue?, count: Int) throws(WireError) -> [JSONValue?] {
        switch value {
        case nil, .null?: return Array(repeating: nil, count: count)
        case .array(let labels)?:
            guard labels.count == count else { throw WireError(.badRequest, "labels has \(labels.count) entries for \(count) queries") }
            return labels
        case let other?: throw WireError(.badRequest, "field 'labels' must be a list or null, got \(other.kind.withArticle)")
        }
    }

    static func reply(_ scored: V1Scores, request _: JSONObject) -> [UInt8] {
        var w = JSONWriter()
        w.beginObject()
        for key in ["rewards", "scores"] {
            w.key(key)
            w.beginArray()
            for score in scored.scores { w.number(score) }
            w.endArray()
        }
        // OpenRLHF logs each extra_logs entry as a per-sample tensor: numbers, not booleans.
        w.key("extra_logs")
        w.beginObject()
        w.key("known_user")
        w.beginArray()
        for known in scored.knownUser { w.number(known ? 1 : 0) }
        w.endArray()
        w.endObject()
        w.endObject()
        return w.bytes
    }
}
