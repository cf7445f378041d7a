import PRMCore

/// A `users` request behind the proxy, asked of every worker and answered once, merged
/// (protocols/PROTOCOL.md, "users"): each worker keeps the health of the requests it scored, so a
/// user's requests are spread over the workers' statistics. The bookkeeping and the merge, without
/// sockets (`WorkerPool` sends and receives).
///
/// Merged: counts are summed (`tracked` counts a user once per worker that ranked for it);
/// averages (mean score, spread, tied fraction) are weighted by each worker's requests; a user is
/// flagged when any worker flags it, with the statistics of the workers that flag it, `workers`
/// naming how many do. The population's `score_std` is the requests-weighted root mean square of
/// the workers' (their means differ little: they serve one model to one request stream).
struct UsersGather {
    let id: JSONValue
    let route: [[UInt8]]
    let user: String?
    let deadline: Double
    /// Tokens still unanswered, and their workers.
    private(set) var waiting: [UInt64: [UInt8]]
    private(set) var replies: [JSONObject] = []
    private(set) var missing: [[UInt8]] = []
    let asked: Int

    init(id: JSONValue, route: [[UInt8]], user: String?, waiting: [UInt64: [UInt8]], deadline: Double) {
        (self.id, self.route, self.user, self.waiting, self.deadline, asked) = (id, route, user, waiting, deadline, waiting.count)
    }

    var complete: Bool { waiting.isEmpty }

    /// A worker's reply to the token; false when the token is not this gather's.
    mutating func answered(_ token: UInt64, reply: JSONObject?) -> Bool {
        guard let worker = waiting.removeValue(forKey: token) else { return false }
        if let reply, reply["ok"]?.bool == true { replies.append(reply) } else { missing.append(worker) }
        return true
    }

    /// A worker left the pool, or the deadline passed: what it owes is missing.
    mutating func giveUp(on worker: [UInt8]? = nil) {
        for (token, identity) in waiting where worker == nil || identity == worker {
            waiting[token] = nil
            missing.append(identity)
        }
    }

    /// The merged reply (the fields of a server's `users` reply, then `workers`).
    func reply() -> [UInt8] {
        WireReply.object(id: id) { w in
            w.key("drift_reference"); w.value(replies.first?["drift_reference"] ?? .null)
            for key in ["tracked", "untracked_requests", "collapsed_total"] {
                w.key(key); w.number(replies.reduce(0) { $0 + ($1[key]?.number?.integer ?? 0) })
            }
            w.key("population"); writePopulation(&w)
            w.key("flagged")
            w.beginArray()
            var byUser: [String: [JSONObject]] = [:]
            for entry in replies.flatMap({ $0["flagged"]?.array ?? [] }).compactMap(\.object) {
                if let id = entry["user_id"]?.string { byUser[id, default: []].append(entry) }
            }
            let merged = byUser.map { Self.merge($0.value) }.sorted { a, b in
                (Self.number(a, "spread"), a["user_id"]?.string ?? "") < (Self.number(b, "spread"), b["user_id"]?.string ?? "")
            }
            for entry in merged { w.value(.object(entry)) }
            w.endArray()
            if let user {
                let entries = replies.compactMap { $0["user"]?.object }.filter { $0["user_id"]?.string == user }
                w.key("user"); w.value(entries.isEmpty ? .null : .object(Self.merge(entries)))
            }
            w.key("workers")
            w.object(["asked": asked, "answered": replies.count, "missing": missing.count])
        }
    }

    private func writePopulation(_ w: inout JSONWriter) {
        let populations = replies.compactMap { $0["population"]?.object }
        let requests = populations.map { Double($0["requests"]?.number?.integer ?? 0) }
        let total = requests.reduce(0, +)
        func weighted(_ key: String, _ f: (Double) -> Double = { $0 }) -> Double {
            total == 0 ? 0 : zip(populations, requests).reduce(0) { $0 + f(Self.number($1.0, key)) * $1.1 } / total
        }
        w.object(["requests": Int(total), "mean_score": weighted("mean_score"), "spread": weighted("spread"),
                  "tied_fraction": weighted("tied_fraction"), "score_std": weighted("score_std") { $0 * $0 }.squareRoot()])
    }

    /// One user's entries from several workers as one: requests summed, averages weighted by
    /// requests, flags or'ed; what is the model's (baseline, training statistics) from the first.
    static func merge(_ entries: [JSONObject]) -> JSONObject {
        let requests = entries.map { Double($0["requests"]?.number?.integer ?? 0) }
        let total = requests.reduce(0, +)
        func weighted(_ key: String) -> JSONValue {
            let value = total == 0 ? 0 : zip(entries, requests).reduce(0) { $0 + number($1.0, key) * $1.1 } / total
            return .number(JSONNumber(text: "\(value)"))
        }
        var members = entries[0].members.map { member -> (key: String, value: JSONValue) in
            switch member.key {
            case "requests": return (member.key, .number(JSONNumber(Int(total))))
            case "mean_score", "spread", "tied_fraction": return (member.key, weighted(member.key))
            case "collapsed", "drifted": return (member.key, .bool(entries.contains { $0[member.key]?.bool == true }))
            default: return member
            }
        }
        members.append((key: "workers", value: .number(JSONNumber(entries.count))))
        return JSONObject(members)
    }

    private static func number(_ object: JSONObject, _ key: String) -> Double { object[key]?.number?.value ?? 0 }
}
