import Foundation

/// Appends one JSON object per line and flushes it, so the log survives an interrupted run.
final class JSONLogWriter: @unchecked Sendable {
    private let handle: FileHandle
    private let encoder = JSONEncoder()

    init(url: URL, append: Bool) throws {
        if !append || !FileManager.default.fileExists(atPath: url.path) {
            guard FileManager.default.createFile(atPath: url.path, contents: nil) else { throw CLIError("\(url.path): cannot create") }
        }
        handle = try FileHandle(forWritingTo: url)
        handle.seekToEndOfFile()
        encoder.outputFormatting = [.sortedKeys]
    }

    deinit { try? handle.close() }

    func write<T: Encodable>(_ value: T) {
        guard let data = try? encoder.encode(value) else { return }
        handle.write(data + Data("\n".utf8))
    }
}
