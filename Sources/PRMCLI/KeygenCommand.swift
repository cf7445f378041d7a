import Foundation
import PRMCore
import PRMServing

/// `prm keygen NAME`: a CURVE key pair for the service's authentication.
enum KeygenCommand: Subcommand {
    static let spec = CommandSpec(
        name: "keygen",
        abstract: "Make a CURVE key pair (NAME.pub and NAME.key) for authenticated serving.",
        discussion: """
        Writes NAME.pub (the public key, to share) and NAME.key (the secret key, mode 0600), each \
        holding one 40-character Z85 key on its first line: the format of pyzmq's \
        zmq.curve_keypair(), so keys made either way work with both. Servers and proxies take \
        --curve-secret-key NAME.key and --allow-keys DIR (a folder of the clients' *.pub files, \
        re-read on SIGHUP); clients take their own NAME.key and the server's NAME.pub. Existing \
        files are not overwritten unless --force is given.

        Example:
          prm keygen keys/server && prm keygen clients/alice
          prm serve --model runs/prm --bind tcp://0.0.0.0:5555 --curve-secret-key keys/server.key --allow-keys clients
        """,
        options: [.flag("force", help: "Replace existing key files.")],
        positionals: [.required("name", help: "Path stem of the two files (NAME.pub, NAME.key).")])

    static func run<Out: TextOutputStream>(_ arguments: ParsedArguments, output out: inout Out) throws -> Int32 {
        let name = URL(fileURLWithPath: arguments.positional("name") ?? "")
        let files = [name.appendingPathExtension("pub"), name.appendingPathExtension("key")]
        if !arguments.flag("force"), let existing = files.first(where: { FileManager.default.fileExists(atPath: $0.path) }) {
            throw CLIError("\(existing.path) exists; choose another name or pass --force")
        }
        try OutputFolder.create(name.deletingLastPathComponent())
        let pair = try Curve.generate()
        try Curve.writeKeyPair(pair, name: name)
        out.write("\(files[0].path)\n\(files[1].path)\n")
        return 0
    }
}
