/// An SFT policy's training record, config.json's "prm.training": its settings and step, and the
/// validation perplexities for readers (the model's beside the unigram baseline's).
public struct SFTRecord: Codable {
    public var stage = "sft"
    public var settings: SFTSettings
    public var step: Int
    public var devPerplexity: Double?
    public var unigramDevPerplexity: Double?

    enum CodingKeys: String, CodingKey {
        case stage, settings, step, devPerplexity = "dev_perplexity", unigramDevPerplexity = "unigram_dev_perplexity"
    }

    public init(settings: SFTSettings, step: Int, devPerplexity: Double? = nil, unigramDevPerplexity: Double? = nil) {
        self.settings = settings
        self.step = step
        self.devPerplexity = devPerplexity
        self.unigramDevPerplexity = unigramDevPerplexity
    }
}
