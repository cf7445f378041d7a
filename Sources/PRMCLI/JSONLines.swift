import Foundation

enum JSONLines {
    /// Texts from JSONL lines holding objects with `field` or bare JSON strings.
    static func texts(_ data: Data, name: String, field: String) throws -> [String] {
        try objects(data, name: name).map { line, value in try text(value, name: name, line: line, field: field) }
    }

    /// (line number, parsed value) for each non-blank line; errors name the line.
    static func objects(_ data: Data, name: String) throws -> [(Int, Any)] {
        var result: [(Int, Any)] = []
        var lineNumber = 0
        for raw in data.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false) {
            lineNumber += 1
            if let value = try value(raw, name: name, line: lineNumber) { result.append((lineNumber, value)) }
        }
        return result
    }

    /// One line's parsed value, nil for a blank line; invalid UTF-8 or JSON names the line.
    static func value<Bytes: Collection<UInt8>>(_ raw: Bytes, name: String, line: Int) throws -> Any? {
        let bytes = Data(raw)
        guard String(data: bytes, encoding: .utf8) != nil else { throw CLIError("\(name):\(line): invalid UTF-8") }
        if bytes.allSatisfy({ $0 == 0x20 || $0 == 0x09 || $0 == 0x0D }) { return nil }
        do {
            return try JSONSerialization.jsonObject(with: bytes, options: [.fragmentsAllowed])
        } catch {
            throw CLIError("\(name):\(line): invalid JSON")
        }
    }

    /// The text a line holds: a JSON string, or an object's string `field`.
    static func text(_ value: Any, name: String, line: Int, field: String) throws -> String {
        if let text = value as? String { return text }
        if let object = value as? [String: Any] {
            guard let text = object[field] as? String else { throw CLIError("\(name):\(line): field '\(field)' missing or not a string") }
            return text
        }
        throw CLIError("\(name):\(line): expected a JSON object or string")
    }
}
