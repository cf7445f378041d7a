import Foundation
import PRMServing

/// The CURVE options that serve, proxy and score --server share, declared and read in one place.
enum CurveOptions {
    static let secretKey = OptionSpec.value("curve-secret-key", placeholder: "FILE",
                                            help: "CURVE: this process's secret key (NAME.key from prm keygen).")
    static let allowKeys = OptionSpec.value("allow-keys", placeholder: "DIR",
                                            help: "CURVE: folder of the allowed clients' public keys (*.pub), re-read on SIGHUP.")
    static let serverKey = OptionSpec.value("curve-server-key", placeholder: "FILE",
                                            help: "CURVE: the server's (or proxy's) public key (NAME.pub).")

    static func settings(_ a: ParsedArguments) throws -> CurveSettings {
        var s = CurveSettings()
        let declared = Set(a.spec.options.map(\.name))
        s.secretKey = a.string("curve-secret-key").map { URL(fileURLWithPath: $0) }
        if declared.contains("allow-keys") { s.allowKeys = a.string("allow-keys").map { URL(fileURLWithPath: $0) } }
        if declared.contains("curve-server-key") { s.serverKey = a.string("curve-server-key").map { URL(fileURLWithPath: $0) } }
        if s.secretKey == nil, s.allowKeys != nil || s.serverKey != nil {
            throw a.usageError("CURVE options need --curve-secret-key (this process's own key)")
        }
        return s
    }

    /// Client keys for `score --server`, or nil without CURVE.
    static func clientKeys(_ a: ParsedArguments) throws -> Curve.ClientKeys? {
        let s = try settings(a)
        guard let secret = s.secretKey else { return nil }
        guard let server = s.serverKey else { throw a.usageError("--curve-secret-key needs --curve-server-key (the server's NAME.pub)") }
        return try Curve.ClientKeys(serverKeyFile: server, secretKeyFile: secret)
    }
}
