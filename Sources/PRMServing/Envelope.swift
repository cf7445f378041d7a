/// Where a ZeroMQ request's routing ends and its body begins (protocols/PROTOCOL.md, "Transport").
///
/// A ROUTER socket prepends the peer's identity. After it, the envelope is every frame up to and
/// including the first empty frame (REQ's delimiter, a DEALER's optional one, brokers' identities
/// before it); without an empty frame there is no envelope. Exactly one body frame must follow.
/// The reply goes back with the same routing frames, so REQ and DEALER clients both get what
/// they expect.
struct Envelope: Sendable {
    /// Identity + envelope frames, to put in front of the reply body.
    let route: [[UInt8]]

    /// Splits a message received on a ROUTER socket. The body is nil, with `problem` saying why,
    /// when the layout is wrong; the route is still good for the error reply.
    static func split(_ frames: [[UInt8]]) -> (envelope: Envelope, body: [UInt8]?, problem: String?) {
        guard let identity = frames.first else { return (Envelope(route: []), nil, "empty message") }
        let rest = frames.dropFirst()
        let delimiter = rest.firstIndex { $0.isEmpty }
        let route = Array(frames[..<(delimiter.map { $0 + 1 } ?? 1)])
        let body = rest[(delimiter.map { $0 + 1 } ?? rest.startIndex)...]
        let envelope = Envelope(route: route.isEmpty ? [identity] : route)
        switch body.count {
        case 1: return (envelope, body.first, nil)
        case 0: return (envelope, nil, "no body frame after the envelope")
        default: return (envelope, nil, "expected one body frame after the envelope, got \(body.count)")
        }
    }
}
