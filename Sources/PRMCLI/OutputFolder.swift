import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The folder a command writes its results to (`--out`).
enum OutputFolder {
    /// Creates `folder` and any missing parents. A failure names the folder and the system's
    /// reason ("cannot create output folder /proc/x: No such file or directory"), where
    /// Foundation's createDirectory says only "The operation could not be completed".
    static func create(_ folder: URL) throws {
        let path = folder.standardizedFileURL.path
        if let problem = problem(creating: path) { throw CLIError("cannot create output folder \(path): \(problem)") }
    }

    /// Why `path` could not be made a folder (its own or a parent's mkdir), or nil on success.
    private static func problem(creating path: String) -> String? {
        var isFolder: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isFolder) {
            return isFolder.boolValue ? nil : "\(path) exists and is not a folder"
        }
        let parent = (path as NSString).deletingLastPathComponent
        if !parent.isEmpty, parent != path, let problem = problem(creating: parent) { return problem }
        guard mkdir(path, 0o777) == 0 || errno == EEXIST else { return String(cString: strerror(errno)) }
        return nil
    }
}
