import Foundation
import PRMCore

/// Input files of the commands, the benchmarks' (PRMBench) included.
public enum InputFiles {
    /// A file's bytes, or stdin for "-"; a missing file names its path.
    public static func read(_ path: String) throws -> Data {
        if path == "-" { return FileHandle.standardInput.readDataToEndOfFile() }
        guard FileManager.default.fileExists(atPath: path) else { throw CLIError("\(path): file not found") }
        do { return try Data(contentsOf: URL(fileURLWithPath: path)) } catch { throw CLIError("\(path): cannot read: \(error.localizedDescription)") }
    }

    /// --groups of eval and ppo: a JSON object mapping user ids to group labels.
    static func groups(_ path: String) throws -> [String: String] {
        let data = try InputFiles.read(path)
        guard let object = (try? JSONReader.parse(data))?.object else {
            throw CLIError("\(path): expected a JSON object mapping user ids to labels")
        }
        var groups: [String: String] = [:]
        for (user, value) in object.members {
            guard let label = value.string else { throw CLIError("\(path): label of user '\(user)' is not a string") }
            groups[user] = label
        }
        return groups
    }
}
