import Foundation

enum InputFiles {
    /// A file's bytes, or stdin for "-"; a missing file names its path.
    static func read(_ path: String) throws -> Data {
        if path == "-" { return FileHandle.standardInput.readDataToEndOfFile() }
        guard FileManager.default.fileExists(atPath: path) else { throw CLIError("\(path): file not found") }
        do { return try Data(contentsOf: URL(fileURLWithPath: path)) } catch { throw CLIError("\(path): cannot read: \(error.localizedDescription)") }
    }
}

