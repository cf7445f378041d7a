/// HTTP responses of one listener, endpoint and status, for `prm_http_requests_total`.
struct HTTPCount: Sendable, Hashable {
    /// "http" (`--http`) or "metrics_http" (`--metrics-http`).
    var listener: String
    /// The endpoint's path, or "other" for a path the listener does not serve (bounded labels).
    var endpoint: String
    var status: Int
}
