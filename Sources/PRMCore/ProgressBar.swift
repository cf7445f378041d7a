import Foundation

/// Progress reporting for long work (training epochs, evaluation, benchmarks).
///
///     let progress = ProgressBar(total: batches.count, label: "epoch 1", unit: "batch")
///     for batch in batches {
///         …
///         progress.advance(extra: "loss \(loss) acc \(accuracy)")
///     }
///     progress.finish()
///
/// On a terminal it keeps one status line redrawn with `\r` (at most every 0.1 s). When stderr
/// is not a terminal (CI, pipes, `2> log`) it writes ordinary `[prm] info:` lines only when
/// another 10% is done (at least 2 s apart), plus a heartbeat each minute for slow or open-ended
/// work, so logs stay short. It is quiet when the shared logger's level is below info.
/// (Not named `Progress`: Foundation has a class of that name.)
public final class ProgressBar: @unchecked Sendable {
    public let total: Int
    public let label: String
    public let unit: String

    private let console: Console
    private let enabled: Bool
    private let clock: @Sendable () -> Double
    private let throttle: ProgressThrottle
    private let start: Double

    // Guards everything below: `advance` may be called from worker threads.
    private let lock = NSLock()
    private var done = 0
    private var extra: String?
    private var lastDraw: Double?
    private var lastLine: Double
    private var countAtLastLine = 0
    private var finished = false

    /// A reporter on stderr, enabled when the shared logger shows info.
    /// - Parameters:
    ///   - total: the number of units of work; 0 or less when unknown (no percentage or ETA).
    ///   - unit: what is counted, for the rate: "ex" gives "310 ex/s".
    public convenience init(total: Int, label: String, unit: String = "it") {
        self.init(total: total, label: label, unit: unit, console: .standardError,
                  enabled: Logger.shared.isEnabled(.info), clock: ProgressBar.monotonicSeconds)
    }

    /// The full initialiser: tests inject the console (terminal or not, and its sink) and the clock.
    public init(total: Int, label: String, unit: String, console: Console, enabled: Bool = true,
                clock: @escaping @Sendable () -> Double, throttle: ProgressThrottle = ProgressThrottle()) {
        self.total = total
        self.label = label
        self.unit = unit
        self.console = console
        self.enabled = enabled
        self.clock = clock
        self.throttle = throttle
        self.start = clock()
        self.lastLine = start
    }

    deinit {
        // A reporter abandoned mid-way (an error was thrown) must not leave its status line to
        // be redrawn under every later log line.
        if !finished && enabled && console.isTerminal { console.endStatus() }
    }

    /// Units done so far.
    public var count: Int {
        lock.lock(); defer { lock.unlock() }
        return done
    }

    /// Records `units` more done. `extra` (e.g. "loss 0.51 acc 0.73 1200 tok/s") is shown after
    /// the counts; nil keeps the previous one so metrics stay on screen between updates.
    public func advance(by units: Int = 1, extra: String? = nil) {
        lock.lock(); defer { lock.unlock() }
        guard !finished else { return }
        done += units
        if let extra { self.extra = extra }
        guard enabled else { return }
        let now = clock()
        if console.isTerminal {
            if let lastDraw, now - lastDraw < throttle.terminalInterval { return }
            lastDraw = now
            console.setStatus(ProgressFormat.statusLine(label: label, done: done, total: total, unit: unit,
                                                         elapsed: now - start, extra: self.extra))
        } else if throttle.plainLineDue(done: done, total: total, doneAtLastLine: countAtLastLine,
                                        now: now, lastLine: lastLine) {
            lastLine = now
            countAtLastLine = done
            console.write(Logger.format(.info, ProgressFormat.summary(
                label: label, done: done, total: total, unit: unit, elapsed: now - start, extra: self.extra)))
        }
    }

    /// Writes the final summary ("done in 1m23s") and ends the status line. Later calls to
    /// `advance` or `finish` do nothing.
    public func finish(extra: String? = nil) {
        lock.lock(); defer { lock.unlock() }
        guard !finished else { return }
        finished = true
        if let extra { self.extra = extra }
        guard enabled else { return }
        let line = Logger.format(.info, ProgressFormat.summary(
            label: label, done: done, total: total, unit: unit, elapsed: clock() - start,
            extra: self.extra, finished: true))
        if console.isTerminal {
            console.endStatus(final: String(line.dropLast()))
        } else {
            console.write(line)
        }
    }

    /// Seconds on a monotonic clock (unaffected by wall-clock changes).
    public static let monotonicSeconds: @Sendable () -> Double = {
        Double(DispatchTime.now().uptimeNanoseconds) / 1e9
    }
}

/// When `ProgressBar` writes. Plain (non-terminal) output: a line once another tenth of the total
/// is done, never closer than `plainMinInterval`, and at the latest every `plainHeartbeat`
/// seconds so slow work (or an unknown total) still shows it is alive.
public struct ProgressThrottle: Sendable, Equatable {
    public var terminalInterval: Double
    public var plainMinInterval: Double
    public var plainHeartbeat: Double

    public init(terminalInterval: Double = 0.1, plainMinInterval: Double = 2, plainHeartbeat: Double = 60) {
        self.terminalInterval = terminalInterval
        self.plainMinInterval = plainMinInterval
        self.plainHeartbeat = plainHeartbeat
    }

    /// Whether a plain line is due now, given the count and time at the previous line
    /// (the start counts as a line at 0).
    public func plainLineDue(done: Int, total: Int, doneAtLastLine: Int, now: Double, lastLine: Double) -> Bool {
        // The last unit is reported by `finish`, with the total time; a line here would repeat it.
        if total > 0 && done >= total { return false }
        let since = now - lastLine
        if since < plainMinInterval { return false }
        if since >= plainHeartbeat { return true }
        guard total > 0 else { return false }
        return ProgressThrottle.tenths(done, of: total) > ProgressThrottle.tenths(doneAtLastLine, of: total)
    }

    /// Completed tenths, 0...10.
    static func tenths(_ done: Int, of total: Int) -> Int {
        min(10, ProgressFormat.scaled(done, by: 10, over: total))
    }
}

/// Pure formatting for progress lines, separately tested.
public enum ProgressFormat {
    /// "7s", "1m23s", "1m05s", "2h05m"; "?" for negative or non-finite (an unknown ETA).
    /// Rounded to the nearest second; hours drop the seconds, which no longer matter.
    public static func duration(_ seconds: Double) -> String {
        guard seconds.isFinite, seconds >= 0, seconds < 1e12 else { return "?" }
        let whole = Int(seconds.rounded())
        if whole < 60 { return "\(whole)s" }
        if whole < 3600 { return "\(whole / 60)m\(twoDigits(whole % 60))s" }
        return "\(whole / 3600)h\(twoDigits(whole % 3600 / 60))m"
    }

    /// Mean rate since the start: "310 ex/s", "12.5 ex/s", "3.25 ex/s"; below one per second it
    /// flips to seconds per unit ("4.20 s/step"), which reads better for slow training steps.
    /// "- ex/s" before anything is measurable.
    public static func rate(done: Int, seconds: Double, unit: String) -> String {
        guard done > 0, seconds > 0, seconds.isFinite else { return "- \(unit)/s" }
        let perSecond = Double(done) / seconds
        if perSecond >= 1 { return "\(significant(perSecond)) \(unit)/s" }
        return "\(significant(1 / perSecond)) s/\(unit)"
    }

    /// Seconds left at the mean rate so far; nil when it cannot be estimated yet.
    public static func remaining(done: Int, total: Int, elapsed: Double) -> Double? {
        guard total > 0, done > 0, elapsed > 0, elapsed.isFinite else { return nil }
        if done >= total { return 0 }
        return Double(total - done) * elapsed / Double(done)
    }

    /// Whole percent done, rounded down so 99.9% never shows as 100%; nil for an unknown total.
    public static func percent(done: Int, total: Int) -> Int? {
        guard total > 0 else { return nil }
        return scaled(done, by: 100, over: total)
    }

    /// "[#####---------------]", `width` cells filled in proportion to done/total.
    public static func bar(done: Int, total: Int, width: Int = 20) -> String {
        let filled = total > 0 ? min(width, scaled(done, by: width, over: total)) : 0
        return "[" + String(repeating: "#", count: filled) + String(repeating: "-", count: width - filled) + "]"
    }

    /// "epoch 1: 1200/5000 (24%), 310 ex/s, elapsed 3s, eta 12s, loss 0.51"; when finished,
    /// "…, done in 16s, …"; without a total, "epoch 1: 1200, 310 ex/s, elapsed 3s".
    public static func summary(label: String, done: Int, total: Int, unit: String, elapsed: Double,
                               extra: String?, finished: Bool = false) -> String {
        var parts: [String] = []
        if let percent = percent(done: done, total: total) {
            parts.append("\(done)/\(total) (\(percent)%)")
        } else {
            parts.append("\(done)")
        }
        parts.append(rate(done: done, seconds: elapsed, unit: unit))
        if finished {
            parts.append("done in \(duration(elapsed))")
        } else {
            parts.append("elapsed \(duration(elapsed))")
            if total > 0 { parts.append("eta \(duration(remaining(done: done, total: total, elapsed: elapsed) ?? .nan))") }
        }
        if let extra, !extra.isEmpty { parts.append(extra) }
        return "\(label): " + parts.joined(separator: ", ")
    }

    /// The terminal status line: the summary behind a bar when the total is known.
    public static func statusLine(label: String, done: Int, total: Int, unit: String, elapsed: Double, extra: String?) -> String {
        let text = summary(label: label, done: done, total: total, unit: unit, elapsed: elapsed, extra: extra)
        return total > 0 ? bar(done: done, total: total) + " " + text : text
    }

    /// Three significant figures at most: 312, 12.5, 3.25.
    static func significant(_ value: Double) -> String {
        if value >= 99.95 { return String(Int(value.rounded())) }
        if value >= 9.995 { return String(format: "%.1f", value) }
        return String(format: "%.2f", value)
    }

    /// ⌊done · factor / total⌋ in integers (exact at the boundaries), negative done as 0;
    /// saturates rather than overflowing.
    static func scaled(_ done: Int, by factor: Int, over total: Int) -> Int {
        let (product, overflow) = max(0, done).multipliedReportingOverflow(by: factor)
        return overflow ? Int.max / max(1, total) : product / max(1, total)
    }

    private static func twoDigits(_ value: Int) -> String { value < 10 ? "0\(value)" : "\(value)" }
}
