import Foundation
import PRMCore
import PRMServing

/// Option values with the range checks several commands share: counts, byte sizes, compute
/// threads and ZeroMQ endpoints. Every refusal is a one-line usage `CLIError` naming the option, so a
/// typo stops the command before it loads a model, binds a socket or starts training. `count` and
/// `endpoint` are public because `prm bench` (PRMBench) reads its options through them.
extension ParsedArguments {
    /// An integer option in `minimum...maximum` (its declared default when absent).
    public func count(_ name: String, atLeast minimum: Int = 1, atMost maximum: Int = .max) throws -> Int {
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
    public func endpoint(_ name: String) throws -> String? { try checkedAddress(name) { $0 } }

    /// A HOST:PORT option (`--metrics-http`), checked as the tcp endpoint it becomes.
    func hostPort(_ name: String) throws -> String? { try checkedAddress(name) { "tcp://" + $0 } }

    private func checkedAddress(_ name: String, endpoint: (String) -> String) throws -> String? {
        guard let value = string(name) else { return nil }
        if let problem = Endpoints.problem(endpoint(value)) { throw usageError("--\(name) '\(value)': \(problem)") }
        return value
    }
}

