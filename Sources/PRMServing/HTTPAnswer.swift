import PRMCore

/// An HTTP response as the front door writes it: status, content type, body and extra headers.
struct HTTPAnswer: Sendable {
    var status: Int
    var contentType = "application/json"
    var body: [UInt8]
    var headers: [(name: String, value: String)] = []

    /// A JSON body (a v1 reply, or an adapter's).
    static func json(_ body: [UInt8], status: Int = 200) -> HTTPAnswer { HTTPAnswer(status: status, body: body) }

    /// Prometheus's text exposition format, version 0.0.4.
    static func prometheus(_ text: String) -> HTTPAnswer {
        HTTPAnswer(status: 200, contentType: "text/plain; version=0.0.4; charset=utf-8", body: Array(text.utf8))
    }

    /// A v1 error body under its code's status, or `status` where HTTP itself refused the request
    /// (401, 404, 405: the protocol's codes name what was wrong with a request that got through).
    static func error(_ error: WireError, status: Int? = nil) -> HTTPAnswer {
        HTTPAnswer(status: status ?? error.code.httpStatus, body: WireReply.error(error))
    }
}
