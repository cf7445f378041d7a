import Foundation
import PRMCore
import PRMModel
import PRMScoring

/// The users a running server fits with the `adapt` op, owned by the compute thread (it owns the
/// model whose user table grows): the `UserPrior` fit on the pooled states the scorer computed,
/// the append to the model and to the user log, and the lines other processes appended to a
/// shared log (`sync`, before every batch: the workers behind one proxy share one log, so a user
/// fitted by one is known by all of them from their next batch on).
///
/// Users are resolved here at compute time, not only when the I/O thread prepares a request:
/// an item the I/O thread could not resolve (its id unknown there) is looked up in this table,
/// which is the only one that grows. Only linear-head models with individual users adapt, and
/// their sequences do not carry the user, so resolving late changes nothing but the vector.
final class LiveUsers {
    /// nil when the model's users cannot be fitted; `refusal` says why.
    private let prior: UserPrior?
    let refusal: String?
    private let userModel: UserModel
    /// Trained, adapted by `prm adapt`, and adapted here.
    private(set) var users: UserTable
    private let trained: UserTable
    private let log: UserLog
    /// This process's id in the lines it writes.
    private let writer = UUID().uuidString
    /// The log's bytes read so far.
    private var offset = 0
    private let maxAdapted: Int
    /// The model's `ModelFingerprint`: lines of fits on other models are skipped.
    let fingerprint: String
    /// The Laplace approximation of each user fitted by this process (`UserPosterior`): the log
    /// keeps rows, not the comparisons' h a posterior needs, so users replayed from it, fitted by
    /// another worker or trained have none.
    private var posteriors: [String: UserPosterior] = [:]

    init(model: RewardModel, users: UserTable, fingerprint: String, log: UserLog, maxAdapted: Int) {
        self.fingerprint = fingerprint
        userModel = model.userModel
        self.users = users
        trained = users
        self.log = log
        self.maxAdapted = maxAdapted
        var refusal: String?
        var prior: UserPrior?
        if model.config.aggregator != .linearHead {
            refusal = "this model's users cannot be adapted live: adapt needs the linear-head aggregator, the model has \(model.config.aggregator.rawValue)"
        } else {
            do { prior = try UserPrior(model.userModel, scale: 1) } catch { refusal = "this model's users cannot be adapted: \(error.message)" }
        }
        (self.prior, self.refusal) = (prior, refusal)
    }

    /// Users this server's adapts and the log added to the model it loaded.
    var adapted: Int { users.count - trained.count }
    var logPath: String { log.url.path }

    /// Replays the log at start: every complete line, a torn last line reported and closed.
    func replay() {
        guard prior != nil else { return }
        Log.info("user log \(log.url.path), written as \(writer)")
        do {
            let reading = try log.read(final: true)
            for problem in reading.problems { Log.warning("user log: \(problem)") }
            apply(reading)
            try log.terminateTornLine()
            if !reading.records.isEmpty { Log.info("user log \(log.url.path): replayed \(reading.records.count) fits (\(adapted) adapted users)") }
        } catch {
            Log.error("user log: \(error)")
        }
    }

    /// Takes in the lines other processes appended since the last read (one stat when none).
    func sync() {
        guard prior != nil, log.size > offset else { return }
        do { apply(try log.read(from: offset)) } catch { Log.error("user log: \(error)") }
    }

    private func apply(_ reading: UserLog.Reading) {
        offset = reading.end
        for record in reading.records where record.writer != writer {
            guard record.fits(fingerprint) else {
                Log.warning("user log: user \(record.userID) was fitted on model \(record.model), this is \(fingerprint); skipped")
                continue
            }
            if let problem = UserLog.apply(record, to: userModel, users: &users) { Log.warning("user log: \(problem)") }
            posteriors[record.userID] = nil  // refitted elsewhere on comparisons this process never saw
        }
    }

    /// `items` with the users known here that the I/O thread did not know (`ids`: each item's id).
    func resolve(_ items: [PreparedItem], ids: [String?]) -> [PreparedItem] {
        guard adapted > 0 else { return items }
        return zip(items, ids).map { item, id in
            guard !item.knownUser, let id, users.contains(id) else { return item }
            return item.known(as: users.index(of: id))
        }
    }

    /// What an adapt did: the user's fit to its own comparisons, and the adapted users now.
    struct Fitted: Sendable {
        let user: String
        let fit: ComparisonFit
        let adaptedUsers: Int
    }

    /// Fits `user` on comparisons whose chosen and rejected replies have pooled states `h`
    /// ((2K, C): chosen_k at 2k, rejected_k at 2k+1), logs the fit, and adds or replaces the user.
    func adapt(_ user: String, states h: [Float], width C: Int, id: JSONValue) throws(WireError) -> Fitted {
        guard let prior else { throw WireError(.notAdaptable, refusal ?? "this model's users cannot be adapted", id: id) }
        guard !trained.contains(user) || trained.index(of: user) > userModel.config.users else {
            throw WireError(.notAdaptable, "user '\(user)' is a trained user of this model; adapt fits new users", id: id)
        }
        guard users.contains(user) || adapted < maxAdapted else {
            throw WireError(.tooManyUsers, "the server holds \(adapted) adapted users, its limit; refitting one of them is still possible", id: id)
        }
        let d = (0..<(h.count / (2 * C))).map { k in (0..<C).map { Double(h[2 * k * C + $0]) - Double(h[(2 * k + 1) * C + $0]) } }
        let fitted = prior.posterior(d)
        var fit = ComparisonFit()
        fit.add(fitted.margins)
        let record = UserLog.Record(userID: user, row: fitted.row, fit: fit, writer: writer, model: fingerprint)
        do { try log.append(record) } catch {
            throw WireError(.internal, "the fit of user '\(user)' could not be logged, so it is not used: \(error.message)", id: id)
        }
        if let problem = UserLog.apply(record, to: userModel, users: &users) { throw WireError(.internal, problem, id: id) }
        posteriors[user] = fitted.posterior
        return Fitted(user: user, fit: fit, adaptedUsers: adapted)
    }

    /// What the server believes of a user's vector: the prior for a user it does not know (who is
    /// scored as the generic user), the Laplace approximation for a user this process fitted.
    enum Belief {
        case prior(UserPosterior)
        case posterior(UserPosterior)
        /// Why there is none: a model whose users cannot be fitted, or a known user whose
        /// comparisons this process did not see (trained, from the log, another worker's).
        case unavailable(String)

        /// What replies call it.
        var basis: String {
            switch self {
            case .prior: "prior"
            case .posterior: "posterior"
            case .unavailable: "unavailable"
            }
        }
    }

    func belief(of user: String?) -> Belief {
        guard let prior else { return .unavailable(refusal ?? "this model's users cannot be adapted") }
        guard let user, users.contains(user) else { return .prior(UserPosterior(prior: prior)) }
        if let posterior = posteriors[user] { return .posterior(posterior) }
        let origin = trained.contains(user) && trained.index(of: user) <= userModel.config.users
            ? "a trained user" : "fitted by another process or before this one started (the user log keeps no comparisons)"
        return .unavailable("user '\(user)' is \(origin): its posterior is not known here")
    }
}
