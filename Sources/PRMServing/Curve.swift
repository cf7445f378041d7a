import CZeroMQ
import Foundation
import PRMCore

/// CURVE keys (ZeroMQ's elliptic-curve security, RFC 26) in the format pyzmq's
/// `zmq.curve_keypair()` gives: 40 Z85 characters. Key files hold one key on their first line:
/// NAME.pub (public, shareable) and NAME.key (secret, mode 0600), so keys made by either tool
/// work with the other.
public enum Curve {
    /// Whether this libzmq was built with CURVE (Debian's is, through libsodium).
    public static var available: Bool { zmq_has("curve") != 0 }

    public struct KeyPair: Sendable {
        public let publicKey: String
        public let secretKey: String
    }

    public static func generate() throws -> KeyPair {
        try requireAvailable()
        var pub = [CChar](repeating: 0, count: 41), sec = [CChar](repeating: 0, count: 41)
        guard zmq_curve_keypair(&pub, &sec) == 0 else { throw ZMQError.last("zmq_curve_keypair") }
        return KeyPair(publicKey: string(pub), secretKey: string(sec))
    }

    /// The public key belonging to a secret key.
    public static func publicKey(secret: String) throws -> String {
        try requireAvailable()
        var pub = [CChar](repeating: 0, count: 41)
        guard zmq_curve_public(&pub, secret) == 0 else { throw ServingError("not a valid CURVE secret key") }
        return string(pub)
    }

    /// The 32 bytes a Z85 key stands for, or nil when it is not 40 valid Z85 characters.
    public static func decode(_ z85: String) -> [UInt8]? {
        guard z85.utf8.count == 40 else { return nil }
        var bytes = [UInt8](repeating: 0, count: 32)
        return zmq_z85_decode(&bytes, z85) == nil ? nil : bytes
    }

    /// The key on the first line of a key file; errors name the file.
    public static func readKey(_ url: URL) throws -> String {
        guard let text = try? String(contentsOf: url, encoding: .utf8) else {
            throw ServingError("\(url.path): cannot read the key file")
        }
        let key = String(text.prefix { $0 != "\n" && $0 != "\r" }).trimmingCharacters(in: .whitespaces)
        guard decode(key) != nil else {
            throw ServingError("\(url.path): the first line is not a 40-character Z85 CURVE key")
        }
        return key
    }

    /// Writes NAME.pub and NAME.key (mode 0600), each atomically.
    public static func writeKeyPair(_ pair: KeyPair, name: URL) throws {
        let secret = name.appendingPathExtension("key"), shared = name.appendingPathExtension("pub")
        try AtomicFile.write(Data((pair.secretKey + "\n").utf8), to: secret, permissions: 0o600)
        try AtomicFile.write(Data((pair.publicKey + "\n").utf8), to: shared, permissions: 0o644)
    }

    /// Makes `socket` a CURVE server with `secretKey` (its public key follows from it).
    static func makeServer(_ socket: ZMQSocket, secretKey: String) throws {
        try socket.set(ZMQ_CURVE_SERVER, Int32(1))
        try socket.set(ZMQ_CURVE_SECRETKEY, bytes: Array(secretKey.utf8))
        // A ZAP domain makes libzmq consult the ZAP handler for every connection.
        try socket.set(ZMQ_ZAP_DOMAIN, bytes: Array("prm".utf8))
    }

    /// Makes `socket` a CURVE client of the server whose public key is `serverKey`.
    static func makeClient(_ socket: ZMQSocket, keys: ClientKeys) throws {
        try socket.set(ZMQ_CURVE_SERVERKEY, bytes: Array(keys.serverPublicKey.utf8))
        try socket.set(ZMQ_CURVE_PUBLICKEY, bytes: Array(keys.publicKey.utf8))
        try socket.set(ZMQ_CURVE_SECRETKEY, bytes: Array(keys.secretKey.utf8))
    }

    /// A client's keys: its own pair and the server's public key.
    public struct ClientKeys: Sendable {
        public let serverPublicKey: String
        public let publicKey: String
        public let secretKey: String

        /// From key files: the server's NAME.pub and the client's own NAME.key.
        public init(serverKeyFile: URL, secretKeyFile: URL) throws {
            serverPublicKey = try Curve.readKey(serverKeyFile)
            secretKey = try Curve.readKey(secretKeyFile)
            publicKey = try Curve.publicKey(secret: secretKey)
        }

        public init(serverPublicKey: String, publicKey: String, secretKey: String) {
            self.serverPublicKey = serverPublicKey
            self.publicKey = publicKey
            self.secretKey = secretKey
        }
    }

    private static func requireAvailable() throws {
        guard available else { throw ServingError("this libzmq was built without CURVE support") }
    }

    private static func string(_ chars: [CChar]) -> String {
        String(decoding: chars.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}

/// CURVE on a server's or proxy's listening sockets, enforced by a ZAP handler (RFC 27): CURVE
/// alone proves the client holds *a* key; the handler admits only the public keys found in the
/// allow-list folder (one *.pub file each), re-read on SIGHUP. The handler's REP socket is polled
/// by the owner's I/O thread, which answers each handshake as it comes.
final class CurveGate {
    let secretKey: String
    let allowFolder: URL
    private(set) var allowed: Set<[UInt8]> = []
    let zap: ZMQSocket
    private(set) var admitted = 0, refused = 0

    static let zapEndpoint = "inproc://zeromq.zap.01"

    /// The gate `settings` ask for, or nil without CURVE.
    static func make(_ context: ZMQContext, _ settings: CurveSettings) throws -> CurveGate? {
        guard let secret = settings.secretKey else { return nil }
        // CURVE without ZAP would admit anyone who can do the handshake, i.e. anyone.
        guard let allow = settings.allowKeys else { throw ServingError("CURVE needs --allow-keys: the folder of clients' public keys") }
        return try CurveGate(context, secretKeyFile: secret, allowFolder: allow)
    }

    init(_ context: ZMQContext, secretKeyFile: URL, allowFolder: URL) throws {
        secretKey = try Curve.readKey(secretKeyFile)
        self.allowFolder = allowFolder
        zap = try ZMQSocket(context, kind: ZMQ_REP)
        try zap.set(ZMQ_LINGER, Int32(0))
        try zap.bind(Self.zapEndpoint)
        try reload()
    }

    /// Reads the allow-list again (start-up and SIGHUP). A bad file is reported and skipped.
    func reload() throws {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: allowFolder.path, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw ServingError("\(allowFolder.path): --allow-keys must be a folder of *.pub files")
        }
        let files = try FileManager.default.contentsOfDirectory(at: allowFolder, includingPropertiesForKeys: nil)
            .filter { $0.pathExtension == "pub" }
        var keys: Set<[UInt8]> = []
        for file in files {
            do {
                if let key = Curve.decode(try Curve.readKey(file)) { keys.insert(key) }
            } catch {
                Log.warning("allow-list: \(error)")
            }
        }
        allowed = keys
        Log.info("allow-list: \(keys.count) client key(s) from \(allowFolder.path)")
    }

    /// Applies CURVE to a socket that clients connect to.
    func protect(_ socket: ZMQSocket) throws { try Curve.makeServer(socket, secretKey: secretKey) }

    /// Answers the waiting ZAP requests: 200 for an allowed CURVE key, 400 otherwise.
    func answer() throws {
        while let request = try zap.receive(dontWait: true) { try answer(request) }
    }

    private func answer(_ request: [[UInt8]]) throws {
        // version, request id, domain, address, identity, mechanism, credentials...
        guard request.count >= 6 else {
            try zap.send([Array("1.0".utf8), request.count > 1 ? request[1] : [], Array("500".utf8), Array("malformed ZAP request".utf8), [], []])
            return
        }
        let mechanism = String(decoding: request[5], as: UTF8.self)
        let key = request.count > 6 ? request[6] : []
        let ok = mechanism == "CURVE" && allowed.contains(key)
        if ok { admitted += 1 } else { refused += 1 }
        if !ok { Log.warning("refused a \(mechanism) connection from \(String(decoding: request[3], as: UTF8.self)): key not on the allow-list") }
        try zap.send([Array("1.0".utf8), request[1], Array((ok ? "200" : "400").utf8),
                      Array((ok ? "OK" : "key not allowed").utf8), ok ? Array("client".utf8) : [], []])
    }

    func close() { zap.close() }
}
