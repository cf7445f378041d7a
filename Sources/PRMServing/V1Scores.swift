import PRMCore

/// What the HTTP adapters read from a v1 `score` or `rank` ok reply: scores exactly as written,
/// per item whether the user was known, and the order best first.
struct V1Scores {
    let scores: [JSONNumber]
    let knownUser: [Bool]
    let order: [Int]

    /// Reads a reply this server wrote; anything else is an internal error.
    init(_ reply: [UInt8]) throws(WireError) {
        let object: JSONObject
        do { object = try WireRequest.object(reply) } catch { throw WireError(.internal, "a v1 reply could not be read back: \(error)") }
        guard let scores = object["scores"]?.array?.compactMap(\.number) else { throw WireError(.internal, "a v1 reply has no scores") }
        self.scores = scores
        switch object["known_user"] {
        case .bool(let known)?: knownUser = Array(repeating: known, count: scores.count)
        case .array(let known)?: knownUser = known.map { $0.bool == true }
        default: throw WireError(.internal, "a v1 reply has no known_user")
        }
        order = object["order"]?.array?.compactMap { $0.number?.integer } ?? Array(scores.indices)
    }
}
