import Foundation
import PRMCore
import PRMModel
import PRMTokenizers

/// Every knob of a supervised fine-tuning run (the policy's architecture included, as SFT trains
/// it from scratch); saved in the checkpoint so the run can be resumed and reproduced. The
/// defaults make a ~1.4M-parameter policy that trains on lengthpref in minutes on 2 cores
/// (bench/results/ppo.md).
public struct SFTSettings: Codable, Sendable, Equatable {
    public var layers = 4
    public var heads = 4
    public var embedding = 128
    /// n_positions: user rows + prompt + reply.
    public var positions = 256
    /// T_u: user vectors before the prompt (the generic user's during SFT).
    public var userTokens = 4
    public var epochs = 4
    public var learningRate: Float = 2e-3
    public var weightDecay: Float = 0.1
    public var warmupFraction: Float = 0.05
    /// Dialogues per optimizer step.
    public var batchSize = 16
    public var gradientClip: Float = 1
    public var dropout: Float = 0.1
    public var seed: UInt64 = 42
    public var logEvery = 10

    enum CodingKeys: String, CodingKey {
        case layers, heads, embedding, positions, userTokens = "user_tokens", epochs, learningRate = "learning_rate"
        case weightDecay = "weight_decay", warmupFraction = "warmup_fraction", batchSize = "batch_size"
        case gradientClip = "gradient_clip", dropout, seed, logEvery = "log_every"
    }

    public init() {}

    /// Checks ranges; the message names the option.
    public func validate() throws {
        func fail(_ message: String) throws { throw PolicyError(message) }
        if layers < 1 || heads < 1 || embedding < 1 { try fail("--layers, --heads and --embedding must be positive") }
        if embedding % heads != 0 { try fail("--embedding \(embedding) is not divisible by --heads \(heads)") }
        if userTokens < 0 { try fail("--user-tokens must be non-negative, got \(userTokens)") }
        if positions < 2 * userTokens + 16 { try fail("--positions \(positions) leaves too little room after \(userTokens) user tokens") }
        if epochs < 1 { try fail("--epochs must be at least 1, got \(epochs)") }
        if batchSize < 1 { try fail("--batch-size must be at least 1, got \(batchSize)") }
        if !(learningRate >= 0) { try fail("--lr must be non-negative") }
        if !(0..<1).contains(dropout) { try fail("--dropout must be in [0, 1), got \(dropout)") }
    }

    /// The GPT-2 config of a new policy over a vocabulary of `vocabularySize` ids.
    public func architecture(vocabularySize: Int) -> GPT2Config {
        GPT2Config(vocabSize: vocabularySize, nPositions: positions, nEmbd: embedding, nLayer: layers, nHead: heads)
    }

    /// A new, randomly initialised policy with this architecture over the vocabulary in `tokenizerFile`.
    public func makePolicy(tokenizerFile: URL) throws -> Policy {
        try validate()
        let vocabulary = try TokenizerLoader.load(contentsOf: tokenizerFile).vocabularySize
        let policy = try Policy(architecture: architecture(vocabularySize: vocabulary), tokenizerFile: tokenizerFile,
                                config: PolicyConfig(userModel: userModel))
        policy.initializeRandomly(seed: seed)
        return policy
    }

    /// The policy's user model during SFT: individual users with the shared generic part, none known yet.
    public var userModel: UserModelConfig { UserModelConfig(kind: .individual, tokens: userTokens, users: 0) }
}
