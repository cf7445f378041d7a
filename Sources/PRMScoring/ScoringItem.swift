import PRMModel

/// One (user, prompt, reply) to score, as users send it: the fields of the data files.
public struct ScoringItem: Sendable, Hashable {
    /// The user's id; nil, or an id the model has never seen, scores as the generic user 0.
    public var userID: String?
    /// Optional explicit user text, embedded before the implicit user part.
    public var userInfo: String?
    public var prompt: String
    public var response: String

    public init(userID: String?, userInfo: String? = nil, prompt: String, response: String) {
        self.userID = userID
        self.userInfo = userInfo
        self.prompt = prompt
        self.response = response
    }
}

/// An item after tokenization, user resolution and the window rule: what the compute side needs.
public struct PreparedItem: Sendable {
    /// Index into the user table (0 = generic).
    public let user: Int
    /// Whether the id was one of the model's users.
    public let knownUser: Bool
    public let sequence: ModelSequence
    /// Whether the window cut the user text, the prompt or the reply.
    public let truncated: Bool

    /// Tokens the backbone reads for this item (an upper bound: equal sequences share a pass).
    public var tokens: Int { sequence.length }

    /// The same item for a known user `index`, for a model whose sequences do not carry the user
    /// (the linear head: the user meets h after pooling), as a server resolves users it fitted
    /// after the item was prepared.
    public func known(as index: Int) -> PreparedItem {
        PreparedItem(user: index, knownUser: true, sequence: sequence, truncated: truncated)
    }
}

/// A score with the facts a caller should know about it.
public struct ScoredItem: Sendable, Equatable {
    public let score: Float
    public let knownUser: Bool
    public let truncated: Bool

    public init(score: Float, knownUser: Bool, truncated: Bool) {
        self.score = score
        self.knownUser = knownUser
        self.truncated = truncated
    }
}

/// What the scorer has done since it was made (the service reports these as metrics).
public struct ScorerStatistics: Sendable, Equatable {
    /// Items scored.
    public var items = 0
    /// Distinct sequences among them (equal sequences are computed once).
    public var uniqueSequences = 0
    /// Sequences whose h came from the cache, and those that had to be computed.
    public var cacheHits = 0
    public var cacheMisses = 0
    /// Backbone tokens actually run.
    public var tokensComputed = 0

    public var cacheHitRate: Double { Double(ratio: cacheHits, of: cacheHits + cacheMisses) }
}
