/// One logging step of SFT, written to the JSON log.
public struct SFTLogEntry: Codable, Sendable {
    public var step: Int
    public var epoch: Double
    /// Mean next-token cross-entropy (nats) over the supervised tokens since the last entry.
    public var loss: Float
    public var learningRate: Float
    public var gradientNorm: Float
    public var tokensPerSecond: Double
    public var elapsedSeconds: Double
    /// At epoch ends: validation cross-entropy and perplexity over the dev dialogues' reply tokens.
    public var devLoss: Double?
    public var devPerplexity: Double?

    enum CodingKeys: String, CodingKey {
        case step, epoch, loss, learningRate = "learning_rate", gradientNorm = "gradient_norm"
        case tokensPerSecond = "tokens_per_second", elapsedSeconds = "elapsed_seconds"
        case devLoss = "dev_loss", devPerplexity = "dev_perplexity"
    }
}
