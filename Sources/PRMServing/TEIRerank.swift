import PRMCore

/// `POST /rerank`, the shape of Hugging Face text-embeddings-inference's reranker:
/// `{"query", "texts": [...]}` plus prm's `user_id` → `[{"index", "score"}]`, best first. A
/// v1 `rank` with the query as prompt and the texts as candidates.
enum TEIRerank: HTTPAdapter {
    static func request(_ object: JSONObject, limits: ServerLimits) throws(WireError) -> [UInt8] {
        let fields = RequestFields(object: object, id: nil)
        return V1Body.rank(id: "rerank", user: try fields.optionalString("user_id"), prompt: try fields.string("query"),
                           candidates: try fields.strings("texts", limit: limits.maxCandidates))
    }

    static func reply(_ scored: V1Scores, request _: JSONObject) -> [UInt8] {
        var w = JSONWriter()
        w.beginArray()
        for index in scored.order where scored.scores.indices.contains(index) {
            w.beginObject()
            w.key("index"); w.number(index)
            w.key("score"); w.number(scored.scores[index])
            w.endObject()
        }
        w.endArray()
        return w.bytes
    }
}
