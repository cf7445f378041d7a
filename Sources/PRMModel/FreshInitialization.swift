/// How a reward model's parts that training creates (user vectors, head, reply counts) start,
/// beyond the seed: `RewardModel.initializeUserModelAndHead`.
public struct FreshInitialization: Sendable, Equatable {
    /// How many of the reply counts start silent (`ReplyCounts.initialize`).
    public var silentCounts = 0
    /// Individual users' offsets from the generic user start at this multiple of a random token
    /// embedding instead of zero (`UserModel.initialize`).
    public var userSpread: Float = 0

    public init(silentCounts: Int = 0, userSpread: Float = 0) {
        self.silentCounts = silentCounts
        self.userSpread = userSpread
    }
}
