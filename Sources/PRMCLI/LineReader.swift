import Foundation
import PRMCore

/// The non-blank lines of a file or of stdin ("-"), pulled one at a time. The input is read in
/// fixed-size chunks and split by prm's one JSONL line splitter (`JSONLineSplitter`: LF or CRLF,
/// a byte-order mark on line 1 dropped, blank lines counted but skipped), so memory stays bounded
/// by the longest line however long the input is and line numbers match the file's.
final class LineReader {
    let name: String
    /// The number (in the file, from 1) of the line `next()` returned last.
    private(set) var lineNumber = 0
    private let handle: FileHandle
    private var splitter = JSONLineSplitter(PendingLines())
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

    /// The next non-blank line's bytes without its line end, or nil after the last one.
    func next() throws -> [UInt8]? {
        while true {
            if let (line, bytes) = splitter.consumer.popFirst() {
                lineNumber = line
                return bytes
            }
            if atEnd { return nil }
            let data: Data?
            do { data = try handle.read(upToCount: Self.chunk) } catch { throw CLIError("\(name): cannot read: \(error.localizedDescription)") }
            if let data, !data.isEmpty {
                data.withUnsafeBytes { splitter.feed($0) }
            } else {
                splitter.endOfInput()
                atEnd = true
            }
        }
    }
}

/// The lines one chunk produced, waiting to be pulled.
private struct PendingLines: JSONLineConsumer {
    private var lines: [(line: Int, bytes: [UInt8])] = []
    private var first = 0

    mutating func consume(line: Int, bytes: UnsafeBufferPointer<UInt8>, dropped _: Int) {
        lines.append((line, Array(bytes)))
    }

    mutating func popFirst() -> (line: Int, bytes: [UInt8])? {
        guard first < lines.count else {
            lines.removeAll(keepingCapacity: true)
            first = 0
            return nil
        }
        defer { first += 1 }
        return lines[first]
    }
}
