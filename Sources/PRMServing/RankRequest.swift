import PRMCore
import PRMModel
import PRMScoring

/// The reply candidates of one user's rank request (protocol v1), checked field by field: the one
/// check of the server's `rank` op and of `prm score --input`'s JSONL lines.
public struct RankRequest: Sendable {
    public var user: String?
    public var userInfo: String?
    /// Text, or messages for the checkpoint's template to write out (`InputPreparer.render`).
    public var prompt: ChatText
    public var candidates: [ChatText]
    /// `"uncertainty": true`: the reply adds each score's posterior standard deviation for the user.
    public var uncertainty = false

    public init(user: String?, userInfo: String?, prompt: ChatText, candidates: [ChatText], uncertainty: Bool = false) {
        self.user = user
        self.userInfo = userInfo
        self.prompt = prompt
        self.candidates = candidates
        self.uncertainty = uncertainty
    }

    /// The fields of a request object, at most `maxCandidates` candidates; errors name the field.
    public init(_ object: JSONObject, maxCandidates: Int) throws(WireError) {
        try self.init(RequestFields(object: object, id: nil), maxCandidates: maxCandidates)
    }

    init(_ fields: RequestFields, maxCandidates: Int) throws(WireError) {
        let candidates = try fields.replies("candidates", limit: maxCandidates)
        self.init(user: try fields.optionalString("user_id"), userInfo: try fields.optionalString("user_info"),
                  prompt: try fields.prompt(), candidates: candidates, uncertainty: try fields.flag("uncertainty"))
    }

    /// One item per candidate, for `InputPreparer.render`.
    public var items: [ChatItem] {
        candidates.map { ChatItem(userID: user, userInfo: userInfo, prompt: prompt, response: $0) }
    }
}
