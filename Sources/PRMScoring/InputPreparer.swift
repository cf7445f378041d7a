import PRMCore
import PRMModel
import PRMTokenizers

/// The one place raw text and user ids become model inputs: tokenization, user resolution and
/// the model's window rule. A value type with no model state, so a request thread can prepare
/// inputs while the compute thread runs the model; training data is tokenized here too.
public struct InputPreparer: Sendable {
    public let users: UserTable
    public let window: InputWindow
    /// How chat messages become text: the checkpoint's template.
    public let template: TextTemplate
    let tokenizer: any Tokenizer

    public init(model: RewardModel, users: UserTable) {
        self.users = users
        window = model.window
        template = model.config.template
        tokenizer = model.tokenizer
    }

    /// Items whose prompts and replies may be chat messages, as text in the checkpoint's template:
    /// the one place requests' messages are written out (ZeroMQ, HTTP and `prm score --input` alike).
    public func render(_ items: [ChatItem]) -> [ScoringItem] {
        items.map { ScoringItem(userID: $0.userID, userInfo: $0.userInfo,
                                prompt: template.prompt($0.prompt), response: template.reply($0.response)) }
    }

    /// Token ids of each text, no special tokens (the window adds them). Identical texts (a
    /// prompt shared by N candidates) are tokenized once.
    public func tokenize(_ texts: [String]) -> [[Int32]] {
        var slots: [String: Int] = [:]
        var unique: [String] = []
        let slot = texts.map { text in
            if let known = slots[text] { return known }
            slots[text] = unique.count
            unique.append(text)
            return unique.count - 1
        }
        let ids = tokenizer.encodeBatch(unique, addSpecialTokens: false).map { $0.map(Int32.init) }
        return slot.map { ids[$0] }
    }

    /// The user-table index for an id (nil or unknown → the generic user 0) and whether it was known.
    public func user(_ id: String?) -> (index: Int, known: Bool) {
        guard let id, users.contains(id) else { return (0, false) }
        return (users.index(of: id), true)
    }

    /// Tokenizes and windows each item.
    public func prepare(_ items: [ScoringItem]) -> [PreparedItem] {
        var texts: [String] = []
        texts.reserveCapacity(items.count * 3)
        for item in items { texts += [item.userInfo ?? "", item.prompt, item.response] }
        let ids = tokenize(texts)
        return items.enumerated().map { i, item in
            let (index, known) = user(item.userID)
            return prepare(user: index, known: known, explicit: ids[3 * i], prompt: ids[3 * i + 1], reply: ids[3 * i + 2])
        }
    }

    /// An item from already tokenized parts (training and evaluation data are tokenized once).
    public func prepare(user: Int, known: Bool, explicit: [Int32], prompt: [Int32], reply: [Int32]) -> PreparedItem {
        let (sequence, truncated) = window.sequence(for: RewardInput(user: user, explicit: explicit, prompt: prompt, reply: reply))
        return PreparedItem(user: user, knownUser: known, sequence: sequence, truncated: truncated)
    }
}
