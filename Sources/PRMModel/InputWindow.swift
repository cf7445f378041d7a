import PRMCore
import PRMTokenizers

/// One sequence the backbone reads: [explicit user text ; implicit user vectors ; text], where
/// text is prompt + reply inside the tokenizer's special tokens. It is the unit of computation:
/// inputs with equal sequences share one backbone pass (and, for the linear head, one cached h).
public struct ModelSequence: Hashable, Sendable {
    /// Soft prompt: the user whose T_u vectors fill the implicit slots; nil for the linear head,
    /// whose sequences do not depend on the user.
    public var implicitUser: Int?
    public var explicit: [Int32]
    public var implicitCount: Int
    public var text: [Int32]
    /// Where the reply starts inside `text`: everything before it (user part, special tokens,
    /// prompt) is a prefix that candidates of one prompt share.
    public var replyStart: Int

    public init(implicitUser: Int?, explicit: [Int32], implicitCount: Int, text: [Int32], replyStart: Int) {
        self.implicitUser = implicitUser
        self.explicit = explicit
        self.implicitCount = implicitCount
        self.text = text
        self.replyStart = replyStart
    }

    public var length: Int { explicit.count + implicitCount + text.count }
    /// Rows before the reply: the part a causal backbone can compute once per prompt.
    public var prefixLength: Int { explicit.count + implicitCount + replyStart }
}

/// The window rule: how (explicit user text, prompt, reply) token ids become one sequence of at
/// most `maxLength` tokens. The whole reply is kept and the prompt is trimmed from the left (the
/// most recent turns matter most; DESIGN.md); a reply longer than the window on its own keeps its
/// beginning. Explicit user text takes at most half the window. Pure and `Sendable`, so request
/// threads can prepare inputs while another thread runs the model.
public struct InputWindow: Sendable {
    public let maxLength: Int
    /// Implicit user vectors placed in the sequence (soft prompt: T_u; linear head: 0).
    public let userTokens: Int
    let tokenizer: any Tokenizer
    /// Whether the tokenizer's post-processor wraps the text: not when the text template writes
    /// the model's special tokens itself (`TextTemplate.writesSpecialTokens`).
    let wrapsText: Bool
    /// Special tokens the tokenizer's template puts before the text ([CLS] for BERT, none for GPT-2).
    let leadingSpecialTokens: Int

    public init(maxLength: Int, userTokens: Int, tokenizer: any Tokenizer, wrapsText: Bool = true) {
        self.maxLength = maxLength
        self.userTokens = userTokens
        self.tokenizer = tokenizer
        self.wrapsText = wrapsText
        // Wrap one ordinary id and see where the template puts it.
        let specials = Set(tokenizer.addingSpecialTokens([]))
        let probe = (0...specials.count).first { !specials.contains($0) } ?? 0
        leadingSpecialTokens = wrapsText ? tokenizer.addingSpecialTokens([probe]).firstIndex(of: probe) ?? 0 : 0
    }

    /// Ids the post-processor adds around the text (0 when it does not wrap it).
    var specialTokensPerSequence: Int { wrapsText ? tokenizer.specialTokensPerSequence : 0 }

    /// Most explicit user-text tokens a sequence keeps: half the window, and never so many that
    /// the implicit user tokens, the special tokens and one text token no longer fit.
    public var explicitLimit: Int {
        max(min(maxLength / 2, maxLength - userTokens - specialTokensPerSequence - 1), 0)
    }

    /// The sequence for `input`, and whether anything (user text, prompt or reply) was cut.
    public func sequence(for input: RewardInput) -> (sequence: ModelSequence, truncated: Bool) {
        let explicit = Array(input.explicit.prefix(explicitLimit))
        let room = maxLength - explicit.count - userTokens
        let (text, replyStart, cut) = textTokens(prompt: input.prompt, reply: input.reply, room: room)
        let sequence = ModelSequence(implicitUser: userTokens > 0 ? input.user : nil, explicit: explicit,
                                     implicitCount: userTokens, text: text, replyStart: replyStart)
        return (sequence, cut || explicit.count < input.explicit.count)
    }

    /// Special tokens around prompt + reply within `room`: (tokens, index where the reply starts, cut).
    public func textTokens(prompt: [Int32], reply: [Int32], room: Int) -> (tokens: [Int32], replyStart: Int, truncated: Bool) {
        let budget = max(room - specialTokensPerSequence, 1)
        let keptReply = Array(reply.prefix(budget))
        let keptPrompt = Array(prompt.suffix(max(budget - keptReply.count, 0)))
        let text = keptPrompt + keptReply
        let tokens = wrapsText ? tokenizer.addingSpecialTokens(text.map(Int.init)).map(Int32.init) : text
        return (tokens, leadingSpecialTokens + keptPrompt.count, keptReply.count < reply.count || keptPrompt.count < prompt.count)
    }
}
