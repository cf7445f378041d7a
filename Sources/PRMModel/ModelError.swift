import Foundation

/// Everything that can go wrong loading or using a model, with the file and key involved.
public struct ModelError: Error, CustomStringConvertible, Sendable {
    public let description: String

    public init(_ description: String) { self.description = description }

    public init(file: URL, _ problem: String) {
        self.description = "\(file.path): \(problem)"
    }
}
