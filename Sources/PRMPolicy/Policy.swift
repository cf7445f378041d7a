import Foundation
import PRMCore
import PRMModel
import PRMTokenizers

/// Everything that defines a policy beyond its GPT-2 backbone; stored under "prm" in config.json.
public struct PolicyConfig: Codable, Sendable, Equatable {
    /// The implicit user model: T_u vectors per user placed before the prompt (a soft prompt, as
    /// the reward model's aggregator does; P-RLHF Sec. 4). User 0 is the generic user.
    public var userModel: UserModelConfig

    enum CodingKeys: String, CodingKey { case userModel = "user_model" }

    public init(userModel: UserModelConfig) { self.userModel = userModel }
}

/// One sequence the policy reads in training: [T_u user vectors ; tokens], and the tokens it is
/// scored on. Token i is predicted from the row of token i − 1, so every scored index is ≥ 1.
public struct PolicySequence: Sendable {
    public var user: Int
    public var tokens: [Int32]
    /// Ascending indices into `tokens`: SFT's supervised tokens, PPO's reply tokens.
    public var scored: [Int]

    public init(user: Int, tokens: [Int32], scored: [Int]) {
        self.user = user
        self.tokens = tokens
        self.scored = scored
    }
}

/// A user-conditioned language model: a GPT-2 decoder with its tied LM head, a user model whose
/// T_u vectors stand before the prompt, and a value head (PPO's critic) on the same hidden states,
/// all in one contiguous parameter buffer.
public final class Policy {
    public let backbone: GPT2Model
    public let userModel: UserModel
    public let format: DialogueFormat
    /// The tokenizer.json bytes, written unchanged into checkpoints, and where they were read.
    public let tokenizerJSON: Data
    let tokenizerFile: URL
    public let config: PolicyConfig
    public let parameters: Parameters
    /// value_head.weight (1, C) and value_head.bias (1).
    let valueWeight: Parameters.Handle
    let valueBias: Parameters.Handle

    /// The last forward's batch and the packed rows its scored tokens are predicted from.
    private var batch = PackedBatch(lengths: [])
    private var sequences: [PolicySequence] = []
    private var scoredRows: [Int] = []
    private let embeddings = GrowableBuffer(), gathered = GrowableBuffer(), logitsBuffer = GrowableBuffer()
    private let valuesBuffer = GrowableBuffer(), dGathered = GrowableBuffer(), dHidden = GrowableBuffer()
    private let stepRows = GrowableBuffer(), stepLogits = GrowableBuffer()

    /// A policy of the given architecture, weights to be initialised or loaded by the caller.
    public convenience init(architecture: GPT2Config, tokenizerFile: URL, config: PolicyConfig) throws {
        var layout = Parameters.Layout()
        let backbone = GPT2Model(config: architecture, layout: &layout)
        let (tokenizer, json) = try Self.readTokenizer(tokenizerFile)
        try self.init(backbone: backbone, layout: layout, tokenizer: tokenizer, tokenizerJSON: json, tokenizerFile: tokenizerFile, config: config)
    }

    /// A policy whose backbone is described by a Hugging Face config.json (validated as any backbone).
    public convenience init(backboneConfig url: URL, tokenizerFile: URL, config: PolicyConfig) throws {
        var layout = Parameters.Layout()
        let made = try Backbones.make(config: url, layout: &layout)
        guard let backbone = made as? GPT2Model else {
            throw PolicyError(file: url, "a policy is a GPT-2 decoder: model_type must be 'gpt2', got '\(made.modelType)'")
        }
        let (tokenizer, json) = try Self.readTokenizer(tokenizerFile)
        try self.init(backbone: backbone, layout: layout, tokenizer: tokenizer, tokenizerJSON: json, tokenizerFile: tokenizerFile, config: config)
    }

    private static func readTokenizer(_ url: URL) throws -> (any Tokenizer, Data) {
        let tokenizer = try TokenizerLoader.load(contentsOf: url)
        return (tokenizer, try Data(contentsOf: url))
    }

    private init(backbone: GPT2Model, layout: Parameters.Layout, tokenizer: any Tokenizer, tokenizerJSON: Data, tokenizerFile: URL,
                 config: PolicyConfig) throws {
        var layout = layout
        guard tokenizer.vocabularySize <= backbone.vocabularySize else {
            throw PolicyError(file: tokenizerFile, "the tokenizer has \(tokenizer.vocabularySize) ids but the model only \(backbone.vocabularySize)")
        }
        guard config.userModel.tokens < backbone.maxPositions / 2 else {
            throw PolicyError("\(config.userModel.tokens) user tokens leave too little of the model's \(backbone.maxPositions) positions")
        }
        format = try DialogueFormat(tokenizer: tokenizer, file: tokenizerFile)
        self.tokenizerJSON = tokenizerJSON
        self.tokenizerFile = tokenizerFile
        let C = backbone.hiddenSize
        userModel = UserModel(config: config.userModel, width: C, layout: &layout)
        valueWeight = layout.add("value_head.weight", [1, C], group: .head, decays: false)
        valueBias = layout.add("value_head.bias", [1], group: .head, decays: false)
        parameters = Parameters(layout)
        backbone.bind(parameters)
        userModel.bind(parameters)
        self.backbone = backbone
        self.config = config
    }

    /// The same policy with a user table for `users.count` users: every weight copied; a user
    /// `known` already has keeps its own vectors, any other starts at zero offset, i.e. as the
    /// generic user (individual user model with the shared generic part, e_i = e_0 + o_i).
    public func withUsers(_ users: UserTable, known: UserTable) throws -> Policy {
        let kind = config.userModel
        guard kind.kind == .individual && kind.sharedGeneric else {
            throw PolicyError("adding users needs the individual user model with the shared generic part, got \(kind.kind.rawValue)")
        }
        var userModel = kind
        userModel.users = users.count
        var layout = Parameters.Layout()
        let grown = try Policy(backbone: GPT2Model(config: backbone.config, layout: &layout), layout: layout, tokenizer: format.tokenizer,
                               tokenizerJSON: tokenizerJSON, tokenizerFile: tokenizerFile, config: PolicyConfig(userModel: userModel))
        let (old, new) = (parameters, grown.parameters)
        for (index, entry) in new.entries.enumerated() {
            let destination = new.value(Parameters.Handle(index: index))
            guard let source = old.handle(named: entry.name) else { continue }
            if entry.group == .user {
                // Rows of (T_u, C): row 0 generic, then one per user.
                let row = userModel.tokens * backbone.hiddenSize
                destination.update(repeating: 0, count: entry.count)
                destination.update(from: old.value(source), count: row)
                for (id, slot) in users.indices where known.contains(id) {
                    (destination + slot * row).update(from: old.value(source) + known.index(of: id) * row, count: row)
                }
            } else {
                destination.update(from: old.value(source), count: entry.count)
            }
        }
        return grown
    }

    public var userRows: Int { config.userModel.tokens }
    public var maxPositions: Int { backbone.maxPositions }
    public var vocabularySize: Int { backbone.vocabularySize }

    /// Training from scratch: GPT-2's initialisation for the backbone (normal(0, 0.02) matrices,
    /// LayerNorm gains 1, biases 0), user vectors drawn from rows of the token table (individual
    /// offsets at zero), a zero value head.
    public func initializeRandomly(seed: UInt64) {
        Backbones.initializeRandomly(parameters, group: .backbone, seed: seed)
        var rng = RandomSource(seed: seed &+ 1)
        userModel.initialize(fromTokenTable: parameters.value(backbone.wordEmbeddings), vocabulary: vocabularySize, rng: &rng)
        parameters.value(valueWeight).update(repeating: 0, count: backbone.hiddenSize)
        parameters.value(valueBias)[0] = 0
    }

    /// The end of a prompt that fits before `reserve` reply positions (the most recent turns
    /// matter most; the reward model's window trims prompts the same way).
    public func window(_ tokens: [Int32], reserve: Int) -> ArraySlice<Int32> {
        tokens.suffix(max(maxPositions - userRows - reserve, 1))
    }

    /// A prompt's ids as the policy reads it: the dialogue format's, windowed to leave
    /// `maxNewTokens` positions for the reply.
    public func promptIDs(_ prompt: String, maxNewTokens: Int) -> [Int32] {
        Array(window(format.encodePrompt(prompt), reserve: maxNewTokens))
    }

    // MARK: - Training forward and backward

    /// The outputs of a training forward pass for the R scored tokens, in sequence order.
    public struct Outputs {
        /// (R, V): logits predicting each scored token.
        public let logits: UnsafePointer<Float>
        /// (R): the value of the state before each scored token.
        public let values: UnsafePointer<Float>
        public let rows: Int
    }

    /// Runs the sequences as one packed batch; with `training`, activations are kept for `backward`.
    public func forward(_ sequences: [PolicySequence], training: Bool) -> Outputs {
        let (C, V, U) = (backbone.hiddenSize, vocabularySize, userRows)
        self.sequences = sequences
        batch = PackedBatch(lengths: sequences.map { U + $0.tokens.count })
        let emb = embeddings.ensure(batch.tokens * C)
        let table = UnsafePointer(parameters.value(backbone.wordEmbeddings))
        for (b, sequence) in sequences.enumerated() {
            let base = emb + batch.starts[b] * C
            if U > 0 { userModel.forward(out: base, user: sequence.user) }
            sequence.tokens.withUnsafeBufferPointer { ids in
                guard let first = ids.baseAddress else { return }
                Embedding.forward(out: base + U * C, ids: first, table: table, N: ids.count, C: C)
            }
        }
        let hidden = backbone.forward(embeddings: emb, batch: batch, training: training)
        scoredRows = sequences.enumerated().flatMap { b, sequence in
            sequence.scored.map { index in
                precondition(index >= 1 && index < sequence.tokens.count, "scored index \(index) outside 1..<\(sequence.tokens.count)")
                return batch.starts[b] + U + index - 1
            }
        }
        let R = scoredRows.count
        let h = gathered.ensure(max(R, 1) * C)
        RowGather.forward(out: h, inp: hidden, rows: scoredRows, C: C)
        let logits = logitsBuffer.ensure(max(R, 1) * V), values = valuesBuffer.ensure(max(R, 1))
        if R > 0 {
            backbone.logits(out: logits, hidden: h, N: R)
            Linear.forward(out: values, inp: h, weight: parameters.value(valueWeight), bias: parameters.value(valueBias), N: R, C: C, OC: 1)
        }
        return Outputs(logits: logits, values: values, rows: R)
    }

    /// Accumulates parameter gradients from dlogits (R, V) and dvalues (R) of the last forward
    /// (either may be nil: SFT trains no value, a value-only step no logits).
    public func backward(dlogits: UnsafePointer<Float>?, dvalues: UnsafePointer<Float>?) {
        let (C, U, R) = (backbone.hiddenSize, userRows, scoredRows.count)
        let h = UnsafePointer(gathered.data)
        let dh = dGathered.zeroed(max(R, 1) * C)
        if let dlogits, R > 0 { backbone.logitsBackward(dhidden: dh, dlogits: dlogits, hidden: h, N: R) }
        if let dvalues, R > 0 {
            Linear.backward(dinp: dh, dweight: parameters.grad(valueWeight), dbias: parameters.grad(valueBias), dout: dvalues,
                            inp: h, weight: parameters.value(valueWeight), N: R, C: C, OC: 1)
        }
        let dx = dHidden.zeroed(batch.tokens * C)
        RowGather.backward(dinp: dx, dout: dh, rows: scoredRows, C: C)
        let dEmb = backbone.backward(dhidden: dx)
        // Input rows: the token rows' gradient goes to the (tied) word table, the user rows' to the user model.
        let dTable = parameters.grad(backbone.wordEmbeddings)
        for (b, sequence) in sequences.enumerated() {
            let base = dEmb + batch.starts[b] * C
            if U > 0 { userModel.backward(dout: base, user: sequence.user) }
            sequence.tokens.withUnsafeBufferPointer { ids in
                guard let first = ids.baseAddress else { return }
                Embedding.backward(dtable: dTable, dout: base + U * C, ids: first, N: ids.count, C: C)
            }
        }
    }

    /// Tokens the last forward pass ran (user rows included), for throughput.
    public var lastForwardTokens: Int { batch.tokens }

    /// Input rows (T_u + tokens, C): the user's vectors, then the tokens' word embeddings.
    private func inputRows(user: Int, tokens: [Int32], into out: UnsafeMutablePointer<Float>) {
        let (C, U) = (backbone.hiddenSize, userRows)
        if U > 0 { userModel.forward(out: out, user: user) }
        tokens.withUnsafeBufferPointer { ids in
            guard let first = ids.baseAddress else { return }
            Embedding.forward(out: out + U * C, ids: first, table: parameters.value(backbone.wordEmbeddings), N: ids.count, C: C)
        }
    }

    // MARK: - Incremental decoding

    /// A prompt computed once: the KV cache of [user rows ; prompt] and the logits (V) predicting
    /// the reply's first token. Every reply sampled after it reads this cache; none copies it.
    public final class Prompt {
        let cache: KVCache
        public let firstLogits: [Float]

        init(cache: KVCache, firstLogits: [Float]) {
            self.cache = cache
            self.firstLogits = firstLogits
        }
    }

    /// A reply being decoded after a prompt: the prompt's cache (shared), then its own rows.
    public final class Continuation {
        let prompt: Prompt
        let cache: KVCache

        init(prompt: Prompt, cache: KVCache) {
            self.prompt = prompt
            self.cache = cache
        }
    }

    /// Runs [user rows ; prompt] once.
    public func prefill(user: Int, prompt: [Int32]) -> Prompt {
        let (C, V) = (backbone.hiddenSize, vocabularySize)
        let rows = userRows + prompt.count
        precondition(rows <= maxPositions, "prompt longer than the model's positions")
        let cache = backbone.makeCache()
        cache.reserve(rows: rows)
        let input = stepRows.ensure(rows * C)
        inputRows(user: user, tokens: prompt, into: input)
        let hidden = backbone.extend(cache, embeddings: input, count: rows)
        let logits = stepLogits.ensure(V)
        backbone.logits(out: logits, hidden: hidden + (rows - 1) * C, N: 1)
        return Prompt(cache: cache, firstLogits: Array(UnsafeBufferPointer(start: logits, count: V)))
    }

    /// A new reply after `prompt` with room for `maxTokens` tokens reserved, so its cache grows in place.
    public func continuation(of prompt: Prompt, maxTokens: Int) -> Continuation {
        let cache = backbone.makeCache()
        cache.reserve(rows: maxTokens)
        return Continuation(prompt: prompt, cache: cache)
    }

    /// Appends `tokens[b]` to continuation b, all in one batched step, and returns the logits
    /// (B, V) predicting each one's next token (valid until the next call).
    public func decode(_ continuations: [Continuation], tokens: [Int32]) -> UnsafePointer<Float> {
        let (C, V, B) = (backbone.hiddenSize, vocabularySize, continuations.count)
        let input = stepRows.ensure(B * C)
        tokens.withUnsafeBufferPointer { ids in
            guard let first = ids.baseAddress else { return }
            Embedding.forward(out: input, ids: first, table: parameters.value(backbone.wordEmbeddings), N: B, C: C)
        }
        let hidden = backbone.decodeStep(prefixes: continuations.map(\.prompt.cache), own: continuations.map(\.cache), embeddings: input)
        let logits = stepLogits.ensure(B * V)
        backbone.logits(out: logits, hidden: hidden, N: B)
        return UnsafePointer(logits)
    }
}
