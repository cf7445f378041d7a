import PRMCore

/// Counts replies that could not be delivered and says so in the log without flooding it: the
/// first drop at once, later ones at most once per second with the running count (a client that
/// sends 60,000 requests and never reads would otherwise write 60,000 lines).
struct DropLog {
    private(set) var count = 0
    private var lastLogged = -Double.infinity
    private var sinceLogged = 0

    mutating func record(_ what: String) {
        count += 1
        sinceLogged += 1
        let now = MonotonicClock.now
        guard now - lastLogged >= 1 else { return }
        Log.warning("\(sinceLogged) repl\(sinceLogged == 1 ? "y" : "ies") could not be delivered (\(what)); \(count) dropped so far")
        lastLogged = now
        sinceLogged = 0
    }
}
