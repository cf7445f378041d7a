import PRMCore
import PRMModel
import PRMScoring

/// The operations of protocol v1.
public enum Operation: String, Sendable, CaseIterable {
    case rank, score, adapt, suggest, reload, users, info, health, metrics
}

/// A request that passed validation (protocols/PROTOCOL.md, "Requests").
struct WireRequest: Sendable {
    enum Body: Sendable {
        /// Candidates for one user; `topK` caps the length of `order`.
        case rank(RankRequest, topK: Int?)
        /// Unrelated (user, prompt, response) items.
        case score([ChatItem])
        /// A user's comparisons, to fit that user (`LiveUsers`).
        case adapt(AdaptRequest)
        /// The pairs of candidates whose answers would tell most about a user (`SuggestRequest`).
        case suggest(SuggestRequest)
        /// Load the checkpoint at `path` (nil: the one served) beside the model and switch to it.
        case reload(path: String?)
        /// The users whose served scores are flagged (`UserHealth`), and `user`'s statistics.
        case users(user: String?)
        case info, health, metrics
    }

    let id: JSONValue
    let deadlineMs: Double?
    let body: Body

    var operation: Operation {
        switch body {
        case .rank: return .rank
        case .score: return .score
        case .adapt: return .adapt
        case .suggest: return .suggest
        case .reload: return .reload
        case .users: return .users
        case .info: return .info
        case .health: return .health
        case .metrics: return .metrics
        }
    }

    /// The items to score, for rank and score (an adapt's: chosen and rejected of each comparison); chat messages are written out by `InputPreparer.render`.
    var items: [ChatItem] {
        switch body {
        case .rank(let rank, _):
            return rank.items
        case .score(let items): return items
        case .adapt(let adapt): return adapt.items
        case .suggest(let suggest): return suggest.items
        case .reload, .users, .info, .health, .metrics: return []
        }
    }

    /// Nesting allowed in a request body; real requests need 4.
    static let maxDepth = 64

    /// Parses and validates a body. Errors carry the id once it has been read. `impliedOp` is the
    /// operation an HTTP path names (`POST /v1/rank`): the body may not name another.
    static func parse(_ body: [UInt8], limits: ServerLimits, impliedOp: Operation? = nil) throws(WireError) -> WireRequest {
        try limits.checkSize(body.count)
        let object = try object(body)
        var fields = RequestFields(object: object, id: nil)
        let id = try fields.requestID()
        fields.id = id
        try fields.version()
        let operation = try fields.operation(implied: impliedOp)
        let deadline = try fields.deadline()
        let request: Body
        switch operation {
        case .rank:
            request = .rank(try RankRequest(fields, maxCandidates: limits.maxCandidates), topK: try fields.topK())
        case .score:
            request = .score(try fields.items(limit: limits.maxCandidates))
        case .adapt:
            request = .adapt(try AdaptRequest(fields, maxComparisons: limits.maxAdaptComparisons))
        case .suggest:
            request = .suggest(try SuggestRequest(fields, limits: limits))
        case .reload:
            let path = try fields.optionalString("path")
            if path?.isEmpty == true { throw fields.fail("field 'path' is empty; leave it out to reload the model served") }
            request = .reload(path: path)
        case .users:
            request = .users(user: try fields.optionalString("user_id"))
        case .info: request = .info
        case .health: request = .health
        case .metrics: request = .metrics
        }
        return WireRequest(id: id, deadlineMs: deadline, body: request)
    }

    /// A body read as one JSON object: a v1 request, or the JSON of an HTTP adapter's endpoint.
    static func object(_ body: [UInt8]) throws(WireError) -> JSONObject {
        let value: JSONValue
        do {
            value = try JSONReader.parse(body, maxDepth: maxDepth)
        } catch {
            switch error {
            case .invalidUTF8: throw WireError(.badUTF8, "the body is not valid UTF-8: \(error)")
            case .syntax: throw WireError(.badJSON, "\(error)")
            }
        }
        guard let object = value.object else {
            throw WireError(.badRequest, "the body must be a JSON object, got \(value.kind.withArticle)")
        }
        return object
    }
}
