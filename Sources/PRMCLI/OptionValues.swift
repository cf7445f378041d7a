import Foundation
import PRMCore
import PRMServing

/// Option values with the range checks several commands share: counts, byte sizes, compute
/// threads and ZeroMQ endpoints. Every refusal is a one-line UsageError naming the option, so a
/// typo stops the command before it loads a model, binds a socket or starts training.
extension ParsedArguments {
    /// An integer option in `minimum...maximum` (its declared default when absent).
    func count(_ name: String, atLeast minimum: Int = 1, atMost maximum: Int = .max) throws -> Int {
        guard let value = try optionalCount(name, atLeast: minimum, atMost: maximum) else { throw usageError("missing required option --\(name)") }
        return value
    }

    /// As `count`, nil when the option is absent and has no default (`--limit`).
    func optionalCount(_ name: String, atLeast minimum: Int = 1, atMost maximum: Int = .max) throws -> Int? {
        guard let value = try int(name) else { return nil }
        guard value >= minimum else { throw usageError("--\(name) must be at least \(minimum), got \(value)") }
        guard value <= maximum else { throw usageError("--\(name) must be at most \(maximum), got \(value)") }
        return value
    }

    /// An amount of memory in bytes: a plain number, or one with a unit (KiB, MiB, GiB, TiB and
    /// K, M, G, T in powers of 1024; KB, MB, GB, TB in powers of 1000), at most the machine's RAM.
    func memorySize(_ name: String) throws -> Int {
        let maximum = Int(clamping: ProcessInfo.processInfo.physicalMemory)
        guard let text = string(name) else { throw usageError("missing required option --\(name)") }
        guard let bytes = ByteSize.parse(text) else {
            throw usageError("--\(name) expects a size such as 512MiB, 2GiB or a number of bytes, got '\(text)'")
        }
        guard bytes <= maximum else {
            throw usageError("--\(name) \(text) is more than this machine's memory (\(ByteSize.describe(maximum)))")
        }
        return bytes
    }

    /// `--threads`: at least 1 and at most `Threads.limit`, with a warning above the cores.
    func threads(_ name: String = "threads") throws -> Int {
        let threads = try count(name, atMost: Threads.limit)
        if threads > Parallel.cores {
            Log.warning("--\(name) \(threads) is more than this machine's \(Parallel.cores) cores: the threads will take turns, not run faster")
        }
        return threads
    }

    /// A ZeroMQ endpoint option, checked before anything binds or connects (nil when absent).
    func endpoint(_ name: String) throws -> String? { try checkedAddress(name) { $0 } }

    /// A HOST:PORT option (`--metrics-http`), checked as the tcp endpoint it becomes.
    func hostPort(_ name: String) throws -> String? { try checkedAddress(name) { "tcp://" + $0 } }

    private func checkedAddress(_ name: String, endpoint: (String) -> String) throws -> String? {
        guard let value = string(name) else { return nil }
        if let problem = Endpoints.problem(endpoint(value)) { throw usageError("--\(name) '\(value)': \(problem)") }
        return value
    }
}

/// Bounds on compute threads.
enum Threads {
    /// Compute threads are busy threads: beyond the cores they only take turns, and sgemm and
    /// prm's parallel regions get slower with each extra one. A few times the cores still
    /// leaves room for a share computed for a larger machine; far beyond it a value is a typo,
    /// and one that asks for more threads than the system allows kills the process inside
    /// OpenMP (`libgomp: Thread creation failed`). 256 bounds even the largest hosts.
    static var limit: Int { min(4 * Parallel.cores, 256) }
}

/// Sizes in bytes as people write them.
enum ByteSize {
    private static let units: [(suffix: String, factor: Int)] = [
        ("KiB", 1 << 10), ("MiB", 1 << 20), ("GiB", 1 << 30), ("TiB", 1 << 40),
        ("KB", 1_000), ("MB", 1_000_000), ("GB", 1_000_000_000), ("TB", 1_000_000_000_000),
        ("K", 1 << 10), ("M", 1 << 20), ("G", 1 << 30), ("T", 1 << 40), ("B", 1),
    ]

    /// Bytes of "512MiB", "1.5GiB", "64M" or "1048576"; nil when malformed, negative or too large.
    static func parse(_ text: String) -> Int? {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        let (number, factor) = units.first { trimmed.hasSuffix($0.suffix) }
            .map { (trimmed.dropLast($0.suffix.count).trimmingCharacters(in: .whitespaces), $0.factor) } ?? (trimmed, 1)
        guard !number.isEmpty, number.allSatisfy({ $0.isASCII && ($0.isNumber || $0 == ".") }),
              let value = Double(number), value.isFinite else { return nil }
        let bytes = (value * Double(factor)).rounded(.down)
        guard bytes < Double(Int.max) else { return nil }
        return Int(bytes)
    }

    /// "3.1 GiB", for messages.
    static func describe(_ bytes: Int) -> String {
        let gib = Double(bytes) / Double(1 << 30)
        return gib >= 1 ? String(format: "%.1f GiB", gib) : String(format: "%.0f MiB", Double(bytes) / Double(1 << 20))
    }
}
