import PRMCore
import PRMModel
import PRMScoring

/// A `suggest` request (protocol v1): a prompt and candidate replies, from whose pairs the server
/// picks the `k` whose answers would most reduce the uncertainty of the user's reward differences
/// (`PairSuggestion`, on the user's `UserPosterior`). Replies are read as `rank` reads them.
struct SuggestRequest: Sendable {
    /// nil, or a user the server does not know: the prior (a newcomer).
    var user: String?
    var prompt: ChatText
    var candidates: [ChatText]
    var k: Int

    /// At least two candidates and at most `limits.maxSuggestCandidates`; 1 ≤ k ≤ `limits.maxSuggestPairs`
    /// and no more than the candidates' pairs. Errors name the field.
    init(_ fields: RequestFields, limits: ServerLimits) throws(WireError) {
        user = try fields.optionalString("user_id")
        prompt = try fields.prompt()
        candidates = try fields.replies("candidates", limit: limits.maxSuggestCandidates)
        guard candidates.count >= 2 else { throw fields.fail("field 'candidates' has 1 entry; suggest chooses pairs, so it needs at least 2") }
        guard let value = fields.object["k"] else { throw fields.fail("missing field 'k' (the number of pairs to suggest)") }
        guard let k = value.number?.integer, k >= 1 else { throw fields.fail("field 'k' must be a positive integer, got \(value.kind == .number ? value.number?.text ?? "" : value.kind.withArticle)") }
        guard k <= limits.maxSuggestPairs else { throw fields.fail(.tooManyCandidates, "field 'k' asks for \(k) pairs; the limit is \(limits.maxSuggestPairs)") }
        let pairs = candidates.count * (candidates.count - 1) / 2
        guard k <= pairs else { throw fields.fail("field 'k' asks for \(k) pairs, but \(candidates.count) candidates make only \(pairs)") }
        self.k = k
    }

    /// One item per candidate, for the generic user: the linear head's h does not depend on the
    /// user, and the choice needs only h.
    var items: [ChatItem] { candidates.map { ChatItem(userID: nil, prompt: prompt, response: $0) } }
}
