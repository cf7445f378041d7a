import Foundation

/// Everything that can go wrong loading, training or running a policy; the message names the
/// file, field or option involved.
public struct PolicyError: Error, CustomStringConvertible, Sendable {
    public let description: String

    public init(_ description: String) { self.description = description }

    public init(file: URL, _ problem: String) { description = "\(file.path): \(problem)" }
}
