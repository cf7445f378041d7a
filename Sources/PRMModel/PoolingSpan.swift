/// Which rows a bidirectional backbone's mean pooling reads (a causal backbone reads its last row).
public enum PoolingSpan: String, Codable, Sendable, CaseIterable {
    /// Every row of the window: user tokens, [CLS], prompt, reply, [SEP] (the classic mean pool).
    case window
    /// The reply's rows only: each is contextualised by the prompt through attention, but a short
    /// reply is not averaged away among the prompt's rows, so what it contains (a question back, a
    /// refusal) stays visible in h.
    case reply
}
