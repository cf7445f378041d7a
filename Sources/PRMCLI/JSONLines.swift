import Foundation
import PRMCore

/// JSONL input of the CLI commands (and the benchmarks', PRMBench), through prm's one strict JSON
/// reader; errors name the line.
public enum JSONLines {
    /// (line number, value) for each non-blank line.
    public static func values(_ data: Data, name: String) throws -> [(line: Int, value: JSONValue)] {
        let lines = data.withUnsafeBytes { JSONValueLines.parse($0) }
        if let (line, error) = lines.firstError { throw CLIError("\(name):\(line)", cause: error) }
        return lines.values
    }

    /// One non-blank line's value (streamed input reads a line at a time).
    static func value(_ bytes: [UInt8], name: String, line: Int) throws -> JSONValue {
        do { return try JSONReader.parse(bytes) } catch { throw CLIError("\(name):\(line)", cause: error) }
    }

    /// Texts from JSONL lines holding objects with `field` or bare JSON strings.
    static func texts(_ data: Data, name: String, field: String) throws -> [String] {
        try values(data, name: name).map { line, value in try text(value, name: name, line: line, field: field) }
    }

    /// The text a line holds: a JSON string, or an object's string `field`.
    static func text(_ value: JSONValue, name: String, line: Int, field: String) throws -> String {
        if let text = value.string { return text }
        if let object = value.object {
            guard let text = object[field]?.string else { throw CLIError("\(name):\(line): field '\(field)' missing or not a string") }
            return text
        }
        throw CLIError("\(name):\(line): expected a JSON object or string, got \(value.kind.withArticle)")
    }
}
