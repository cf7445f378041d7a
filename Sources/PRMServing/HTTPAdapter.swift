import PRMCore

/// An HTTP endpoint in another project's request and reply shape, served by one v1 request
/// (`OpenRLHFReward`, `SlimeReward`, `TEIRerank`): the adapter only reshapes, the v1 parse does
/// every check and limit.
protocol HTTPAdapter {
    /// The v1 request body for the adapter's request.
    static func request(_ object: JSONObject, limits: ServerLimits) throws(WireError) -> [UInt8]
    /// The adapter's reply, from the scores of the v1 reply and the request it answers.
    static func reply(_ scored: V1Scores, request: JSONObject) -> [UInt8]
}
