import Foundation
import PRMCore
import PRMModel

/// The check that a model can score before it is written or served: its weights are finite, and
/// a fixed handful of replies score finitely through the scoring path for the generic user and
/// every user of the table.
///
/// Finite weights are not enough: one step at a huge learning rate leaves weights near 1e30,
/// every one finite, whose products overflow, so every score is NaN. Training runs this before
/// any checkpoint and `prm adapt` before writing its output; `load` runs it for everything that
/// scores with a checkpoint (`Scorer(checkpoint:)`: the service, `prm score --model`, the PPO
/// reward; `prm eval`, `prm adapt`), so all of them refuse the same models.
public enum ModelProbe {
    /// Two prompts with a short and a long reply each, as in the built-in lengthpref data: short
    /// texts keep the probe cheap (with the soft prompt each user needs its own pass), and both
    /// lengths matter because pooling averages over the reply's tokens.
    static let replies: [(prompt: String, reply: String)] = [
        ("Human: How do I boil an egg?\n\nAssistant:", "Boil it for nine minutes."),
        ("Human: How do I boil an egg?\n\nAssistant:",
         "Put the egg in a pot of cold water, bring it to the boil, simmer for nine minutes, then cool it in cold water before peeling."),
        ("Human: Any tips for sleeping better?\n\nAssistant:", "Keep a regular schedule."),
        ("Human: Any tips for sleeping better?\n\nAssistant:",
         "Go to bed at the same time every night, keep the room dark and cool, and put screens away an hour before sleep."),
    ]

    /// `Checkpoint.load` for a model that is about to score or be adapted: a checkpoint that fails
    /// `check` is refused with an error naming the folder. The backbone infers at `precision`,
    /// the probe included, so a model that diverges only at that precision is refused too.
    /// `template`: `Checkpoint.load`'s, for a folder served as it is.
    public static func load(_ checkpoint: URL, precision: Precision = .fp32,
                            template: TextTemplate? = nil) throws -> (model: RewardModel, users: UserTable, training: [String: Any]) {
        let loaded = try Checkpoint.load(checkpoint, template: template)
        try loaded.model.backbone.useInferencePrecision(precision)
        do { try check(loaded.model, users: loaded.users) } catch let error as ModelError {
            throw ModelError(file: checkpoint, "refusing to load this checkpoint", cause: error)
        }
        return loaded
    }

    /// Throws a `ModelError` naming the first non-finite weight, or else the first probe reply
    /// and user whose score is NaN or infinite (with the largest weight, which says why).
    public static func check(_ model: RewardModel, users: UserTable) throws {
        try requireFiniteWeights(model.parameters)
        let scorer = Scorer(model: model, users: users)
        let texts = scorer.preparer.tokenize(replies.flatMap { [$0.prompt, $0.reply] })
        let probed = [(id: "the generic user", index: 0)] + users.indices.sorted { $0.value < $1.value }.map { (id: "user '\($0.key)'", index: $0.value) }
        let items = probed.flatMap { user in
            replies.indices.map { k in
                scorer.preparer.prepare(user: user.index, known: user.index != 0, explicit: [], prompt: texts[2 * k], reply: texts[2 * k + 1])
            }
        }
        let scores = scorer.score(items)
        guard let bad = scores.indices.first(where: { !scores[$0].isFinite }) else { return }
        let (user, reply) = (probed[bad / replies.count], bad % replies.count)
        throw ModelError("it scores \(scores[bad]) for \(user.id) (index \(user.index)) on probe reply \(reply + 1) of \(replies.count) "
                         + "(largest |weight| \(largestMagnitude(model.parameters))): the weights have diverged")
    }

    static func requireFiniteWeights(_ p: Parameters) throws {
        if let bad = p.firstNonFinite() {
            throw ModelError("parameter \(bad.name)[\(bad.index)] is \(bad.value): the weights are not finite")
        }
    }

    static func largestMagnitude(_ p: Parameters) -> Float {
        (0..<p.count).reduce(0) { max($0, abs(p.values.data[$1])) }
    }
}
