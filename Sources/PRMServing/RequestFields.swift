import PRMCore
import PRMModel
import PRMScoring

/// Typed access to a request object's members; every failure names the field.
struct RequestFields {
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

    /// `op`; with `implied` (an HTTP path's, which the front door writes into a body that has
    /// none), another op is refused.
    func operation(implied: Operation? = nil) throws(WireError) -> Operation {
        let name = try string("op")
        if let implied, name != implied.rawValue {
            throw fail("the path names op '\(implied.rawValue)' and the body op '\(name)'; leave 'op' out or make them agree")
        }
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

    /// An optional boolean: absent or null is false.
    func flag(_ name: String) throws(WireError) -> Bool {
        switch object[name] {
        case nil, .null?: return false
        case .bool(let value)?: return value
        case let other?: throw fail("field '\(name)' must be true or false, got \(other.kind.rawValue)")
        }
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

    /// A prompt: a string, or a non-empty list of `{"role", "content"}` messages (`ChatText.prompt`).
    func prompt(_ name: String = "prompt", in member: JSONObject? = nil, at place: String? = nil) throws(WireError) -> ChatText {
        let field = place.map { "\($0).\(name)" } ?? name
        guard let value = (member ?? object)[name] else { throw fail("missing field '\(field)'") }
        do { return try ChatText.prompt(value, field: field) } catch { throw fail(error.message) }
    }

    /// A reply: a string, or one `{"role": "assistant", "content"}` message (`ChatText.reply`).
    func reply(_ value: JSONValue, at field: String) throws(WireError) -> ChatText {
        do { return try ChatText.reply(value, field: field) } catch { throw fail(error.message) }
    }

    /// A non-empty list of at most `limit` replies (strings or assistant messages).
    func replies(_ name: String, limit: Int) throws(WireError) -> [ChatText] {
        let list = try nonEmptyList(name, limit: limit)
        var replies: [ChatText] = []
        replies.reserveCapacity(list.count)
        for (i, element) in list.enumerated() { replies.append(try reply(element, at: "\(name)[\(i)]")) }
        return replies
    }

    func items(limit: Int) throws(WireError) -> [ChatItem] {
        let list = try nonEmptyList("items", limit: limit)
        var items: [ChatItem] = []
        items.reserveCapacity(list.count)
        for (i, element) in list.enumerated() {
            let place = "items[\(i)]"
            guard let member = element.object else { throw fail("\(place) must be an object, got \(element.kind.rawValue)") }
            guard let response = member["response"] else { throw fail("missing field '\(place).response'") }
            items.append(ChatItem(userID: try optionalString("user_id", in: member, at: place),
                                  userInfo: try optionalString("user_info", in: member, at: place),
                                  prompt: try prompt(in: member, at: place),
                                  response: try reply(response, at: "\(place).response")))
        }
        return items
    }

    /// A non-empty list of at most `limit` objects.
    func objects(_ name: String, limit: Int) throws(WireError) -> [JSONObject] {
        var objects: [JSONObject] = []
        for (i, element) in try nonEmptyList(name, limit: limit).enumerated() {
            guard let member = element.object else { throw fail("\(name)[\(i)] must be an object, got \(element.kind.rawValue)") }
            objects.append(member)
        }
        return objects
    }

    private func nonEmptyList(_ name: String, limit: Int) throws(WireError) -> [JSONValue] {
        guard let value = object[name] else { throw fail("missing field '\(name)'") }
        guard let list = value.array else { throw fail("field '\(name)' must be a list, got \(value.kind.rawValue)") }
        guard !list.isEmpty else { throw fail("field '\(name)' is empty; '\(name)' must be a non-empty list") }
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
