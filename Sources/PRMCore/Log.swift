import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// One levelled logger to stderr for all library code (house style rule 6: no `print` in
// libraries). stdout stays free for a command's actual output (scores, JSON), so it can be piped.
//
// Usage:  Log.info("loaded \(count) tensors from \(path)")   ->   [prm] info: loaded 199 tensors …
//         PRM_LOG_LEVEL=debug prm train …   or   Log.level = .debug

/// Severity, most severe first: a logger at `.info` shows error, warning and info.
public enum LogLevel: Int, Sendable, Comparable, CaseIterable, CustomStringConvertible {
    case error, warning, info, debug

    /// Parses a level name, case-insensitively; "warn" is accepted for "warning".
    public init?(name: String) {
        switch name.trimmingCharacters(in: .whitespaces).lowercased() {
        case "error": self = .error
        case "warning", "warn": self = .warning
        case "info": self = .info
        case "debug": self = .debug
        default: return nil
        }
    }

    public var description: String {
        switch self {
        case .error: return "error"
        case .warning: return "warning"
        case .info: return "info"
        case .debug: return "debug"
        }
    }

    public static func < (lhs: LogLevel, rhs: LogLevel) -> Bool { lhs.rawValue < rhs.rawValue }
}

/// A levelled logger writing `[prm] level: message` lines to a `Console`. Thread-safe.
public final class Logger: @unchecked Sendable {
    /// The process-wide logger: stderr, level from `PRM_LOG_LEVEL` (default info).
    public static let shared: Logger = {
        let console = Console.standardError
        let (level, problem) = Logger.level(fromEnvironment: ProcessInfo.processInfo.environment["PRM_LOG_LEVEL"])
        let logger = Logger(console: console, level: level)
        if let problem { logger.warning(problem) }
        return logger
    }()

    public let console: Console
    // Guards `storedLevel`; NSLock rather than Synchronization.Mutex because Mutex needs
    // macOS 15 and the package declares macOS 13.
    private let lock = NSLock()
    private var storedLevel: LogLevel

    public init(console: Console, level: LogLevel = .info) {
        self.console = console
        self.storedLevel = level
    }

    public var level: LogLevel {
        get { lock.lock(); defer { lock.unlock() }; return storedLevel }
        set { lock.lock(); defer { lock.unlock() }; storedLevel = newValue }
    }

    public func isEnabled(_ level: LogLevel) -> Bool { level <= self.level }

    /// The message is only built when the level is enabled, so debug logging costs nothing at info.
    public func log(_ level: LogLevel, _ message: @autoclosure () -> String) {
        guard isEnabled(level) else { return }
        console.write(Logger.format(level, message()))
    }

    public func error(_ message: @autoclosure () -> String) { log(.error, message()) }
    public func warning(_ message: @autoclosure () -> String) { log(.warning, message()) }
    public func info(_ message: @autoclosure () -> String) { log(.info, message()) }
    public func debug(_ message: @autoclosure () -> String) { log(.debug, message()) }

    /// `[prm] info: message\n`
    public static func format(_ level: LogLevel, _ message: String) -> String {
        "[prm] \(level): \(message)\n"
    }

    /// The level for a `PRM_LOG_LEVEL` value: unset or empty means info; an unknown name also
    /// means info, with a warning to log so the typo does not go unnoticed.
    public static func level(fromEnvironment value: String?) -> (LogLevel, problem: String?) {
        guard let value, !value.trimmingCharacters(in: .whitespaces).isEmpty else { return (.info, nil) }
        if let level = LogLevel(name: value) { return (level, nil) }
        let names = LogLevel.allCases.map(\.description).joined(separator: ", ")
        return (.info, "PRM_LOG_LEVEL='\(value)' is not one of \(names); using info")
    }
}

/// Shorthands for the shared logger.
public enum Log {
    public static var level: LogLevel {
        get { Logger.shared.level }
        set { Logger.shared.level = newValue }
    }
    public static func isEnabled(_ level: LogLevel) -> Bool { Logger.shared.isEnabled(level) }
    public static func error(_ message: @autoclosure () -> String) { Logger.shared.log(.error, message()) }
    public static func warning(_ message: @autoclosure () -> String) { Logger.shared.log(.warning, message()) }
    public static func info(_ message: @autoclosure () -> String) { Logger.shared.log(.info, message()) }
    public static func debug(_ message: @autoclosure () -> String) { Logger.shared.log(.debug, message()) }
}

/// The stderr stream shared by log lines and progress reporting.
///
/// On a terminal a `ProgressBar` keeps a live status line (redrawn with `\r`). Log lines written
/// meanwhile would otherwise land in the middle of it, so every write goes through here: the
/// status line is erased, the text written, and the status redrawn below it.
public final class Console: @unchecked Sendable {
    /// Standard error (file descriptor 2).
    public static let standardError = Console(
        isTerminal: isatty(STDERR_FILENO) != 0,
        columns: { Console.terminalColumns(fileDescriptor: STDERR_FILENO) },
        sink: { Console.writeAll($0, to: STDERR_FILENO) }
    )

    /// Whether the output is an interactive terminal (so `\r` redraws make sense).
    public let isTerminal: Bool
    private let columns: @Sendable () -> Int
    private let sink: @Sendable (String) -> Void
    private let lock = NSLock()
    private var status: String?
    private var statusVisible = false

    /// - Parameters:
    ///   - columns: the terminal's width, read at each status redraw (it can be resized).
    ///   - sink: receives the raw text, control sequences included.
    public init(isTerminal: Bool, columns: @escaping @Sendable () -> Int = { 80 }, sink: @escaping @Sendable (String) -> Void) {
        self.isTerminal = isTerminal
        self.columns = columns
        self.sink = sink
    }

    /// Writes text as is (callers end lines with "\n"), keeping any status line below it.
    public func write(_ text: String) {
        guard !text.isEmpty else { return }
        lock.lock(); defer { lock.unlock() }
        if statusVisible {
            sink("\r\u{1B}[K" + text)
            statusVisible = false
        } else {
            sink(text)
        }
        // Redraw only after a complete line; mid-line the cursor belongs to the writer.
        if let status, text.hasSuffix("\n") {
            sink(render(status))
            statusVisible = true
        }
    }

    /// Shows (or replaces) the live status line. Terminal only: elsewhere it does nothing.
    public func setStatus(_ text: String) {
        guard isTerminal else { return }
        lock.lock(); defer { lock.unlock() }
        status = text
        sink("\r" + render(text))
        statusVisible = true
    }

    /// Removes the live status line; with `final`, replaces it by that permanent line.
    public func endStatus(final: String? = nil) {
        lock.lock(); defer { lock.unlock() }
        var out = statusVisible ? "\r\u{1B}[K" : ""
        if let final { out += final + "\n" }
        if !out.isEmpty { sink(out) }
        status = nil
        statusVisible = false
    }

    /// The status text cut to the terminal width, then erase-to-end-of-line. A line that wrapped
    /// would leave its first row behind at every `\r` redraw.
    private func render(_ text: String) -> String {
        let width = max(10, columns() - 1)
        let shown = text.count > width ? String(text.prefix(width)) : text
        return shown + "\u{1B}[K"
    }

    /// The terminal's width from TIOCGWINSZ, else `$COLUMNS`, else 80.
    static func terminalColumns(fileDescriptor: Int32) -> Int {
        var size = winsize()
        if ioctl(fileDescriptor, UInt(TIOCGWINSZ), &size) == 0, size.ws_col > 0 { return Int(size.ws_col) }
        if let text = ProcessInfo.processInfo.environment["COLUMNS"], let columns = Int(text), columns > 0 { return columns }
        return 80
    }

    /// One `write(2)` per chunk, retried on EINTR and partial writes, so concurrent lines do not
    /// interleave mid-line. Errors (a closed stderr) are dropped: there is nowhere to report them.
    static func writeAll(_ text: String, to fileDescriptor: Int32) {
        var bytes = Array(text.utf8)
        var offset = 0
        bytes.withUnsafeMutableBytes { buffer in
            guard let base = buffer.baseAddress else { return }
            while offset < buffer.count {
                let written = systemWrite(fileDescriptor, base + offset, buffer.count - offset)
                if written > 0 {
                    offset += written
                } else if written < 0 && errno == EINTR {
                    continue
                } else {
                    return
                }
            }
        }
    }
}

/// A `TextOutputStream` onto standard error, through `Console.standardError` so it cooperates
/// with progress lines: `print("…", to: &stream)` or `CLI`'s error messages.
public struct StandardError: TextOutputStream, Sendable {
    public init() {}
    public mutating func write(_ string: String) { Console.standardError.write(string) }
}
