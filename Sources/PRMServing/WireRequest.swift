import PRMCore
import PRMScoring

/// The operations of protocol v1.
public enum Operation: String, Sendable, CaseIterable {
    case rank, score, info, health, metrics
}

/// A request that passed validation (protocols/PROTOCOL.md, "Requests").
struct WireRequest: Sendable {
    enum Body: Sendable {
        /// Candidates for one user; `topK` caps the length of `order`.
        case rank(user: String?, userInfo: String?, prompt: String, candidates: [String], topK: Int?)
        /// Unrelated (user, prompt, response) items.
        case score([ScoringItem])
        case info, health, metrics
    }

    let id: JSONValue
    let deadlineMs: Double?
    let body: Body

    var operation: Operation {
        switch body {
        case .rank: return .rank
        case .score: return .score
        case .info: return .info
        case .health: return .health
        case .metrics: return .metrics
        }
    }

    /// The items to score, for rank and score.
    var items: [ScoringItem] {
        switch body {
        case .rank(let user, let userInfo, let prompt, let candidates, _):
            return candidates.map { ScoringItem(userID: user, userInfo: userInfo, prompt: prompt, response: $0) }
        case .score(let items): return items
        case .info, .health, .metrics: return []
        }
    }

    /// Nesting allowed in a request body; real requests need 4.
    static let maxDepth = 64

    /// Parses and validates a body. Errors carry the id once it has been read.
    static func parse(_ body: [UInt8], limits: ServerLimits) throws(WireError) -> WireRequest {
        guard body.count <= limits.maxMessageBytes else {
            throw WireError(.tooLarge, "the message has \(body.count) bytes; the limit is \(limits.maxMessageBytes)")
        }
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
        var fields = Fields(object: object, id: nil)
        let id = try fields.requestID()
        fields.id = id
        try fields.version()
        let operation = try fields.operation()
        let deadline = try fields.deadline()
        let request: Body
        switch operation {
        case .rank:
            let candidates = try fields.strings("candidates", limit: limits.maxCandidates)
            request = .rank(user: try fields.optionalString("user_id"), userInfo: try fields.optionalString("user_info"),
                            prompt: try fields.string("prompt"), candidates: candidates, topK: try fields.topK())
        case .score:
            request = .score(try fields.items(limit: limits.maxCandidates))
        case .info: request = .info
        case .health: request = .health
        case .metrics: request = .metrics
        }
        return WireRequest(id: id, deadlineMs: deadline, body: request)
    }
}

/// Typed access to a request object's members; every failure names the field.
private struct Fields {
    let object: JSONObject
    var id: JSONValue?

    func fail(_ message: String) -> WireError { WireError(.badRequest, message, id: id) }
    func fail(_ code: ErrorCode, _ message: String) -> WireError { WireError(code, message, id: id) }

    func requestID() throws(WireError) -> JSONValue {
        guard let value = object["id"] else { throw fail("missing field 'id'") }
        switch value {
        case .string, .number: return value
        default: throw fail("field 'id' must be a string or a number, got \(value.kind.rawValue)")
        }
    }

    func version() throws(WireError) {
        guard let value = object["v"] else { throw fail("missing field 'v' (the protocol version, \(ProtocolV1.version))") }
        guard let number = value.number else { throw fail("field 'v' must be a number, got \(value.kind.rawValue)") }
        guard number.value == Double(ProtocolV1.version) else {
            throw fail(.unsupportedVersion, "protocol version \(number.text) is not supported; this server speaks \(ProtocolV1.version)")
        }
    }

    func operation() throws(WireError) -> Operation {
        let name = try string("op")
        guard let operation = Operation(rawValue: name) else {
            throw fail(.unknownOp, "unknown op '\(name)'; expected one of \(Operation.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        return operation
    }

    func deadline() throws(WireError) -> Double? {
        guard let value = object["deadline_ms"], !value.isNull else { return nil }
        guard let number = value.number, number.value.isFinite, number.value > 0 else {
            throw fail("field 'deadline_ms' must be a positive number of milliseconds, got \(describe(value))")
        }
        return number.value
    }

    func topK() throws(WireError) -> Int? {
        guard let value = object["top_k"], !value.isNull else { return nil }
        guard let k = value.number?.integer, k >= 1 else {
            throw fail("field 'top_k' must be a positive integer, got \(describe(value))")
        }
        return k
    }

    func string(_ name: String, in member: JSONObject? = nil, at place: String? = nil) throws(WireError) -> String {
        let field = place.map { "\($0).\(name)" } ?? name
        guard let value = (member ?? object)[name] else { throw fail("missing field '\(field)'") }
        guard let text = value.string else { throw fail("field '\(field)' must be a string, got \(value.kind.rawValue)") }
        return text
    }

    func optionalString(_ name: String, in member: JSONObject? = nil, at place: String? = nil) throws(WireError) -> String? {
        let field = place.map { "\($0).\(name)" } ?? name
        switch (member ?? object)[name] {
        case nil, .null?: return nil
        case .string(let text)?: return text
        case let other?: throw fail("field '\(field)' must be a string or null, got \(other.kind.rawValue)")
        }
    }

    /// A non-empty list of strings of at most `limit` entries.
    func strings(_ name: String, limit: Int) throws(WireError) -> [String] {
        let list = try nonEmptyList(name, limit: limit)
        var texts: [String] = []
        texts.reserveCapacity(list.count)
        for (i, element) in list.enumerated() {
            guard let text = element.string else { throw fail("\(name)[\(i)] must be a string, got \(element.kind.rawValue)") }
            texts.append(text)
        }
        return texts
    }

    func items(limit: Int) throws(WireError) -> [ScoringItem] {
        let list = try nonEmptyList("items", limit: limit)
        var items: [ScoringItem] = []
        items.reserveCapacity(list.count)
        for (i, element) in list.enumerated() {
            let place = "items[\(i)]"
            guard let member = element.object else { throw fail("\(place) must be an object, got \(element.kind.rawValue)") }
            items.append(ScoringItem(userID: try optionalString("user_id", in: member, at: place),
                                     userInfo: try optionalString("user_info", in: member, at: place),
                                     prompt: try string("prompt", in: member, at: place),
                                     response: try string("response", in: member, at: place)))
        }
        return items
    }

    private func nonEmptyList(_ name: String, limit: Int) throws(WireError) -> [JSONValue] {
        guard let value = object[name] else { throw fail("missing field '\(name)'") }
        guard let list = value.array else { throw fail("field '\(name)' must be a list, got \(value.kind.rawValue)") }
        guard !list.isEmpty else { throw fail("field '\(name)' is empty; give at least one") }
        guard list.count <= limit else { throw fail(.tooManyCandidates, "\(name) has \(list.count) entries; the limit is \(limit)") }
        return list
    }

    /// A value for a message: numbers as written, strings quoted, other types by kind.
    private func describe(_ value: JSONValue) -> String {
        switch value {
        case .number(let n): return n.text
        case .string(let s): return "\"\(s.prefix(40))\""
        default: return value.kind.withArticle
        }
    }
}
