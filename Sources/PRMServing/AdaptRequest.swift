import PRMCore
import PRMModel
import PRMScoring

/// An `adapt` request (protocol v1): the comparisons a user answered, from which the server fits
/// that user's vector (`LiveUsers`). Prompts and replies are read as `rank` reads them (strings or
/// chat messages).
struct AdaptRequest: Sendable {
    struct Comparison: Sendable {
        var prompt: ChatText
        var chosen: ChatText
        var rejected: ChatText
    }

    var user: String
    var comparisons: [Comparison]

    /// At most `maxComparisons` comparisons; errors name the field.
    init(_ fields: RequestFields, maxComparisons: Int) throws(WireError) {
        user = try fields.string("user_id")
        guard !user.isEmpty else { throw fields.fail("field 'user_id' is empty; adapt fits a named user") }
        comparisons = []
        for (i, member) in try fields.objects("comparisons", limit: maxComparisons).enumerated() {
            let place = "comparisons[\(i)]"
            func reply(_ name: String) throws(WireError) -> ChatText {
                guard let value = member[name] else { throw fields.fail("missing field '\(place).\(name)'") }
                return try fields.reply(value, at: "\(place).\(name)")
            }
            comparisons.append(Comparison(prompt: try fields.prompt(in: member, at: place), chosen: try reply("chosen"), rejected: try reply("rejected")))
        }
    }

    /// Two items per comparison, chosen then rejected, for the generic user: their pooled states
    /// are what the fit needs (the linear head's h does not depend on the user).
    var items: [ChatItem] {
        comparisons.flatMap { c in [ChatItem(userID: nil, prompt: c.prompt, response: c.chosen), ChatItem(userID: nil, prompt: c.prompt, response: c.rejected)] }
    }
}
