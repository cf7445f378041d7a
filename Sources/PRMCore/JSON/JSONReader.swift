import Foundation

/// A strict RFC 8259 reader working on UTF-8 bytes in place: the one JSON parser of prm.
///
/// Two ways to read a document:
/// - `readDocument()` builds the whole value (`JSONValue`), refusing duplicate keys and nesting
///   deeper than `maxDepth`: the service parses every request this way.
/// - `readMembers(wanted:)` decodes only the named string and list members of a top-level object
///   and validates everything else without building it: the training-data reader uses it so a
///   100k-row file never becomes 100k dictionaries (a list is built: a prompt's chat messages).
/// Errors carry the byte offset and say what was expected, so messages can point at the byte.

/// A syntax error: `offset` is the 0-based byte offset in the bytes given to the reader.
public struct JSONSyntaxError: Error, Sendable, CustomStringConvertible {
    public let offset: Int
    public let message: String

    public var description: String { "invalid JSON at byte \(offset + 1): \(message)" }
}

/// A requested member's value: its decoded text, its elements when it is a list (a prompt's chat
/// messages), or the kind of the other value found there.
public enum JSONFieldValue: Sendable {
    case string(String)
    case list([JSONValue])
    case other(JSONKind)
}

public struct JSONReader {
    /// Deeper nesting is refused rather than risking the stack.
    public static let defaultMaxDepth = 512

    public enum TopLevel {
        /// `values[k]` belongs to `wanted[k]`; `duplicates` lists indices of wanted keys seen twice.
        case object(values: [JSONFieldValue?], duplicates: [Int])
        case other(JSONKind)
    }

    private let bytes: UnsafeBufferPointer<UInt8>
    private let maxDepth: Int
    private var i = 0

    /// `bytes` must already be valid UTF-8 (the caller checks, so it can name the line).
    public init(_ bytes: UnsafeBufferPointer<UInt8>, maxDepth: Int = JSONReader.defaultMaxDepth) {
        self.bytes = bytes
        self.maxDepth = maxDepth
    }

    /// Parses `bytes` as one JSON document, checking UTF-8 first.
    public static func parse(_ bytes: UnsafeBufferPointer<UInt8>, maxDepth: Int = defaultMaxDepth) throws(JSONParseError) -> JSONValue {
        if let bad = JSONByte.firstInvalidUTF8(bytes) { throw .invalidUTF8(offset: bad) }
        var reader = JSONReader(bytes, maxDepth: maxDepth)
        do { return try reader.readDocument() } catch { throw .syntax(error) }
    }

    /// Parses `bytes` (any contiguous byte collection) as one JSON document.
    public static func parse<Bytes: ContiguousBytes>(_ data: Bytes, maxDepth: Int = defaultMaxDepth) throws(JSONParseError) -> JSONValue {
        let result: Result<JSONValue, JSONParseError> = data.withUnsafeBytes { raw in
            do throws(JSONParseError) { return .success(try parse(raw.bindMemory(to: UInt8.self), maxDepth: maxDepth)) } catch { return .failure(error) }
        }
        return try result.get()
    }

    /// Reads the whole input as exactly one JSON value (surrounding whitespace allowed).
    public mutating func readDocument() throws(JSONSyntaxError) -> JSONValue {
        skipWhitespace()
        let value = try value(depth: 0, build: true)
        try expectEnd()
        return value
    }

    /// Reads the whole input as exactly one JSON value, decoding only the `wanted` string and
    /// list members of a top-level object.
    public mutating func readMembers(wanted: [String]) throws(JSONSyntaxError) -> TopLevel {
        skipWhitespace()
        let result: TopLevel
        if i < bytes.count, bytes[i] == JSONByte.openBrace {
            result = try wantedMembers(wanted)
        } else {
            result = .other(try value(depth: 0, build: false).kind)
        }
        try expectEnd()
        return result
    }

    private mutating func expectEnd() throws(JSONSyntaxError) {
        skipWhitespace()
        if i < bytes.count { throw fail("unexpected \(describeByte(at: i)) after the value") }
    }

    // MARK: - Objects and values

    private mutating func wantedMembers(_ wanted: [String]) throws(JSONSyntaxError) -> TopLevel {
        var values = [JSONFieldValue?](repeating: nil, count: wanted.count)
        var duplicates: [Int] = []
        try members(depth: 0) { (reader: inout JSONReader, key: String) throws(JSONSyntaxError) in
            guard let k = wanted.firstIndex(of: key) else {
                _ = try reader.value(depth: 1, build: false)
                return
            }
            let value: JSONFieldValue
            if reader.i < reader.bytes.count, reader.bytes[reader.i] == JSONByte.quote {
                value = .string(try reader.string(decode: true))
            } else if reader.i < reader.bytes.count, reader.bytes[reader.i] == JSONByte.openBracket {
                value = .list(try reader.value(depth: 1, build: true).array ?? [])
            } else {
                value = .other(try reader.value(depth: 1, build: false).kind)
            }
            if values[k] != nil { duplicates.append(k) }
            values[k] = value
        }
        return .object(values: values, duplicates: duplicates)
    }

    /// Reads one value at the cursor. Without `build` it validates and steps over the value,
    /// returning an empty placeholder of the right kind (nothing is allocated for skipped text).
    private mutating func value(depth: Int, build: Bool) throws(JSONSyntaxError) -> JSONValue {
        guard i < bytes.count else { throw expected("a value") }
        // A container read at `depth` is nesting level depth + 1: the (maxDepth + 1)-th level is refused.
        if bytes[i] == JSONByte.openBrace || bytes[i] == JSONByte.openBracket, depth >= maxDepth {
            throw fail("nested deeper than \(maxDepth) levels")
        }
        switch bytes[i] {
        case JSONByte.quote:
            return .string(try string(decode: build))
        case JSONByte.openBrace:
            var object: [(key: String, value: JSONValue)] = []
            var seen: Set<String> = []
            try members(depth: depth) { (reader: inout JSONReader, key: String) throws(JSONSyntaxError) in
                let keyStart = reader.i
                let member = try reader.value(depth: depth + 1, build: build)
                guard build else { return }
                // RFC 8259 leaves duplicate names undefined; parsers disagree on which one wins,
                // so a request that has them is refused rather than half-understood.
                guard seen.insert(key).inserted else { throw reader.fail("duplicate key '\(key)'", at: keyStart) }
                object.append((key, member))
            }
            return .object(JSONObject(object))
        case JSONByte.openBracket:
            i += 1
            skipWhitespace()
            var elements: [JSONValue] = []
            if i < bytes.count, bytes[i] == JSONByte.closeBracket { i += 1; return .array(elements) }
            while true {
                skipWhitespace()
                let element = try value(depth: depth + 1, build: build)
                if build { elements.append(element) }
                skipWhitespace()
                guard i < bytes.count else { throw expected("',' or ']'") }
                if bytes[i] == JSONByte.comma { i += 1; continue }
                if bytes[i] == JSONByte.closeBracket { i += 1; return .array(elements) }
                throw expected("',' or ']'")
            }
        case UInt8(ascii: "t"):
            try literal("true")
            return .bool(true)
        case UInt8(ascii: "f"):
            try literal("false")
            return .bool(false)
        case UInt8(ascii: "n"):
            try literal("null")
            return .null
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            let start = i
            try number()
            guard build else { return .number(JSONNumber(0)) }
            return .number(JSONNumber(text: String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<i]), as: UTF8.self)))
        default:
            throw expected("a value")
        }
    }

    /// Walks an object's members from its `{`, calling `member` with each key and the cursor
    /// on the member's value (which `member` must consume).
    private mutating func members(depth: Int, _ member: (inout JSONReader, String) throws(JSONSyntaxError) -> Void) throws(JSONSyntaxError) {
        i += 1  // '{'
        skipWhitespace()
        if i < bytes.count, bytes[i] == JSONByte.closeBrace { i += 1; return }
        while true {
            skipWhitespace()
            guard i < bytes.count, bytes[i] == JSONByte.quote else { throw expected("a key in double quotes") }
            let key = try string(decode: true)
            skipWhitespace()
            guard i < bytes.count, bytes[i] == JSONByte.colon else { throw expected("':' after the key") }
            i += 1
            skipWhitespace()
            try member(&self, key)
            skipWhitespace()
            guard i < bytes.count else { throw expected("',' or '}'") }
            if bytes[i] == JSONByte.comma { i += 1; continue }
            if bytes[i] == JSONByte.closeBrace { i += 1; return }
            throw expected("',' or '}'")
        }
    }

    private mutating func literal(_ word: StaticString) throws(JSONSyntaxError) {
        let start = i
        let count = word.utf8CodeUnitCount
        let matches = word.withUTF8Buffer { w in
            bytes.count - start >= count && (0..<count).allSatisfy { bytes[start + $0] == w[$0] }
        }
        guard matches else { throw expected("a value") }
        i += count
    }

    /// `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`; what follows is the caller's business.
    private mutating func number() throws(JSONSyntaxError) {
        let start = i
        if bytes[i] == UInt8(ascii: "-") { i += 1 }
        guard i < bytes.count, JSONByte.isDigit(bytes[i]) else { throw fail("invalid number", at: start) }
        if bytes[i] == UInt8(ascii: "0") { i += 1 } else { skipDigits() }
        if i < bytes.count, bytes[i] == UInt8(ascii: ".") {
            i += 1
            guard i < bytes.count, JSONByte.isDigit(bytes[i]) else { throw fail("invalid number", at: start) }
            skipDigits()
        }
        if i < bytes.count, bytes[i] == UInt8(ascii: "e") || bytes[i] == UInt8(ascii: "E") {
            i += 1
            if i < bytes.count, bytes[i] == UInt8(ascii: "+") || bytes[i] == UInt8(ascii: "-") { i += 1 }
            guard i < bytes.count, JSONByte.isDigit(bytes[i]) else { throw fail("invalid number", at: start) }
            skipDigits()
        }
    }

    private mutating func skipDigits() {
        while i < bytes.count, JSONByte.isDigit(bytes[i]) { i += 1 }
    }

    // MARK: - Strings

    /// Reads the string starting at the opening quote. Without `decode` it only validates and
    /// returns "". A string without escapes is built straight from the line's bytes; escapes send
    /// the text through a scratch buffer.
    private mutating func string(decode: Bool) throws(JSONSyntaxError) -> String {
        let open = i
        i += 1
        var runStart = i
        var scratch: [UInt8] = []
        var escaped = false
        while true {
            guard i < bytes.count else { throw fail("unterminated string", at: open) }
            let b = bytes[i]
            if b == JSONByte.quote {
                let end = i
                i += 1
                guard decode else { return "" }
                if !escaped { return String(decoding: UnsafeBufferPointer(rebasing: bytes[runStart..<end]), as: UTF8.self) }
                scratch.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[runStart..<end]))
                return String(decoding: scratch, as: UTF8.self)
            }
            if b == JSONByte.backslash {
                if decode { scratch.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[runStart..<i])) }
                escaped = true
                let escapeStart = i
                i += 1
                guard i < bytes.count else { throw fail("unterminated string", at: open) }
                let plain: UInt8?
                switch bytes[i] {
                case JSONByte.quote: plain = JSONByte.quote
                case JSONByte.backslash: plain = JSONByte.backslash
                case UInt8(ascii: "/"): plain = UInt8(ascii: "/")
                case UInt8(ascii: "b"): plain = 0x08
                case UInt8(ascii: "f"): plain = 0x0C
                case UInt8(ascii: "n"): plain = 0x0A
                case UInt8(ascii: "r"): plain = 0x0D
                case UInt8(ascii: "t"): plain = 0x09
                case UInt8(ascii: "u"): plain = nil
                default: throw fail("invalid escape '\\\(describeByte(at: i, quoted: false))' in a string", at: escapeStart)
                }
                if let plain {
                    if decode { scratch.append(plain) }
                    i += 1
                } else {
                    let scalar = try unicodeEscape(escapeStart: escapeStart)
                    if decode { UTF8.encode(scalar) { scratch.append($0) } }
                }
                runStart = i
                continue
            }
            // RFC 8259 §7: control characters must be escaped inside strings.
            if b < 0x20 { throw fail("unescaped control character U+\(JSONByte.hex4(UInt32(b))) in a string") }
            i += 1
        }
    }

    /// At the `u` of `\uXXXX`; consumes the escape, and its low-surrogate partner if it is a high one.
    private mutating func unicodeEscape(escapeStart: Int) throws(JSONSyntaxError) -> Unicode.Scalar {
        i += 1  // 'u'
        let first = try hexQuad(escapeStart: escapeStart)
        var value = first
        if (0xD800...0xDBFF).contains(first) {
            // A high surrogate is only meaningful followed by `\u` and a low surrogate; Swift strings
            // cannot hold a lone one, so it is an error (Python would accept it, then fail to encode).
            guard i + 1 < bytes.count, bytes[i] == JSONByte.backslash, bytes[i + 1] == UInt8(ascii: "u") else {
                throw fail("unpaired surrogate \\u\(JSONByte.hex4(first)) in a string", at: escapeStart)
            }
            let lowStart = i
            i += 2
            let second = try hexQuad(escapeStart: lowStart)
            guard (0xDC00...0xDFFF).contains(second) else {
                throw fail("unpaired surrogate \\u\(JSONByte.hex4(first)) in a string", at: escapeStart)
            }
            value = 0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00)
        } else if (0xDC00...0xDFFF).contains(first) {
            throw fail("unpaired surrogate \\u\(JSONByte.hex4(first)) in a string", at: escapeStart)
        }
        guard let scalar = Unicode.Scalar(value) else {
            throw fail("invalid escape \\u\(JSONByte.hex4(first))", at: escapeStart)
        }
        return scalar
    }

    private mutating func hexQuad(escapeStart: Int) throws(JSONSyntaxError) -> UInt32 {
        var value: UInt32 = 0
        for _ in 0..<4 {
            guard i < bytes.count, let digit = JSONByte.hexValue(bytes[i]) else {
                throw fail("invalid \\u escape: expected 4 hex digits", at: escapeStart)
            }
            value = value << 4 | UInt32(digit)
            i += 1
        }
        return value
    }

    // MARK: - Helpers

    private mutating func skipWhitespace() {
        while i < bytes.count, JSONByte.isJSONWhitespace(bytes[i]) { i += 1 }
    }

    fileprivate func fail(_ message: String, at offset: Int? = nil) -> JSONSyntaxError {
        JSONSyntaxError(offset: offset ?? i, message: message)
    }

    private func expected(_ what: String) -> JSONSyntaxError {
        if i >= bytes.count { return fail("unexpected end of line, expected \(what)") }
        return fail("unexpected \(describeByte(at: i)), expected \(what)")
    }

    /// The character at `offset` for a message: `'x'`, `'“' (U+201C)` or `U+0007`.
    private func describeByte(at offset: Int, quoted: Bool = true) -> String {
        var iterator = UnsafeBufferPointer(rebasing: bytes[offset...]).makeIterator()
        var decoder = UTF8()
        guard case .scalarValue(let scalar) = decoder.decode(&iterator) else {
            return "byte 0x\(String(bytes[offset], radix: 16, uppercase: true))"
        }
        if scalar.value < 0x20 || scalar.value == 0x7F { return "U+\(JSONByte.hex4(scalar.value))" }
        let shown = quoted ? "'\(Character(scalar))'" : String(Character(scalar))
        return scalar.isASCII ? shown : "\(shown) (U+\(JSONByte.hex4(scalar.value)))"
    }
}

/// Why a document could not be parsed: bytes that are not UTF-8, or UTF-8 that is not JSON.
public enum JSONParseError: Error, Sendable, CustomStringConvertible {
    case invalidUTF8(offset: Int)
    case syntax(JSONSyntaxError)

    public var description: String {
        switch self {
        case .invalidUTF8(let offset): return "invalid UTF-8 at byte \(offset + 1)"
        case .syntax(let error): return error.description
        }
    }
}
