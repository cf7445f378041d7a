import PRMCore
import PRMScoring

/// `POST /reward`, slime's `--rm-type remote_rm --rm-url`: its `remote_rm`
/// (slime/rollout/rm_hub/__init__.py) posts `{"prompt", "response", "label"}` per sample and
/// takes the JSON reply as the reward, or reads one key of it (`--reward-key reward`). The user
/// is the label (`RewardLabel`).
enum SlimeReward: HTTPAdapter {
    static func request(_ object: JSONObject, limits _: ServerLimits) throws(WireError) -> [UInt8] {
        let fields = RequestFields(object: object, id: nil)
        let item = ScoringItem(userID: try RewardLabel.user(object["label"], field: "label"), userInfo: nil,
                               prompt: try fields.string("prompt"), response: try fields.string("response"))
        return V1Body.score(id: "reward", items: [item])
    }

    static func reply(_ scored: V1Scores, request: JSONObject) -> [UInt8] {
        var w = JSONWriter()
        w.beginObject()
        w.key("reward")
        if let score = scored.scores.first { w.number(score) } else { w.null() }
        w.key("user_id")
        // The request was read once already to make the v1 request: its label is valid.
        if let user = try? RewardLabel.user(request["label"], field: "label") { w.string(user) } else { w.null() }
        w.key("known_user"); w.bool(scored.knownUser.first ?? false)
        w.endObject()
        return w.bytes
    }
}
