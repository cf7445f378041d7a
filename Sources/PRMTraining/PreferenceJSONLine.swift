/// A strict RFC 8259 reader for one JSONL line, working on the line's UTF-8 bytes in place.
///
/// Why not JSONSerialization: we want the JSON type of a wrong value named exactly (on Linux a
/// JSON `true` comes back as an NSNumber, indistinguishable from `1`), the byte where a syntax
/// error is, duplicate keys caught, and no intermediate `[String: Any]` for every row of a
/// 100k-row file. Only the members the caller asks for are decoded into Strings; every other
/// value is validated and skipped without being built.

/// A JSON value's type, in the words error messages use ("expected a string, got number").
enum JSONKind: String {
    case string, number, boolean, null, array, object

    /// "a string", "an array", "null": for sentences like "top level is an array".
    var withArticle: String {
        switch self {
        case .null: return "null"
        case .array, .object: return "an \(rawValue)"
        default: return "a \(rawValue)"
        }
    }
}

/// A syntax error: `offset` is the 0-based byte offset in the bytes given to the reader.
struct JSONSyntaxError: Error {
    let offset: Int
    let message: String
}

/// A requested member's value: its decoded text, or the kind of the non-string found there.
enum JSONFieldValue {
    case string(String)
    case other(JSONKind)
}

struct JSONLineReader {
    /// Deeper nesting (only possible in fields we skip) is refused rather than risking the stack.
    static let maxDepth = 512

    enum TopLevel {
        /// `values[k]` belongs to `wanted[k]`; `duplicates` lists indices of wanted keys seen twice.
        case object(values: [JSONFieldValue?], duplicates: [Int])
        case other(JSONKind)
    }

    private let bytes: UnsafeBufferPointer<UInt8>
    private var i = 0

    /// `bytes` must already be valid UTF-8 (the caller checks, so it can name the line).
    init(_ bytes: UnsafeBufferPointer<UInt8>) { self.bytes = bytes }

    /// Reads the whole line as exactly one JSON value (surrounding whitespace allowed).
    mutating func readLine(wanted: [String]) throws(JSONSyntaxError) -> TopLevel {
        skipWhitespace()
        let result: TopLevel
        if i < bytes.count, bytes[i] == JSONByte.openBrace {
            result = try readObject(wanted: wanted)
        } else {
            result = .other(try skipValue(depth: 0))
        }
        skipWhitespace()
        if i < bytes.count { throw fail("unexpected \(describeByte(at: i)) after the value") }
        return result
    }

    // MARK: - Objects and values

    private mutating func readObject(wanted: [String]) throws(JSONSyntaxError) -> TopLevel {
        var values = [JSONFieldValue?](repeating: nil, count: wanted.count)
        var duplicates: [Int] = []
        i += 1  // '{'
        skipWhitespace()
        if i < bytes.count, bytes[i] == JSONByte.closeBrace {
            i += 1
            return .object(values: values, duplicates: duplicates)
        }
        while true {
            skipWhitespace()
            guard i < bytes.count, bytes[i] == JSONByte.quote else { throw expected("a key in double quotes") }
            let key = try string(decode: true)
            skipWhitespace()
            guard i < bytes.count, bytes[i] == JSONByte.colon else { throw expected("':' after the key") }
            i += 1
            skipWhitespace()
            if let k = wanted.firstIndex(of: key) {
                let value: JSONFieldValue
                if i < bytes.count, bytes[i] == JSONByte.quote {
                    value = .string(try string(decode: true))
                } else {
                    value = .other(try skipValue(depth: 1))
                }
                if values[k] != nil { duplicates.append(k) }
                values[k] = value
            } else {
                _ = try skipValue(depth: 1)
            }
            skipWhitespace()
            guard i < bytes.count else { throw expected("',' or '}'") }
            if bytes[i] == JSONByte.comma { i += 1; continue }
            if bytes[i] == JSONByte.closeBrace { i += 1; return .object(values: values, duplicates: duplicates) }
            throw expected("',' or '}'")
        }
    }

    /// Validates one value of any type and steps over it.
    private mutating func skipValue(depth: Int) throws(JSONSyntaxError) -> JSONKind {
        guard depth <= Self.maxDepth else { throw fail("nested deeper than \(Self.maxDepth) levels") }
        guard i < bytes.count else { throw expected("a value") }
        switch bytes[i] {
        case JSONByte.quote:
            _ = try string(decode: false)
            return .string
        case JSONByte.openBrace:
            i += 1
            skipWhitespace()
            if i < bytes.count, bytes[i] == JSONByte.closeBrace { i += 1; return .object }
            while true {
                skipWhitespace()
                guard i < bytes.count, bytes[i] == JSONByte.quote else { throw expected("a key in double quotes") }
                _ = try string(decode: false)
                skipWhitespace()
                guard i < bytes.count, bytes[i] == JSONByte.colon else { throw expected("':' after the key") }
                i += 1
                skipWhitespace()
                _ = try skipValue(depth: depth + 1)
                skipWhitespace()
                guard i < bytes.count else { throw expected("',' or '}'") }
                if bytes[i] == JSONByte.comma { i += 1; continue }
                if bytes[i] == JSONByte.closeBrace { i += 1; return .object }
                throw expected("',' or '}'")
            }
        case JSONByte.openBracket:
            i += 1
            skipWhitespace()
            if i < bytes.count, bytes[i] == JSONByte.closeBracket { i += 1; return .array }
            while true {
                skipWhitespace()
                _ = try skipValue(depth: depth + 1)
                skipWhitespace()
                guard i < bytes.count else { throw expected("',' or ']'") }
                if bytes[i] == JSONByte.comma { i += 1; continue }
                if bytes[i] == JSONByte.closeBracket { i += 1; return .array }
                throw expected("',' or ']'")
            }
        case UInt8(ascii: "t"):
            try literal("true")
            return .boolean
        case UInt8(ascii: "f"):
            try literal("false")
            return .boolean
        case UInt8(ascii: "n"):
            try literal("null")
            return .null
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            try number()
            return .number
        default:
            throw expected("a value")
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

    private func fail(_ message: String, at offset: Int? = nil) -> JSONSyntaxError {
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

/// Byte constants and classes shared by the JSON reader and the line splitter.
enum JSONByte {
    static let quote = UInt8(ascii: "\"")
    static let backslash = UInt8(ascii: "\\")
    static let colon = UInt8(ascii: ":")
    static let comma = UInt8(ascii: ",")
    static let openBrace = UInt8(ascii: "{")
    static let closeBrace = UInt8(ascii: "}")
    static let openBracket = UInt8(ascii: "[")
    static let closeBracket = UInt8(ascii: "]")
    static let newline = UInt8(ascii: "\n")
    static let carriageReturn = UInt8(ascii: "\r")

    /// RFC 8259 whitespace: space, tab, line feed, carriage return (nothing else).
    @inline(__always)
    static func isJSONWhitespace(_ b: UInt8) -> Bool { b == 0x20 || b == 0x09 || b == 0x0A || b == 0x0D }

    @inline(__always)
    static func isDigit(_ b: UInt8) -> Bool { b >= UInt8(ascii: "0") && b <= UInt8(ascii: "9") }

    static func hexValue(_ b: UInt8) -> UInt8? {
        switch b {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return b - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return b - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return b - UInt8(ascii: "A") + 10
        default: return nil
        }
    }

    /// `U+` style hex, at least 4 digits: 9 -> "0009".
    static func hex4(_ value: UInt32) -> String {
        let digits = String(value, radix: 16, uppercase: true)
        return String(repeating: "0", count: max(0, 4 - digits.count)) + digits
    }

    /// UTF-8 validation per RFC 3629 / Unicode Table 3-7 (no overlong forms, no surrogates, nothing
    /// above U+10FFFF). Returns the 0-based offset of the first byte of the first bad sequence.
    static func firstInvalidUTF8(_ bytes: UnsafeBufferPointer<UInt8>) -> Int? {
        let n = bytes.count
        var i = 0
        while i < n {
            let b0 = bytes[i]
            if b0 < 0x80 { i += 1; continue }
            // The allowed range of the second byte depends on the lead byte (Table 3-7); later bytes are 80...BF.
            let length: Int
            let secondLow: UInt8, secondHigh: UInt8
            switch b0 {
            case 0xC2...0xDF: length = 2; secondLow = 0x80; secondHigh = 0xBF
            case 0xE0: length = 3; secondLow = 0xA0; secondHigh = 0xBF
            case 0xE1...0xEC, 0xEE...0xEF: length = 3; secondLow = 0x80; secondHigh = 0xBF
            case 0xED: length = 3; secondLow = 0x80; secondHigh = 0x9F
            case 0xF0: length = 4; secondLow = 0x90; secondHigh = 0xBF
            case 0xF1...0xF3: length = 4; secondLow = 0x80; secondHigh = 0xBF
            case 0xF4: length = 4; secondLow = 0x80; secondHigh = 0x8F
            default: return i
            }
            guard i + length <= n else { return i }
            let b1 = bytes[i + 1]
            guard b1 >= secondLow && b1 <= secondHigh else { return i }
            for k in 2..<length where bytes[i + k] & 0xC0 != 0x80 { return i }
            i += length
        }
        return nil
    }
}
