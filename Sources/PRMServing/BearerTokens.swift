import Foundation
import PRMCore
import Synchronization

/// The bearer tokens an HTTP front door accepts (`--http-token-file`): one a line, blank lines
/// and `#` comments skipped, re-read on SIGHUP. Checked on libmicrohttpd's thread, reloaded on
/// the I/O thread, so the list sits behind a lock.
final class BearerTokens: Sendable {
    let file: URL
    private let tokens: Mutex<[[UInt8]]>

    init(file: URL) throws {
        self.file = file
        tokens = Mutex(try Self.read(file))
    }

    /// Reads the file again; a file that cannot be read or holds no token keeps the old tokens.
    func reload() {
        do {
            let fresh = try Self.read(file)
            tokens.withLock { $0 = fresh }
            Log.info("HTTP tokens reloaded from \(file.path): \(fresh.count) token(s)")
        } catch {
            Log.warning("HTTP tokens not reloaded, the old ones stay in force: \(error)")
        }
    }

    /// Whether an `Authorization` header value is `Bearer TOKEN` with a token of the file.
    func admits(authorization: String?) -> Bool {
        guard let authorization, authorization.count > 7, authorization.prefix(7).lowercased() == "bearer " else { return false }
        let given = Array(authorization.dropFirst(7).utf8)
        // Every token is compared, each in constant time, so timing tells neither which token
        // matched nor how much of one did.
        return tokens.withLock { list in list.map { Self.equal(given, $0) }.contains(true) }
    }

    /// Compares all of `token`'s bytes whatever `given` holds: the time depends on the token's
    /// length only.
    static func equal(_ given: [UInt8], _ token: [UInt8]) -> Bool {
        var difference = given.count == token.count ? 0 : 1
        for (index, byte) in token.enumerated() {
            difference |= Int(byte ^ (index < given.count ? given[index] : ~byte))
        }
        return difference == 0
    }

    private static func read(_ file: URL) throws -> [[UInt8]] {
        let text: String
        do {
            text = try String(contentsOf: file, encoding: .utf8)
        } catch {
            throw ServingError("cannot read the HTTP token file \(file.path): \(error.localizedDescription)")
        }
        let tokens = text.split(whereSeparator: \.isNewline)
            .map { $0.trimmingCharacters(in: .whitespaces) }
            .filter { !$0.isEmpty && !$0.hasPrefix("#") }
        guard !tokens.isEmpty else { throw ServingError("the HTTP token file \(file.path) holds no token (one a line)") }
        if let spaced = tokens.firstIndex(where: { $0.contains(" ") }) {
            throw ServingError("the HTTP token file \(file.path): token \(spaced + 1) contains a space; a bearer token cannot")
        }
        return tokens.map { Array($0.utf8) }
    }
}
