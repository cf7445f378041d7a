import PRMCore
import PRMModel
import PRMScoring

/// What the compute thread made of one job, handed back to the I/O thread: the scores and what
/// the reply reports beside them (or an adapt's fit), or the error the job ends with. The I/O thread writes the
/// reply, so the compute thread spends its time on the model and never on JSON.
struct JobResult: Sendable {
    struct Scored: Sendable {
        let scores: [Float]
        /// Per item (a `rank` request's items share one user).
        let knownUser: [Bool]
        /// Indices of the items cut to the window.
        let truncated: [Int]
        let timing: WireReply.Timing
        /// The model that computed the scores (`ModelFingerprint`).
        let fingerprint: String
        /// A rank with `"uncertainty": true`: each score's standard deviation, or why there is none.
        var uncertainty: WireReply.Uncertainty?
    }

    /// A suggest's chosen pairs, and what they were chosen under.
    struct Suggested: Sendable {
        let pairs: [PairSuggestion]
        /// "prior" or "posterior" (`LiveUsers.Belief`).
        let basis: String
        /// V before any answer: the summed variance of every candidate pair's reward difference.
        let totalVariance: Double
        let knownUser: Bool
        let fingerprint: String
    }

    /// A reload that switched models: what the I/O thread needs of the new one.
    struct Switched: Sendable {
        let preparer: InputPreparer
        let facts: ModelFacts
        let generation: Int
        let adaptable: Bool
        let previous: String
        let loadMs: Double
        let statistics: ScoreStatistics?
    }

    /// What a job computed: scores, or an adapt's fit.
    enum Output: Sendable {
        case scored(Scored)
        case adapted(LiveUsers.Fitted, WireReply.Timing)
        case suggested(Suggested, WireReply.Timing)
        case reloaded(Switched)
        /// Passed through the compute thread and back, in turn with the batches before it (`users`).
        case passed
    }

    let route: [[UInt8]]
    let request: WireRequest
    let outcome: Result<Output, WireError>

    /// The reply body, and the code it carries (nil: ok). Scores JSON cannot carry (NaN, ∞)
    /// turn the reply into an `internal` error here.
    func reply() -> (body: [UInt8], code: ErrorCode?) {
        do throws(WireError) {
            return (try body(), nil)
        } catch {
            if case .success = outcome { Log.error("\(request.operation.rawValue) request: \(error.message)") }
            return (WireReply.error(error), error.code)
        }
    }

    private func body() throws(WireError) -> [UInt8] {
        let scored: Scored
        switch try outcome.get() {
        case .adapted(let fitted, let timing): return WireReply.adapt(id: request.id, fitted, timing: timing)
        case .suggested(let suggested, let timing): return WireReply.suggest(id: request.id, suggested, timing: timing)
        case .reloaded(let switched): return WireReply.reload(id: request.id, switched)
        case .passed: throw WireError(.internal, "the reply to \(request.operation.rawValue) is written by the server", id: request.id)
        case .scored(let output): scored = output
        }
        if case .rank(_, let topK) = request.body {
            return try WireReply.rank(id: request.id, scores: scored.scores, topK: topK, knownUser: scored.knownUser.first ?? false,
                                      truncated: scored.truncated, timing: scored.timing, fingerprint: scored.fingerprint,
                                      uncertainty: scored.uncertainty)
        }
        return try WireReply.score(id: request.id, scores: scored.scores, knownUser: scored.knownUser, truncated: scored.truncated,
                                   timing: scored.timing, fingerprint: scored.fingerprint)
    }
}
