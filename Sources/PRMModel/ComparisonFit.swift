import Foundation

/// How well users' own vectors order their training comparisons: −log σ summed, and the count
/// ordered right (`UserAdapter.refitSeenUsers` reports it before and after; the service's `adapt` op
/// reports the new user's).
public struct ComparisonFit: Codable, Sendable, Equatable {
    public var n = 0
    public var correct = 0
    public var loss = 0.0

    public var accuracy: Double { Double(ratio: correct, of: n) }
    public var meanLoss: Double { n == 0 ? 0 : loss / Double(n) }

    enum CodingKeys: String, CodingKey { case n, correct, loss, accuracy, meanLoss = "mean_loss" }

    public init() {}

    /// Adds comparisons whose reward differences (chosen − rejected) are `z`.
    public mutating func add(_ z: [Double]) {
        n += z.count
        correct += z.filter { $0 > 0 }.count
        loss += z.reduce(0) { $0 + UserPrior.softplus(-$1) }
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        n = try c.decode(Int.self, forKey: .n)
        correct = try c.decode(Int.self, forKey: .correct)
        loss = try c.decode(Double.self, forKey: .loss)
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(n, forKey: .n)
        try c.encode(correct, forKey: .correct)
        try c.encode(loss, forKey: .loss)
        try c.encode(accuracy, forKey: .accuracy)
        try c.encode(meanLoss, forKey: .meanLoss)
    }
}
