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
    /// K learned log-counts over the reply added to the pooled state (`ReplyCounts`); 0: the
    /// pooled state is the backbone's mean (or last-token) state alone, as before they existed.
    public var replyCounts: Int
    /// Width M of the shared residual layer on the pooled state (`PooledInteractions`); 0: none.
    public var interactions: Int
    /// The rows the mean pool reads (bidirectional backbones).
    public var pooling: PoolingSpan
    /// How chat messages become the text the model was trained on.
    public var template: TextTemplate
    /// A fixed factor on the backbone's pooled state, before reply counts and interactions: the
    /// head's learning rates and start act on ⟨e, s·h⟩, so a backbone whose h is larger than the
    /// one the recipe was chosen on (SmolLM2's last-token state: 18× MiniLM's window mean,
    /// bench/results/decoder_recipe) trains at the recipe's step size. 1: h as the backbone gives it.
    public var pooledScale: Float

    enum CodingKeys: String, CodingKey {
        case aggregator, userModel = "user_model", maxLength = "max_length", replyCounts = "reply_counts", interactions, pooling, template
        case pooledScale = "pooled_scale"
    }

    public init(aggregator: Aggregator, userModel: UserModelConfig, maxLength: Int, replyCounts: Int = 0,
                interactions: Int = 0, pooling: PoolingSpan = .window, template: TextTemplate = .hh, pooledScale: Float = 1) {
        self.aggregator = aggregator
        self.userModel = userModel
        self.maxLength = maxLength
        self.replyCounts = replyCounts
        self.interactions = interactions
        self.pooling = pooling
        self.template = template
        self.pooledScale = pooledScale
    }

    /// Checkpoints written before reply counts, interactions, the pooling span, the template or the pooled scale existed have no
    /// key and pool as they always did. Their template is hh: they were trained on the built-in
    /// hh-rlhf data, the only data before `--template`, and the Python client wrote messages in hh.
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        aggregator = try c.decode(Aggregator.self, forKey: .aggregator)
        userModel = try c.decode(UserModelConfig.self, forKey: .userModel)
        maxLength = try c.decode(Int.self, forKey: .maxLength)
        replyCounts = try c.decodeIfPresent(Int.self, forKey: .replyCounts) ?? 0
        interactions = try c.decodeIfPresent(Int.self, forKey: .interactions) ?? 0
        pooling = try c.decodeIfPresent(PoolingSpan.self, forKey: .pooling) ?? .window
        template = try c.decodeIfPresent(TextTemplate.self, forKey: .template) ?? .hh
        pooledScale = try c.decodeIfPresent(Float.self, forKey: .pooledScale) ?? 1
    }

    /// Leaves the keys out at their old meaning (0, window, hh, 1), so such a model saves to the
    /// config.json it was loaded from.
    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(aggregator, forKey: .aggregator)
        try c.encode(userModel, forKey: .userModel)
        try c.encode(maxLength, forKey: .maxLength)
        if replyCounts > 0 { try c.encode(replyCounts, forKey: .replyCounts) }
        if interactions > 0 { try c.encode(interactions, forKey: .interactions) }
        if pooling != .window { try c.encode(pooling, forKey: .pooling) }
        if template != .hh { try c.encode(template, forKey: .template) }
        if pooledScale != 1 { try c.encode(pooledScale, forKey: .pooledScale) }
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
    /// How inputs become sequences within `config.maxLength`.
    public let window: InputWindow
    public let parameters: Parameters
    /// Soft prompt only: scalar head on the pooled state, (1, C) and (1).
    let headWeight: Parameters.Handle?
    let headBias: Parameters.Handle?
    /// The learned log-counts added to the pooled state, when `config.replyCounts` > 0.
    let replyCounts: ReplyCounts?
    /// The shared residual layer on the pooled state, when `config.interactions` > 0.
    private let interactions: PooledInteractions?

    /// The sequences and reward queries of the last forward pass, for backward.
    private var plan = ScoringPlan()
    private var batch = PackedBatch(lengths: [])
    /// Tokens the backbone ran in the last forward pass (after truncation and sharing), for throughput.
    public var lastForwardTokens: Int { batch.tokens }
    private let embeddings = GrowableBuffer(), pooled = GrowableBuffer(), dPooled = GrowableBuffer()
    /// The rows the last training forward's mean pool read, for `backward`.
    private var meanSpans: [Range<Int>] = []
    private let userVectors = GrowableBuffer(), promptVectors = GrowableBuffer()
    /// Inference scratch: input rows, pooled states of a packed batch, a shared prefix's rows.
    private let inferRows = GrowableBuffer(), inferPooled = GrowableBuffer(), prefixRows = GrowableBuffer()

    /// Declares backbone, user model and head in one layout; weights are loaded or initialised by the caller.
    public convenience init(backboneConfig: URL, tokenizerFile: URL, config: RewardModelConfig) throws {
        var layout = Parameters.Layout()
        let backbone = try Backbones.make(config: backboneConfig, layout: &layout)
        try self.init(backbone: backbone, layout: layout, describedBy: backboneConfig, tokenizerJSON: try HFConfig.readFile(tokenizerFile),
                      from: tokenizerFile, config: config)
    }

    /// The user model and head declared after a backbone already in `layout`; `tokenizerJSON`'s
    /// errors name `tokenizerFile`, a mismatch with the backbone names `backboneOrigin` too.
    init(backbone: any Backbone, layout: Parameters.Layout, describedBy backboneOrigin: URL, tokenizerJSON: Data, from tokenizerFile: URL,
         config: RewardModelConfig) throws {
        var layout = layout
        let tokenizer = try TokenizerLoader.load(data: tokenizerJSON, origin: tokenizerFile.path)
        self.tokenizerJSON = tokenizerJSON
        // An id past the embedding table would read (and, training, write) outside it.
        guard tokenizer.vocabularySize <= backbone.vocabularySize else {
            throw ModelError(file: tokenizerFile, "the tokenizer has \(tokenizer.vocabularySize) ids but the backbone's vocab_size "
                             + "(\(backboneOrigin.lastPathComponent)) is \(backbone.vocabularySize): the two files do not belong together")
        }
        guard config.maxLength > config.userModel.tokens + tokenizer.specialTokensPerSequence + 1 else {
            throw ModelError("max length \(config.maxLength) leaves no room for text after \(config.userModel.tokens) user tokens")
        }
        guard config.maxLength <= backbone.maxPositions else {
            throw ModelError("max length \(config.maxLength) exceeds the backbone's \(backbone.maxPositions) positions")
        }
        if config.aggregator == .linearHead && config.userModel.tokens != 1 {
            throw ModelError("the linear-head aggregator needs exactly 1 user token, got \(config.userModel.tokens)")
        }
        guard config.replyCounts >= 0 else { throw ModelError("reply_counts must be non-negative, got \(config.replyCounts)") }
        guard config.interactions >= 0 else { throw ModelError("interactions must be non-negative, got \(config.interactions)") }
        guard config.pooledScale > 0 && config.pooledScale.isFinite else {
            throw ModelError("pooled_scale must be a positive number, got \(config.pooledScale)")
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
        replyCounts = config.replyCounts > 0 ? ReplyCounts(counts: config.replyCounts, width: C, layout: &layout) : nil
        interactions = config.interactions > 0 ? PooledInteractions(hiddenWidth: config.interactions, width: C, layout: &layout) : nil
        parameters = Parameters(layout)
        backbone.bind(parameters)
        userModel.bind(parameters)
        replyCounts?.bind(parameters)
        interactions?.bind(parameters)
        self.backbone = backbone
        self.tokenizer = tokenizer
        self.config = config
        window = InputWindow(maxLength: config.maxLength,
                             userTokens: config.aggregator == .softPrompt ? config.userModel.tokens : 0, tokenizer: tokenizer,
                             wrapsText: !config.template.writesSpecialTokens)
    }

    /// A new reward model on a pretrained Hugging Face backbone folder (or a Llama GGUF file,
    /// `pretrained(gguf:…)`): backbone weights loaded,
    /// user model and head freshly initialised, except that a sequence-classification folder's
    /// `score` head becomes the generic user's (`ClassificationHead`).
    public static func pretrained(backbone folder: URL, config: RewardModelConfig, seed: UInt64,
                                  initialization: FreshInitialization = FreshInitialization()) throws -> RewardModel {
        if folder.pathExtension == "gguf" { return try pretrained(gguf: folder, config: config, seed: seed, initialization: initialization) }
        let model = try RewardModel(backboneConfig: folder.appendingPathComponent("config.json"),
                                    tokenizerFile: folder.appendingPathComponent("tokenizer.json"), config: config)
        let weights = folder.appendingPathComponent("model.safetensors")
        try Backbones.loadWeights(into: model.parameters, group: .backbone, prefixes: model.backbone.weightPrefixes, from: weights)
        model.initializeUserModelAndHead(seed: seed, initialization: initialization)
        _ = try ClassificationHead.adopt(from: weights, into: model)
        return model
    }

    /// Fresh user vectors and head for a pretrained backbone (weights already loaded).
    public func initializeUserModelAndHead(seed: UInt64, initialization: FreshInitialization = FreshInitialization()) {
        var rng = RandomSource(seed: seed)
        userModel.initialize(fromTokenTable: parameters.value(backbone.wordEmbeddings),
                             vocabulary: backbone.vocabularySize, spread: initialization.userSpread, rng: &rng)
        if let headWeight {
            let w = parameters.value(headWeight), C = backbone.hiddenSize
            for c in 0..<C { w[c] = rng.nextNormal() / Float(C).squareRoot() }
        }
        replyCounts?.initialize(rng: &rng, silent: initialization.silentCounts)
        interactions?.initialize(rng: &rng)
    }

    // MARK: - Forward and backward

    /// Rewards for each input. With `training`, activations are kept for `backward`.
    public func forward(_ inputs: [RewardInput], training: Bool = false) -> [Float] {
        plan = ScoringPlan(inputs, window: window)
        let C = backbone.hiddenSize
        batch = PackedBatch(lengths: plan.sequences.map(\.length))
        let emb = embeddings.ensure(batch.tokens * C)
        buildEmbeddings(emb)
        let hidden = backbone.forward(embeddings: emb, batch: batch, training: training)
        let h = pooled.ensure(batch.count * C)
        pool(h, hidden: hidden, batch: batch, replyOffsets: plan.sequences.map(\.prefixLength), training: training)
        return plan.queries.map { reward(pooled: h + $0.sequence * C, user: $0.user) }
    }

    // MARK: - Inference

    /// Pooled states h, one C-vector per sequence in `sequences` order, written to `out`
    /// (count × C). Nothing is kept for a backward pass. Sequences run in packed batches of at
    /// most `tokensPerBatch` tokens; with a causal backbone, sequences that share a prefix (user
    /// part + prompt: the N candidates of one request) compute it once through the KV cache and
    /// run only their replies after it.
    public func pooledStates(_ sequences: [ModelSequence], tokensPerBatch: Int, into out: UnsafeMutablePointer<Float>) {
        var packed = Array(sequences.indices)
        if let sharing = backbone as? any PrefixSharingBackbone {
            packed = []
            let groups = Dictionary(grouping: sequences.indices) { SharedPrefix(sequences[$0]) }
            for (prefix, members) in groups {
                let shareable = members.filter { sequences[$0].length > prefix.length }
                if shareable.count >= 2 && prefix.length > 0 {
                    continuationStates(sharing, prefix: sequences[shareable[0]], members: shareable, sequences: sequences,
                                       tokensPerBatch: tokensPerBatch, into: out)
                    packed += members.filter { sequences[$0].length <= prefix.length }
                } else {
                    packed += members
                }
            }
        }
        for group in PackedBatch.lengthGroups(packed.map { sequences[$0].length }, tokensPerBatch: tokensPerBatch) {
            packedStates(group.map { packed[$0] }, sequences: sequences, into: out)
        }
    }

    /// One packed batch of whole sequences.
    private func packedStates(_ members: [Int], sequences: [ModelSequence], into out: UnsafeMutablePointer<Float>) {
        let C = backbone.hiddenSize
        let batch = PackedBatch(lengths: members.map { sequences[$0].length })
        let rows = inferRows.ensure(batch.tokens * C)
        for (b, index) in members.enumerated() {
            embedRows(sequences[index], from: 0, count: batch.lengths[b], into: rows + batch.starts[b] * C)
        }
        let hidden = backbone.infer(embeddings: rows, batch: batch)
        let h = inferPooled.ensure(batch.count * C)
        pool(h, hidden: hidden, batch: batch, replyOffsets: members.map { sequences[$0].prefixLength }, training: false)
        for (b, index) in members.enumerated() { (out + index * C).update(from: h + b * C, count: C) }
    }

    /// Sequences sharing `prefix`'s first `prefixLength` rows: the prefix once into a KV cache,
    /// then the continuations in packed batches after it.
    private func continuationStates<Sharing: PrefixSharingBackbone>(_ backbone: Sharing, prefix: ModelSequence, members: [Int],
                                    sequences: [ModelSequence], tokensPerBatch: Int, into out: UnsafeMutablePointer<Float>) {
        let C = backbone.hiddenSize
        let P = prefix.prefixLength
        let cache = backbone.makePrefixCache()
        let prefixInput = prefixRows.ensure(P * C)
        embedRows(prefix, from: 0, count: P, into: prefixInput)
        backbone.extendPrefix(cache, embeddings: prefixInput, count: P)
        let lengths = members.map { sequences[$0].length - P }
        for group in PackedBatch.lengthGroups(lengths, tokensPerBatch: max(tokensPerBatch - P, 1)) {
            let batch = PackedBatch(lengths: group.map { lengths[$0] })
            let rows = inferRows.ensure(batch.tokens * C)
            for (b, k) in group.enumerated() {
                embedRows(sequences[members[k]], from: P, count: batch.lengths[b], into: rows + batch.starts[b] * C)
            }
            let hidden = backbone.continuationStates(after: cache, embeddings: rows, batch: batch)
            // Continuations are the replies: every row is a reply row.
            let h = inferPooled.ensure(batch.count * C)
            pool(h, hidden: hidden, batch: batch, replyOffsets: Array(repeating: 0, count: batch.count), training: false)
            for (b, k) in group.enumerated() { (out + members[k] * C).update(from: h + b * C, count: C) }
        }
    }

    /// h (B, C): the mean over each sequence's rows or its reply's (bidirectional, `config.pooling`)
    /// or its last row (causal), times `config.pooledScale`, plus the reply counts over the reply's rows when the model has them,
    /// then the shared interaction layer when it has one.
    /// A sequence's reply starts `replyOffsets[b]` rows in.
    private func pool(_ h: UnsafeMutablePointer<Float>, hidden: UnsafePointer<Float>, batch: PackedBatch, replyOffsets: [Int], training: Bool) {
        let C = backbone.hiddenSize
        let sequenceSpans = batch.sequenceSpans
        let replySpans = zip(replyOffsets, sequenceSpans).map { offset, span in
            min(span.lowerBound + offset, span.upperBound)..<span.upperBound
        }
        switch backbone.attending {
        case .bidirectional:
            let spans = config.pooling == .reply ? replySpans : sequenceSpans
            MeanPool.forward(out: h, inp: hidden, spans: spans, C: C)
            if training { meanSpans = spans }
        case .causal: RowGather.forward(out: h, inp: hidden, rows: (0..<batch.count).map(batch.lastRow), C: C)
        }
        scalePooled(h, count: batch.count * C)
        replyCounts?.add(to: h, hidden: hidden, rows: batch.tokens, spans: replySpans, training: training)
        interactions?.apply(to: h, rows: batch.count, training: training)
    }

    /// x *= s (`config.pooledScale`): the pooled state forward, its gradient backward.
    private func scalePooled(_ x: UnsafeMutablePointer<Float>, count: Int) {
        guard config.pooledScale != 1 else { return }
        for i in 0..<count { x[i] *= config.pooledScale }
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
        let needsInputGradients = backbone.computesParameterGradients || softPromptUsers
        // The input embeddings are no longer needed: their buffer takes d hidden.
        let dHidden = needsInputGradients ? embeddings.zeroed(batch.tokens * C) : nil
        interactions?.backward(dh: dh)
        replyCounts?.backward(dh: dh, dhidden: dHidden)
        guard let dHidden else { return }
        scalePooled(dh, count: batch.count * C)
        switch backbone.attending {
        case .bidirectional: MeanPool.backward(dinp: dHidden, dout: dh, spans: meanSpans, C: C)
        case .causal: RowGather.backward(dinp: dHidden, dout: dh, rows: (0..<batch.count).map(batch.lastRow), C: C)
        }
        let dEmb = backbone.backward(dhidden: dHidden)
        scatterEmbeddingGradients(dEmb)
    }

    /// r for a pooled state h (C) and a user: ⟨e_user, h⟩ for the linear head; the head on h for
    /// the soft prompt (whose user is already inside the sequence h was computed from).
    public func reward(pooled h: UnsafePointer<Float>, user: Int) -> Float {
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

    /// Input rows of the last forward's sequences, packed as `batch` lays them out.
    private func buildEmbeddings(_ out: UnsafeMutablePointer<Float>) {
        let C = backbone.hiddenSize
        for (s, sequence) in plan.sequences.enumerated() {
            embedRows(sequence, from: 0, count: sequence.length, into: out + batch.starts[s] * C)
        }
    }

    /// Rows `start ..< start + count` of a sequence's input: [explicit user text ; implicit user
    /// vectors ; text], the text and user text through the backbone's own token table.
    private func embedRows(_ sequence: ModelSequence, from start: Int, count: Int, into out: UnsafeMutablePointer<Float>) {
        let C = backbone.hiddenSize
        let table = UnsafePointer(parameters.value(backbone.wordEmbeddings))
        let (e, u) = (sequence.explicit.count, sequence.implicitCount)
        let vectors = promptVectors.ensure(max(u, 1) * C)
        if u > 0, let user = sequence.implicitUser, start < e + u, start + count > e {
            userModel.forward(out: vectors, user: user)
        }
        for r in start..<(start + count) {
            let row = out + (r - start) * C
            if r < e {
                row.update(from: table + Int(sequence.explicit[r]) * C, count: C)
            } else if r < e + u {
                row.update(from: vectors + (r - e) * C, count: C)
            } else {
                row.update(from: table + Int(sequence.text[r - e - u]) * C, count: C)
            }
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
    struct Query {
        var sequence: Int
        var user: Int
    }

    private(set) var sequences: [ModelSequence] = []
    private(set) var queries: [Query] = []
    /// (sequence, position) of every explicit-text and text token, and its id, in a fixed order:
    /// the rows gathered from (forward) and scattered to (backward) the word-embedding table.
    private(set) var tokenRows: [(sequence: Int, position: Int)] = []
    private(set) var tokenIDs: [Int32] = []

    init() {}

    init(_ inputs: [RewardInput], window: InputWindow) {
        var index: [ModelSequence: Int] = [:]
        for input in inputs {
            let sequence = window.sequence(for: input).sequence
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

/// The rows a causal sequence shares with the other candidates of its request.
struct SharedPrefix: Hashable {
    var implicitUser: Int?
    var explicit: [Int32]
    var implicitCount: Int
    var text: ArraySlice<Int32>

    init(_ sequence: ModelSequence) {
        implicitUser = sequence.implicitUser
        explicit = sequence.explicit
        implicitCount = sequence.implicitCount
        text = sequence.text[..<sequence.replyStart]
    }

    var length: Int { explicit.count + implicitCount + text.count }
}
