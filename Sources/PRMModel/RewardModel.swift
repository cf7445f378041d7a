import Foundation
import PRMCore
import PRMTokenizers

/// How the user embedding meets the text (P-RLHF App. F.2).
public enum Aggregator: String, Codable, Sendable, CaseIterable {
    /// User tokens [explicit ; implicit] before the text; a linear head reads the final state.
    case softPrompt = "soft-prompt"
    /// T_u = 1 and reward = ⟨e_user, h⟩: h is computed once per text and shared by all users.
    case linearHead = "linear-head"
}

/// Everything that defines a reward model beyond its backbone; stored under "prm" in config.json.
public struct RewardModelConfig: Codable, Sendable, Equatable {
    public var aggregator: Aggregator
    public var userModel: UserModelConfig
    /// Longest input in tokens, user tokens and special tokens included.
    public var maxLength: Int

    enum CodingKeys: String, CodingKey {
        case aggregator, userModel = "user_model", maxLength = "max_length"
    }

    public init(aggregator: Aggregator, userModel: UserModelConfig, maxLength: Int) {
        self.aggregator = aggregator
        self.userModel = userModel
        self.maxLength = maxLength
    }
}

/// One thing to score: a user (index into the user table, 0 = generic), the user's explicit text
/// tokens, and a prompt and reply already tokenized without special tokens.
public struct RewardInput: Sendable, Hashable {
    public var user: Int
    public var explicit: [Int32]
    public var prompt: [Int32]
    public var reply: [Int32]

    public init(user: Int, explicit: [Int32] = [], prompt: [Int32], reply: [Int32]) {
        self.user = user
        self.explicit = explicit
        self.prompt = prompt
        self.reply = reply
    }
}

/// r(x, y, u): a backbone, a user model and an aggregator over one contiguous parameter buffer.
public final class RewardModel {
    public let backbone: any Backbone
    public let tokenizer: any Tokenizer
    /// The tokenizer.json bytes, written unchanged into checkpoints.
    public let tokenizerJSON: Data
    public let userModel: UserModel
    public let config: RewardModelConfig
    public let parameters: Parameters
    /// Soft prompt only: scalar head on the pooled state, (1, C) and (1).
    let headWeight: Parameters.Handle?
    let headBias: Parameters.Handle?

    /// The sequences and reward queries of the last forward pass, for backward.
    private var plan = ScoringPlan()
    private var batch = PackedBatch(lengths: [])
    /// Tokens the backbone ran in the last forward pass (after truncation and sharing), for throughput.
    public var lastForwardTokens: Int { batch.tokens }
    private let embeddings = GrowableBuffer(), pooled = GrowableBuffer(), dPooled = GrowableBuffer()
    private let userVectors = GrowableBuffer()

    /// Declares backbone, user model and head in one layout; weights are loaded or initialised by the caller.
    public init(backboneConfig: URL, tokenizerFile: URL, config: RewardModelConfig) throws {
        let tokenizer = try TokenizerLoader.load(contentsOf: tokenizerFile)
        tokenizerJSON = try HFConfig.readFile(tokenizerFile)
        var layout = Parameters.Layout()
        let backbone = try Backbones.make(config: backboneConfig, layout: &layout)
        guard config.maxLength > config.userModel.tokens + tokenizer.specialTokensPerSequence + 1 else {
            throw ModelError("max length \(config.maxLength) leaves no room for text after \(config.userModel.tokens) user tokens")
        }
        guard config.maxLength <= backbone.maxPositions else {
            throw ModelError("max length \(config.maxLength) exceeds the backbone's \(backbone.maxPositions) positions")
        }
        if config.aggregator == .linearHead && config.userModel.tokens != 1 {
            throw ModelError("the linear-head aggregator needs exactly 1 user token, got \(config.userModel.tokens)")
        }
        let C = backbone.hiddenSize
        userModel = UserModel(config: config.userModel, width: C, layout: &layout)
        if config.aggregator == .softPrompt {
            headWeight = layout.add("head.weight", [1, C], group: .head, decays: false)
            headBias = layout.add("head.bias", [1], group: .head, decays: false)
        } else {
            headWeight = nil
            headBias = nil
        }
        parameters = Parameters(layout)
        backbone.bind(parameters)
        userModel.bind(parameters)
        self.backbone = backbone
        self.tokenizer = tokenizer
        self.config = config
    }

    /// A new reward model on a pretrained Hugging Face backbone folder: backbone weights loaded,
    /// user model and head freshly initialised.
    public static func pretrained(backbone folder: URL, config: RewardModelConfig, seed: UInt64) throws -> RewardModel {
        let model = try RewardModel(backboneConfig: folder.appendingPathComponent("config.json"),
                                    tokenizerFile: folder.appendingPathComponent("tokenizer.json"), config: config)
        try Backbones.loadWeights(into: model.parameters, group: .backbone, prefixes: model.backbone.weightPrefixes,
                                  from: folder.appendingPathComponent("model.safetensors"))
        model.initializeUserModelAndHead(seed: seed)
        return model
    }

    /// Fresh user vectors and head for a pretrained backbone (weights already loaded).
    public func initializeUserModelAndHead(seed: UInt64) {
        var rng = RandomSource(seed: seed)
        userModel.initialize(fromTokenTable: parameters.value(backbone.wordEmbeddings),
                             vocabulary: backbone.vocabularySize, rng: &rng)
        if let headWeight {
            let w = parameters.value(headWeight), C = backbone.hiddenSize
            for c in 0..<C { w[c] = rng.nextNormal() / Float(C).squareRoot() }
        }
    }

    // MARK: - Token windows

    /// The text part of a sequence: special tokens around prompt + reply, keeping the whole reply
    /// and trimming the prompt from the left (the most recent turns matter most) to fit `room`.
    /// A reply longer than the window on its own keeps its beginning.
    public func textTokens(prompt: [Int32], reply: [Int32], room: Int) -> [Int32] {
        let budget = max(room - tokenizer.specialTokensPerSequence, 1)
        let keptReply = Array(reply.prefix(budget))
        let keptPrompt = Array(prompt.suffix(max(budget - keptReply.count, 0)))
        return tokenizer.addingSpecialTokens((keptPrompt + keptReply).map(Int.init)).map(Int32.init)
    }

    /// Tokenizes raw strings (no special tokens).
    public func tokenize(_ text: String) -> [Int32] {
        tokenizer.encode(text, addSpecialTokens: false).map(Int32.init)
    }

    // MARK: - Forward and backward

    /// Rewards for each input. With `training`, activations are kept for `backward`.
    public func forward(_ inputs: [RewardInput], training: Bool = false) -> [Float] {
        plan = ScoringPlan(inputs, model: self)
        let C = backbone.hiddenSize
        batch = PackedBatch(lengths: plan.sequences.map(\.length))
        let emb = embeddings.ensure(batch.tokens * C)
        buildEmbeddings(emb)
        let hidden = backbone.forward(embeddings: emb, batch: batch, training: training)
        let h = pooled.ensure(batch.count * C)
        switch backbone.attending {
        case .bidirectional: MeanPool.forward(out: h, inp: hidden, batch: batch, C: C)
        case .causal: RowGather.forward(out: h, inp: hidden, rows: (0..<batch.count).map(batch.lastRow), C: C)
        }
        return plan.queries.map { reward(pooled: h + $0.sequence * C, user: $0.user) }
    }

    /// Accumulates gradients of L given dL/dreward for each input of the last forward.
    public func backward(dRewards: [Float]) {
        precondition(dRewards.count == plan.queries.count, "one gradient per reward")
        let C = backbone.hiddenSize
        let h = pooled.data
        let dh = dPooled.zeroed(batch.count * C)
        let e = userVectors.ensure(C)
        for (query, dr) in zip(plan.queries, dRewards) where dr != 0 {
            let hs = h + query.sequence * C, dhs = dh + query.sequence * C
            switch config.aggregator {
            case .softPrompt:
                guard let headWeight, let headBias else { continue }
                let w = parameters.value(headWeight), dw = parameters.grad(headWeight)
                for c in 0..<C {
                    dhs[c] += dr * w[c]
                    dw[c] += dr * hs[c]
                }
                parameters.grad(headBias)[0] += dr
            case .linearHead:
                userModel.forward(out: e, user: query.user)
                for c in 0..<C {
                    dhs[c] += dr * e[c]
                    e[c] = dr * hs[c]
                }
                userModel.backward(dout: e, user: query.user)
            }
        }
        let softPromptUsers = config.aggregator == .softPrompt && userModel.size > 0
        guard backbone.computesParameterGradients || softPromptUsers else { return }
        let dHidden = embeddings.ensure(batch.tokens * C)  // the input embeddings are no longer needed
        dHidden.update(repeating: 0, count: batch.tokens * C)
        switch backbone.attending {
        case .bidirectional: MeanPool.backward(dinp: dHidden, dout: dh, batch: batch, C: C)
        case .causal: RowGather.backward(dinp: dHidden, dout: dh, rows: (0..<batch.count).map(batch.lastRow), C: C)
        }
        let dEmb = backbone.backward(dhidden: dHidden)
        scatterEmbeddingGradients(dEmb)
    }

    private func reward(pooled h: UnsafePointer<Float>, user: Int) -> Float {
        let C = backbone.hiddenSize
        var r: Float = 0
        switch config.aggregator {
        case .softPrompt:
            guard let headWeight, let headBias else { return 0 }
            let w = parameters.value(headWeight)
            for c in 0..<C { r += w[c] * h[c] }
            r += parameters.value(headBias)[0]
        case .linearHead:
            let e = userVectors.ensure(C)
            userModel.forward(out: e, user: user)
            for c in 0..<C { r += e[c] * h[c] }
        }
        return r
    }

    /// Input rows per sequence: [explicit user text ; implicit user vectors ; text].
    private func buildEmbeddings(_ out: UnsafeMutablePointer<Float>) {
        let C = backbone.hiddenSize
        let (rows, ids) = (plan.tokenRows, plan.tokenIDs)
        let gathered = Tensor(shape: [ids.count, C])
        backbone.embedTokens(out: gathered.data, ids: ids, parameters: parameters)
        for (k, row) in rows.enumerated() { (out + (batch.starts[row.sequence] + row.position) * C).update(from: gathered.data + k * C, count: C) }
        for (s, sequence) in plan.sequences.enumerated() {
            guard let user = sequence.implicitUser else { continue }
            userModel.forward(out: out + (batch.starts[s] + sequence.explicit.count) * C, user: user)
        }
    }

    /// Routes d(input embeddings) to the word table (explicit and text tokens) and the user model.
    private func scatterEmbeddingGradients(_ dEmb: UnsafePointer<Float>) {
        let C = backbone.hiddenSize
        if backbone.computesParameterGradients {
            let (rows, ids) = (plan.tokenRows, plan.tokenIDs)
            let gathered = Tensor(shape: [ids.count, C])
            for (k, row) in rows.enumerated() { (gathered.data + k * C).update(from: dEmb + (batch.starts[row.sequence] + row.position) * C, count: C) }
            ids.withUnsafeBufferPointer {
                Embedding.backward(dtable: parameters.grad(backbone.wordEmbeddings), dout: gathered.data, ids: $0.baseAddress!, N: ids.count, C: C)
            }
        }
        for (s, sequence) in plan.sequences.enumerated() {
            guard let user = sequence.implicitUser else { continue }
            userModel.backward(dout: dEmb + (batch.starts[s] + sequence.explicit.count) * C, user: user)
        }
    }
}

/// The distinct sequences a set of reward inputs needs, and which sequence/user answers each input.
/// The linear head shares one sequence between every user scoring the same text (and the generic
/// term of the loss), so h is computed once per text.
struct ScoringPlan {
    struct Sequence: Hashable {
        var implicitUser: Int?
        var explicit: [Int32]
        var text: [Int32]
        var implicitCount: Int
        var length: Int { explicit.count + implicitCount + text.count }
    }

    struct Query {
        var sequence: Int
        var user: Int
    }

    private(set) var sequences: [Sequence] = []
    private(set) var queries: [Query] = []
    /// (sequence, position) of every explicit-text and text token, and its id, in a fixed order:
    /// the rows gathered from (forward) and scattered to (backward) the word-embedding table.
    private(set) var tokenRows: [(sequence: Int, position: Int)] = []
    private(set) var tokenIDs: [Int32] = []

    init() {}

    init(_ inputs: [RewardInput], model: RewardModel) {
        var index: [Sequence: Int] = [:]
        let softPrompt = model.config.aggregator == .softPrompt
        let userTokens = softPrompt ? model.config.userModel.tokens : 0
        for input in inputs {
            let explicit = Array(input.explicit.prefix(max(model.config.maxLength / 2, 0)))
            let room = model.config.maxLength - explicit.count - userTokens
            let sequence = Sequence(implicitUser: softPrompt ? input.user : nil, explicit: explicit,
                                    text: model.textTokens(prompt: input.prompt, reply: input.reply, room: room),
                                    implicitCount: userTokens)
            let slot: Int
            if let existing = index[sequence] {
                slot = existing
            } else {
                slot = sequences.count
                index[sequence] = slot
                sequences.append(sequence)
            }
            queries.append(Query(sequence: slot, user: input.user))
        }
        for (s, sequence) in sequences.enumerated() {
            for (i, id) in sequence.explicit.enumerated() { tokenRows.append((s, i)); tokenIDs.append(id) }
            let textStart = sequence.explicit.count + sequence.implicitCount
            for (i, id) in sequence.text.enumerated() { tokenRows.append((s, textStart + i)); tokenIDs.append(id) }
        }
    }
}
