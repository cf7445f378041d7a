/// A command failure with a one-line message (exit 1). Public for the benchmarks (PRMBench).
public struct CLIError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

