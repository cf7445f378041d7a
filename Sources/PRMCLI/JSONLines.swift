import Foundation

enum JSONLines {
    /// Texts from JSONL lines holding objects with `field` or bare JSON strings.
    static func texts(_ data: Data, name: String, field: String) throws -> [String] {
        try objects(data, name: name).map { line, value in
            if let text = value as? String { return text }
            if let object = value as? [String: Any] {
                guard let text = object[field] as? String else { throw CLIError("\(name):\(line): field '\(field)' missing or not a string") }
                return text
            }
            throw CLIError("\(name):\(line): expected a JSON object or string")
        }
    }

    /// (line number, parsed value) for each non-blank line; errors name the line.
    static func objects(_ data: Data, name: String) throws -> [(Int, Any)] {
        var result: [(Int, Any)] = []
        var lineNumber = 0
        for raw in data.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false) {
            lineNumber += 1
            let bytes = Data(raw)
            guard String(data: bytes, encoding: .utf8) != nil else { throw CLIError("\(name):\(lineNumber): invalid UTF-8") }
            if bytes.allSatisfy({ $0 == 0x20 || $0 == 0x09 || $0 == 0x0D }) { continue }
            do {
                result.append((lineNumber, try JSONSerialization.jsonObject(with: bytes, options: [.fragmentsAllowed])))
            } catch {
                throw CLIError("\(name):\(lineNumber): invalid JSON")
            }
        }
        return result
    }
}
