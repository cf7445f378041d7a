import PRMCore
import PRMModel

/// Reply bodies of protocol v1, written with prm's one JSON writer. Every reply starts with
/// `"v":1,"id":…,"ok":…`; the members follow protocols/v1/*.reply.schema.json.
enum WireReply {
    static func error(_ error: WireError) -> [UInt8] {
        var w = start(id: error.id, ok: false)
        w.key("error")
        w.beginObject()
        w.key("code"); w.string(error.code.rawValue)
        w.key("message"); w.string(error.message)
        w.endObject()
        return finish(&w)
    }

    /// Time a request spent queued, and the computation of the batch it was in.
    struct Timing: Sendable {
        var queueMs: Double
        var computeMs: Double
    }

    /// A rank's uncertainty (`"uncertainty": true`): each score's posterior standard deviation
    /// for the user and what it was computed under ("prior" or "posterior"), or why there is none.
    struct Uncertainty: Sendable {
        /// "prior", "posterior" or "unavailable".
        let basis: String
        let std: [Double]
        /// Why it is unavailable.
        var reason: String?
    }

    static func rank(id: JSONValue, scores: [Float], topK: Int?, knownUser: Bool, truncated: [Int], timing: Timing,
                     fingerprint: String, uncertainty: Uncertainty? = nil) throws(WireError) -> [UInt8] {
        try requireFinite(scores, id: id)
        // Best first; equal scores keep input order.
        let order = scores.indices.sorted { scores[$0] > scores[$1] || (scores[$0] == scores[$1] && $0 < $1) }
        var w = start(id: id, ok: true)
        w.key("scores"); w.numbers(scores)
        w.key("order"); w.beginArray()
        for index in order.prefix(topK ?? order.count) { w.number(index) }
        w.endArray()
        w.key("known_user"); w.bool(knownUser)
        indices(&w, "truncated", truncated)
        self.timing(&w, timing)
        w.key("model_fingerprint"); w.string(fingerprint)
        if let uncertainty { write(&w, uncertainty) }
        return finish(&w)
    }

    private static func write(_ w: inout JSONWriter, _ uncertainty: Uncertainty) {
        w.key("uncertainty"); w.string(uncertainty.basis)
        if let reason = uncertainty.reason {
            w.key("uncertainty_reason"); w.string(reason)
            return
        }
        w.key("std"); w.beginArray()
        for s in uncertainty.std { w.number(s) }
        w.endArray()
    }

    /// The pairs a suggest chose, best first: each with its candidates' indices, the probability
    /// that the first is preferred at the current belief, and the variance its answer removes.
    static func suggest(id: JSONValue, _ suggested: JobResult.Suggested, timing: Timing) -> [UInt8] {
        var w = start(id: id, ok: true)
        w.key("pairs"); w.beginArray()
        for pair in suggested.pairs {
            w.beginObject()
            w.key("first"); w.number(pair.first)
            w.key("second"); w.number(pair.second)
            w.key("p_first"); w.number(pair.firstPreferred)
            w.key("variance_reduction"); w.number(pair.varianceReduction)
            w.endObject()
        }
        w.endArray()
        w.key("uncertainty"); w.string(suggested.basis)
        w.key("total_variance"); w.number(suggested.totalVariance)
        w.key("known_user"); w.bool(suggested.knownUser)
        self.timing(&w, timing)
        w.key("model_fingerprint"); w.string(suggested.fingerprint)
        return finish(&w)
    }

    static func score(id: JSONValue, scores: [Float], knownUser: [Bool], truncated: [Int], timing: Timing,
                      fingerprint: String) throws(WireError) -> [UInt8] {
        try requireFinite(scores, id: id)
        var w = start(id: id, ok: true)
        w.key("scores"); w.numbers(scores)
        w.key("known_user"); w.beginArray()
        for known in knownUser { w.bool(known) }
        w.endArray()
        indices(&w, "truncated", truncated)
        self.timing(&w, timing)
        w.key("model_fingerprint"); w.string(fingerprint)
        return finish(&w)
    }

    /// The fit of an adapted user: how many of its comparisons the fitted vector orders right,
    /// and the mean −log σ of their reward differences.
    static func adapt(id: JSONValue, _ fitted: LiveUsers.Fitted, timing: Timing) -> [UInt8] {
        var w = start(id: id, ok: true)
        w.key("user_id"); w.string(fitted.user)
        w.key("known_user"); w.bool(true)
        w.key("comparisons"); w.number(fitted.fit.n)
        w.key("correct"); w.number(fitted.fit.correct)
        w.key("mean_loss"); w.number(fitted.fit.meanLoss)
        w.key("adapted_users"); w.number(fitted.adaptedUsers)
        self.timing(&w, timing)
        return finish(&w)
    }

    /// A reload that switched models.
    static func reload(id: JSONValue, _ switched: JobResult.Switched) -> [UInt8] {
        var w = start(id: id, ok: true)
        w.key("model_fingerprint"); w.string(switched.facts.fingerprint)
        w.key("previous_fingerprint"); w.string(switched.previous)
        w.key("path"); w.string(switched.facts.path)
        w.key("loaded_at"); w.string(switched.facts.loadedAt)
        w.key("load_ms"); w.number(rounded(switched.loadMs))
        return finish(&w)
    }

    /// The schemas say a score is a number, and JSON has no NaN: a model that computed NaN or ∞
    /// (diverged weights that passed the load-time probe, or an overflow on one text) gets the
    /// request an `internal` error naming the item, never a reply with null where a number belongs.
    private static func requireFinite(_ scores: [Float], id: JSONValue) throws(WireError) {
        guard let bad = scores.firstIndex(where: { !$0.isFinite }) else { return }
        throw WireError(.internal, "score \(bad + 1) of \(scores.count) is \(scores[bad]): the model computed a non-finite score", id: id)
    }

    /// A reply whose members `body` writes after the common ones.
    static func object(id: JSONValue, _ body: (inout JSONWriter) -> Void) -> [UInt8] {
        var w = start(id: id, ok: true)
        body(&w)
        return finish(&w)
    }

    private static func start(id: JSONValue?, ok: Bool) -> JSONWriter {
        var w = JSONWriter()
        w.beginObject()
        w.key("v"); w.number(ProtocolV1.version)
        w.key("id"); w.value(id ?? .null)
        w.key("ok"); w.bool(ok)
        return w
    }

    private static func finish(_ w: inout JSONWriter) -> [UInt8] {
        w.endObject()
        return w.bytes
    }

    private static func indices(_ w: inout JSONWriter, _ key: String, _ values: [Int]) {
        w.key(key)
        w.beginArray()
        for v in values { w.number(v) }
        w.endArray()
    }

    private static func timing(_ w: inout JSONWriter, _ timing: Timing) {
        w.key("timing")
        w.beginObject()
        w.key("queue_ms"); w.number(rounded(timing.queueMs))
        w.key("compute_ms"); w.number(rounded(timing.computeMs))
        w.endObject()
    }

    /// Milliseconds to the microsecond: more digits would be noise.
    static func rounded(_ ms: Double) -> Double { (ms * 1000).rounded() / 1000 }
}
