import PRMCore

/// The messages between `prm proxy` and its workers (`prm serve --connect`), in the style of the
/// zguide's Paranoid Pirate: workers announce themselves and heartbeat, the proxy heartbeats
/// back, and either side takes silence for death (protocols/PROTOCOL.md, "Scale-out").
///
/// Every message starts with the protocol frame `PRMW1` and a command frame:
///
///     worker → proxy   READY      facts (JSON: slots, model)
///                      HEARTBEAT
///                      REPLY      token, body
///                      DISCONNECT                       (draining: send no new work)
///     proxy → worker   REQUEST    token, body
///                      HEARTBEAT
///                      RECONNECT                        (the proxy does not know this worker)
///
/// A token is the proxy's handle on one client request; the body is the client's v1 JSON, passed
/// through unchanged both ways.
enum WorkerProtocol {
    static let version: [UInt8] = Array("PRMW1".utf8)

    enum Command: String, CaseIterable {
        case ready = "READY", heartbeat = "HEARTBEAT", reply = "REPLY", disconnect = "DISCONNECT"
        case request = "REQUEST", reconnect = "RECONNECT"

        var frame: [UInt8] { Array(rawValue.utf8) }
    }

    /// `[PRMW1, command] + payload`.
    static func message(_ command: Command, _ payload: [[UInt8]] = []) -> [[UInt8]] {
        [version, command.frame] + payload
    }

    /// The command and payload of a message, or nil when it does not speak this protocol.
    static func parse(_ frames: ArraySlice<[UInt8]>) -> (command: Command, payload: ArraySlice<[UInt8]>)? {
        guard frames.count >= 2, frames[frames.startIndex] == version,
              let command = Command(rawValue: String(decoding: frames[frames.startIndex + 1], as: UTF8.self)) else { return nil }
        return (command, frames.dropFirst(2))
    }

    /// Tokens travel as 8 little-endian bytes.
    static func token(_ value: UInt64) -> [UInt8] { (0..<8).map { UInt8(truncatingIfNeeded: value >> (8 * $0)) } }

    static func token(_ frame: [UInt8]) -> UInt64? {
        guard frame.count == 8 else { return nil }
        return frame.enumerated().reduce(0) { $0 | UInt64($1.element) << (8 * $1.offset) }
    }
}

/// How often workers and the proxy heartbeat, and how many silent intervals mean death.
public struct Heartbeat: Sendable, Equatable {
    public var intervalMs = 1_000.0
    public var liveness = 3

    public init() {}

    public var interval: Double { intervalMs / 1000 }
    /// Silence after which a peer is taken for dead.
    public var expiry: Double { interval * Double(liveness) }
}
