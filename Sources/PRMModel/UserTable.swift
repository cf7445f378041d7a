import Foundation
import PRMCore

/// External user ids → user-table indices (1...U); 0 is the generic user that unknown ids get.
public struct UserTable: Sendable, Equatable {
    public private(set) var indices: [String: Int]

    public init(indices: [String: Int]) { self.indices = indices }

    /// Indices 1...U in sorted id order, so the same data always gives the same table.
    public init(ids: [String]) {
        indices = Dictionary(uniqueKeysWithValues: Set(ids).sorted().enumerated().map { ($1, $0 + 1) })
    }

    public var count: Int { indices.count }

    /// The user's index, or 0 (generic) for an id the model has never seen.
    public func index(of id: String) -> Int { indices[id] ?? 0 }

    public func contains(_ id: String) -> Bool { indices[id] != nil }

    /// Records a user added after training (`UserModel.appendUsers` gave the index).
    public mutating func add(_ id: String, index: Int) {
        precondition(indices[id] == nil, "user \(id) is already in the table")
        indices[id] = index
    }
}
