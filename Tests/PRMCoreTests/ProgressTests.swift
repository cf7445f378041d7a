import Foundation
import XCTest
@testable import PRMCore

/// Collects what a Console writes. Locked: the logger tests write from many threads.
private final class Sink: @unchecked Sendable {
    private let lock = NSLock()
    private var chunks: [String] = []

    func append(_ text: String) { lock.lock(); chunks.append(text); lock.unlock() }
    var text: String { lock.lock(); defer { lock.unlock() }; return chunks.joined() }
    var writes: [String] { lock.lock(); defer { lock.unlock() }; return chunks }
    var lines: [String] { text.split(separator: "\n").map(String.init) }

    func console(terminal: Bool, columns: Int = 200) -> Console {
        Console(isTerminal: terminal, columns: { columns }, sink: { [self] in append($0) })
    }
}

/// A clock the test moves by hand.
private final class FakeClock: @unchecked Sendable {
    private let lock = NSLock()
    private var time: Double = 1000

    var now: Double { lock.lock(); defer { lock.unlock() }; return time }
    func advance(_ seconds: Double) { lock.lock(); time += seconds; lock.unlock() }
    var function: @Sendable () -> Double { { [self] in now } }
}

final class ProgressTests: XCTestCase {
    // MARK: Pure formatting

    func testDuration() {
        XCTAssertEqual(ProgressFormat.duration(0), "0s")
        XCTAssertEqual(ProgressFormat.duration(7.4), "7s")
        XCTAssertEqual(ProgressFormat.duration(59.4), "59s")
        XCTAssertEqual(ProgressFormat.duration(59.6), "1m00s")
        XCTAssertEqual(ProgressFormat.duration(65), "1m05s")
        XCTAssertEqual(ProgressFormat.duration(83), "1m23s")
        XCTAssertEqual(ProgressFormat.duration(3599.4), "59m59s")
        XCTAssertEqual(ProgressFormat.duration(3600), "1h00m")
        XCTAssertEqual(ProgressFormat.duration(7500), "2h05m")
        XCTAssertEqual(ProgressFormat.duration(100 * 3600 + 59), "100h00m")
        XCTAssertEqual(ProgressFormat.duration(-1), "?")
        XCTAssertEqual(ProgressFormat.duration(.nan), "?")
        XCTAssertEqual(ProgressFormat.duration(.infinity), "?")
        XCTAssertEqual(ProgressFormat.duration(1e300), "?")
    }

    func testRate() {
        XCTAssertEqual(ProgressFormat.rate(done: 1200, seconds: 4, unit: "ex"), "300 ex/s")
        XCTAssertEqual(ProgressFormat.rate(done: 1249, seconds: 10, unit: "tok"), "125 tok/s")
        XCTAssertEqual(ProgressFormat.rate(done: 50, seconds: 4, unit: "ex"), "12.5 ex/s")
        XCTAssertEqual(ProgressFormat.rate(done: 13, seconds: 4, unit: "ex"), "3.25 ex/s")
        XCTAssertEqual(ProgressFormat.rate(done: 1, seconds: 1, unit: "it"), "1.00 it/s")
        // Slower than one per second flips to seconds per unit.
        XCTAssertEqual(ProgressFormat.rate(done: 1, seconds: 4.2, unit: "step"), "4.20 s/step")
        XCTAssertEqual(ProgressFormat.rate(done: 2, seconds: 90, unit: "step"), "45.0 s/step")
        XCTAssertEqual(ProgressFormat.rate(done: 0, seconds: 3, unit: "ex"), "- ex/s")
        XCTAssertEqual(ProgressFormat.rate(done: 5, seconds: 0, unit: "ex"), "- ex/s")
    }

    func testRemaining() {
        XCTAssertEqual(ProgressFormat.remaining(done: 25, total: 100, elapsed: 10), 30)
        XCTAssertEqual(ProgressFormat.remaining(done: 100, total: 100, elapsed: 5), 0)
        XCTAssertEqual(ProgressFormat.remaining(done: 120, total: 100, elapsed: 5), 0)
        XCTAssertNil(ProgressFormat.remaining(done: 0, total: 100, elapsed: 10))
        XCTAssertNil(ProgressFormat.remaining(done: 5, total: 0, elapsed: 10))
        XCTAssertNil(ProgressFormat.remaining(done: 5, total: 100, elapsed: 0))
    }

    func testPercentAndBar() {
        XCTAssertEqual(ProgressFormat.percent(done: 999, total: 1000), 99)
        XCTAssertEqual(ProgressFormat.percent(done: 1000, total: 1000), 100)
        XCTAssertEqual(ProgressFormat.percent(done: 1, total: 3), 33)
        XCTAssertEqual(ProgressFormat.percent(done: -4, total: 3), 0)
        XCTAssertNil(ProgressFormat.percent(done: 4, total: 0))
        XCTAssertEqual(ProgressFormat.percent(done: Int.max, total: 10), Int.max / 10)

        XCTAssertEqual(ProgressFormat.bar(done: 1, total: 4, width: 8), "[##------]")
        XCTAssertEqual(ProgressFormat.bar(done: 0, total: 4, width: 4), "[----]")
        XCTAssertEqual(ProgressFormat.bar(done: 9, total: 4, width: 4), "[####]")
        XCTAssertEqual(ProgressFormat.bar(done: 3, total: 0, width: 4), "[----]")
    }

    func testSummary() {
        XCTAssertEqual(
            ProgressFormat.summary(label: "epoch 1", done: 1200, total: 5000, unit: "ex", elapsed: 4, extra: "loss 0.51 acc 0.73"),
            "epoch 1: 1200/5000 (24%), 300 ex/s, elapsed 4s, eta 13s, loss 0.51 acc 0.73")
        XCTAssertEqual(
            ProgressFormat.summary(label: "eval", done: 0, total: 10, unit: "ex", elapsed: 0, extra: nil),
            "eval: 0/10 (0%), - ex/s, elapsed 0s, eta ?")
        XCTAssertEqual(
            ProgressFormat.summary(label: "eval", done: 10, total: 10, unit: "ex", elapsed: 83, extra: "", finished: true),
            "eval: 10/10 (100%), 8.30 s/ex, done in 1m23s")
        XCTAssertEqual(
            ProgressFormat.summary(label: "scan", done: 1200, total: 0, unit: "ex", elapsed: 4, extra: nil),
            "scan: 1200, 300 ex/s, elapsed 4s")
        XCTAssertEqual(
            ProgressFormat.statusLine(label: "e", done: 5, total: 20, unit: "it", elapsed: 5, extra: nil),
            "[#####---------------] e: 5/20 (25%), 1.00 it/s, elapsed 5s, eta 15s")
        XCTAssertEqual(
            ProgressFormat.statusLine(label: "e", done: 5, total: 0, unit: "it", elapsed: 5, extra: nil),
            "e: 5, 1.00 it/s, elapsed 5s")
    }

    func testPlainThrottleRules() {
        let throttle = ProgressThrottle()  // 2 s minimum, 60 s heartbeat
        // A new tenth, but too soon after the last line.
        XCTAssertFalse(throttle.plainLineDue(done: 10, total: 100, doneAtLastLine: 0, now: 1.9, lastLine: 0))
        XCTAssertTrue(throttle.plainLineDue(done: 10, total: 100, doneAtLastLine: 0, now: 2, lastLine: 0))
        // Late enough, but still within the same tenth.
        XCTAssertFalse(throttle.plainLineDue(done: 19, total: 100, doneAtLastLine: 10, now: 30, lastLine: 0))
        // The heartbeat fires whatever the progress, and for unknown totals.
        XCTAssertTrue(throttle.plainLineDue(done: 19, total: 100, doneAtLastLine: 10, now: 60, lastLine: 0))
        XCTAssertFalse(throttle.plainLineDue(done: 500, total: 0, doneAtLastLine: 0, now: 59, lastLine: 0))
        XCTAssertTrue(throttle.plainLineDue(done: 500, total: 0, doneAtLastLine: 0, now: 60, lastLine: 0))
        // The final unit is left to finish().
        XCTAssertFalse(throttle.plainLineDue(done: 100, total: 100, doneAtLastLine: 50, now: 100, lastLine: 0))
        XCTAssertEqual(ProgressThrottle.tenths(99, of: 100), 9)
        XCTAssertEqual(ProgressThrottle.tenths(3, of: 7), 4)
        XCTAssertEqual(ProgressThrottle.tenths(200, of: 100), 10)
    }

    // MARK: ProgressBar, not on a terminal

    func testPlainOutputPrintsOncePerTenthAndAFinalLine() {
        let sink = Sink(), clock = FakeClock()
        let progress = ProgressBar(total: 100, label: "train", unit: "ex", console: sink.console(terminal: false), clock: clock.function)
        for _ in 0..<100 {
            clock.advance(0.5)
            progress.advance(extra: "loss 0.50")
        }
        progress.finish()
        let lines = sink.lines
        // Tenths 1...9 (the 100% line is finish's), then the summary.
        XCTAssertEqual(lines.count, 10, sink.text)
        XCTAssertEqual(lines.first, "[prm] info: train: 10/100 (10%), 2.00 ex/s, elapsed 5s, eta 45s, loss 0.50")
        XCTAssertEqual(lines[8], "[prm] info: train: 90/100 (90%), 2.00 ex/s, elapsed 45s, eta 5s, loss 0.50")
        XCTAssertEqual(lines.last, "[prm] info: train: 100/100 (100%), 2.00 ex/s, done in 50s, loss 0.50")
        XCTAssertFalse(sink.text.contains("\r"))
        XCTAssertEqual(progress.count, 100)
    }

    func testPlainOutputStaysShortForFastWork() {
        let sink = Sink(), clock = FakeClock()
        let progress = ProgressBar(total: 10_000, label: "embed", unit: "ex", console: sink.console(terminal: false), clock: clock.function)
        for _ in 0..<10_000 {
            clock.advance(0.0001)  // one second in all: below the 2 s minimum between lines
            progress.advance()
        }
        progress.finish()
        XCTAssertEqual(sink.lines, ["[prm] info: embed: 10000/10000 (100%), 10000 ex/s, done in 1s"])
    }

    func testPlainOutputSkipsTenthsCrossedWithinTheMinimumInterval() {
        let sink = Sink(), clock = FakeClock()
        let progress = ProgressBar(total: 100, label: "x", unit: "it", console: sink.console(terminal: false), clock: clock.function)
        clock.advance(1)
        progress.advance(by: 35)  // three tenths in one second: too soon for a line
        clock.advance(1.5)
        progress.advance(by: 1)   // 2.5 s: the pending tenth is reported now
        clock.advance(1)
        progress.advance(by: 1)   // same tenth: nothing
        XCTAssertEqual(sink.lines, ["[prm] info: x: 36/100 (36%), 14.4 it/s, elapsed 3s, eta 4s"])
    }

    func testPlainHeartbeatForUnknownTotal() {
        let sink = Sink(), clock = FakeClock()
        let progress = ProgressBar(total: 0, label: "stream", unit: "msg", console: sink.console(terminal: false), clock: clock.function)
        for _ in 0..<20 {
            clock.advance(10)
            progress.advance(by: 5)
        }
        progress.finish()
        XCTAssertEqual(sink.lines, [
            "[prm] info: stream: 30, 2.00 s/msg, elapsed 1m00s",
            "[prm] info: stream: 60, 2.00 s/msg, elapsed 2m00s",
            "[prm] info: stream: 90, 2.00 s/msg, elapsed 3m00s",
            "[prm] info: stream: 100, 2.00 s/msg, done in 3m20s",
        ])
    }

    func testFinishIsIdempotentAndStopsAdvancing() {
        let sink = Sink(), clock = FakeClock()
        let progress = ProgressBar(total: 4, label: "x", unit: "it", console: sink.console(terminal: false), clock: clock.function)
        clock.advance(2)
        progress.advance(by: 4)
        progress.finish(extra: "acc 0.75")
        progress.finish()
        progress.advance()
        XCTAssertEqual(sink.lines, ["[prm] info: x: 4/4 (100%), 2.00 it/s, done in 2s, acc 0.75"])
        XCTAssertEqual(progress.count, 4)
    }

    func testDisabledProgressWritesNothing() {
        let sink = Sink(), clock = FakeClock()
        let progress = ProgressBar(total: 10, label: "x", unit: "it", console: sink.console(terminal: false), enabled: false, clock: clock.function)
        for _ in 0..<10 { clock.advance(10); progress.advance() }
        progress.finish()
        XCTAssertEqual(sink.text, "")
        XCTAssertEqual(progress.count, 10)
    }

    // MARK: ProgressBar on a terminal

    func testTerminalRedrawsAtMostTenTimesASecond() {
        let sink = Sink(), clock = FakeClock()
        let progress = ProgressBar(total: 1000, label: "train", unit: "ex", console: sink.console(terminal: true), clock: clock.function)
        for _ in 0..<1000 {
            clock.advance(0.001)  // one second of updates, 1000 of them
            progress.advance()
        }
        let redraws = sink.writes.filter { $0.hasPrefix("\r[") }
        // The first update draws at once, then one every 0.1 s: 10 or 11 in one second.
        XCTAssertGreaterThanOrEqual(redraws.count, 10)
        XCTAssertLessThanOrEqual(redraws.count, 11)
        XCTAssertEqual(redraws.first, "\r[--------------------] train: 1/1000 (0%), 1000 ex/s, elapsed 0s, eta 1s\u{1B}[K")
        XCTAssertFalse(sink.text.contains("\n"), "no newline before finish")

        progress.finish()
        XCTAssertTrue(sink.text.hasSuffix("\r\u{1B}[K[prm] info: train: 1000/1000 (100%), 1000 ex/s, done in 1s\n"), sink.text)
    }

    func testTerminalStatusIsCutToTheWidth() {
        let sink = Sink(), clock = FakeClock()
        let progress = ProgressBar(total: 10, label: "x", unit: "it", console: sink.console(terminal: true, columns: 30), clock: clock.function)
        clock.advance(1)
        progress.advance(extra: String(repeating: "m", count: 100))
        // 29 visible characters (one column spare so the cursor never wraps), then erase-to-end.
        XCTAssertEqual(sink.writes, ["\r[##------------------] x: 1/1\u{1B}[K"])
    }

    func testLogLinesKeepTheStatusLineBelowThem() {
        let sink = Sink(), clock = FakeClock()
        let console = sink.console(terminal: true)
        let logger = Logger(console: console, level: .info)
        let progress = ProgressBar(total: 2, label: "x", unit: "it", console: console, clock: clock.function)
        clock.advance(1)
        progress.advance()
        logger.info("checkpoint saved")
        let status = "[##########----------] x: 1/2 (50%), 1.00 it/s, elapsed 1s, eta 1s\u{1B}[K"
        XCTAssertEqual(sink.writes, ["\r" + status, "\r\u{1B}[K[prm] info: checkpoint saved\n", status])
        progress.finish()
        XCTAssertEqual(sink.writes.last, "\r\u{1B}[K[prm] info: x: 1/2 (50%), 1.00 it/s, done in 1s\n")
        // After finish, log lines no longer redraw a status.
        logger.info("done")
        XCTAssertEqual(sink.writes.last, "[prm] info: done\n")
    }

    func testAbandonedProgressClearsItsStatusLine() {
        let sink = Sink(), clock = FakeClock()
        let console = sink.console(terminal: true)
        do {
            let progress = ProgressBar(total: 2, label: "x", unit: "it", console: console, clock: clock.function)
            progress.advance()
        }
        console.write("after\n")
        XCTAssertEqual(sink.writes.suffix(2), ["\r\u{1B}[K", "after\n"])
    }
}

final class LogTests: XCTestCase {
    func testFormat() {
        XCTAssertEqual(Logger.format(.info, "loaded 199 tensors"), "[prm] info: loaded 199 tensors\n")
        XCTAssertEqual(Logger.format(.warning, "w"), "[prm] warning: w\n")
    }

    func testLevelFiltering() {
        let sink = Sink()
        let logger = Logger(console: sink.console(terminal: false), level: .warning)
        logger.error("e")
        logger.warning("w")
        logger.info("i")
        logger.debug("d")
        XCTAssertEqual(sink.text, "[prm] error: e\n[prm] warning: w\n")
        logger.level = .debug
        logger.debug("d2")
        XCTAssertEqual(sink.lines.last, "[prm] debug: d2")
        XCTAssertTrue(logger.isEnabled(.debug))
        logger.level = .error
        XCTAssertFalse(logger.isEnabled(.warning))
    }

    func testDisabledMessagesAreNotBuilt() {
        let sink = Sink()
        let logger = Logger(console: sink.console(terminal: false), level: .info)
        let built = Sink()
        logger.debug({ built.append("x"); return "expensive" }())
        XCTAssertEqual(built.text, "")
        logger.info({ built.append("x"); return "cheap" }())
        XCTAssertEqual(built.text, "x")
    }

    func testLevelNamesAndEnvironment() {
        XCTAssertEqual(LogLevel(name: "DEBUG"), .debug)
        XCTAssertEqual(LogLevel(name: " warn "), .warning)
        XCTAssertEqual(LogLevel(name: "error"), .error)
        XCTAssertNil(LogLevel(name: "verbose"))
        XCTAssertTrue(LogLevel.error < LogLevel.debug)

        XCTAssertEqual(Logger.level(fromEnvironment: nil).0, .info)
        XCTAssertNil(Logger.level(fromEnvironment: nil).problem)
        XCTAssertEqual(Logger.level(fromEnvironment: "").0, .info)
        XCTAssertEqual(Logger.level(fromEnvironment: "debug").0, .debug)
        XCTAssertNil(Logger.level(fromEnvironment: "debug").problem)
        let bad = Logger.level(fromEnvironment: "verbose")
        XCTAssertEqual(bad.0, .info)
        XCTAssertEqual(bad.problem, "PRM_LOG_LEVEL='verbose' is not one of error, warning, info, debug; using info")
    }

    func testConcurrentLinesStayWhole() {
        let sink = Sink()
        let logger = Logger(console: sink.console(terminal: false), level: .info)
        DispatchQueue.concurrentPerform(iterations: 2000) { index in
            logger.info("message \(index) " + String(repeating: "x", count: index % 50))
        }
        let lines = sink.lines
        XCTAssertEqual(lines.count, 2000)
        let indices = lines.compactMap { line -> Int? in
            let parts = line.split(separator: " ")
            guard parts.count >= 4, parts[0] == "[prm]", parts[1] == "info:", parts[2] == "message",
                  let index = Int(parts[3]) else { return nil }
            let tail = parts.count == 5 ? String(parts[4]) : ""
            return tail == String(repeating: "x", count: index % 50) ? index : nil
        }
        XCTAssertEqual(Set(indices), Set(0..<2000))
    }

    func testSharedLevelCanBeSet() {
        let saved = Log.level
        defer { Log.level = saved }
        Log.level = .error
        XCTAssertEqual(Logger.shared.level, .error)
        XCTAssertFalse(Log.isEnabled(.info))
        Log.level = .debug
        XCTAssertTrue(Log.isEnabled(.debug))
    }
}
