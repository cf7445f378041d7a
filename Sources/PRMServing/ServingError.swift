import Foundation

/// A failure of the service that is not a request's fault (start-up, sockets).
public struct ServingError: Error, CustomStringConvertible, Sendable {
    public let description: String
    public init(_ description: String) { self.description = description }
}
