import CZeroMQ
import Foundation

/// Protocol v1 in one place (protocols/PROTOCOL.md; a JSON Schema per message in protocols/v1):
/// its version number, and the socket profile of a front door clients connect to, the same for
/// `prm serve` and `prm proxy`.
public enum ProtocolV1 {
    /// The `"v"` of every request and reply, and `info`'s `"protocol"`.
    public static let version = 1

    /// Opens a client-facing ROUTER: a small send queue per client (a client that stops reading
    /// loses its replies, not everyone's turn), and messages far over the body limit refused by
    /// ZeroMQ before they are read into memory (bodies between the limit and 4× it get a
    /// `too_large` reply that names the limit).
    static func frontDoor(_ context: ZMQContext, maxMessageBytes: Int, gate: CurveGate?) throws -> ZMQSocket {
        let router = try router(context, sendQueue: 1_000, gate: gate)
        try router.set(ZMQ_MAXMSGSIZE, Int64(maxMessageBytes) * 4)
        return router
    }

    /// A ROUTER as every prm socket that routes by envelope opens it (the front door, the proxy's
    /// worker side): ROUTER_MANDATORY so that a message to a vanished peer is an error we count,
    /// not a silent drop; bounded queues; a finite linger so shutdown cannot hang.
    static func router(_ context: ZMQContext, sendQueue: Int32, gate: CurveGate?) throws -> ZMQSocket {
        let router = try ZMQSocket(context, kind: ZMQ_ROUTER)
        try gate?.protect(router)
        try router.set(ZMQ_ROUTER_MANDATORY, Int32(1))
        try router.set(ZMQ_SNDHWM, sendQueue)
        try router.set(ZMQ_RCVHWM, Int32(10_000))
        try router.set(ZMQ_LINGER, Int32(2_000))
        return router
    }
}
