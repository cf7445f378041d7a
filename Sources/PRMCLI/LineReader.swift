import Foundation

/// The lines of a file or of stdin ("-"), read in fixed-size chunks: memory stays bounded by the
/// longest line however long the input is. Lines are split at "\n" and numbered from 1.
final class LineReader {
    let name: String
    /// The number of the line `next()` returned last.
    private(set) var lineNumber = 0
    private let handle: FileHandle
    private var buffer: [UInt8] = []
    private var start = 0
    private var atEnd = false
    private static let chunk = 1 << 16

    /// Opens `path` ("-" for stdin); a missing or unreadable file is an error naming it.
    init(path: String) throws {
        name = path == "-" ? "stdin" : path
        if path == "-" {
            handle = .standardInput
            return
        }
        guard FileManager.default.fileExists(atPath: path) else { throw CLIError("\(path): file not found") }
        guard let handle = FileHandle(forReadingAtPath: path) else { throw CLIError("\(path): cannot read") }
        self.handle = handle
    }

    /// The next line's bytes without its "\n", or nil after the last one.
    func next() throws -> ArraySlice<UInt8>? {
        while true {
            if let newline = buffer[start...].firstIndex(of: UInt8(ascii: "\n")) {
                let line = buffer[start..<newline]
                start = newline + 1
                lineNumber += 1
                return line
            }
            if atEnd {
                guard start < buffer.count else { return nil }
                let line = buffer[start...]
                start = buffer.count
                lineNumber += 1
                return line
            }
            // Keep the unfinished line, then read more.
            buffer.removeSubrange(0..<start)
            start = 0
            let data: Data?
            do { data = try handle.read(upToCount: Self.chunk) } catch { throw CLIError("\(name): cannot read: \(error.localizedDescription)") }
            if let data, !data.isEmpty { buffer.append(contentsOf: data) } else { atEnd = true }
        }
    }
}
