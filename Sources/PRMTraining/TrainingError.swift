import Foundation

/// Why training, evaluation or adaptation could not go on (bad settings, data, or a diverged run).
public struct TrainingError: Error, CustomStringConvertible, Sendable {
    public let description: String
    public init(_ description: String) { self.description = description }
}
