/// Writes compact JSON (RFC 8259) into a byte buffer: the one JSON writer for replies, JSONL
/// output and results. Commas are placed by the writer, so callers only open, write and close:
///
///     var w = JSONWriter()
///     w.beginObject()
///     w.key("scores"); w.beginArray(); for s in scores { w.number(s) }; w.endArray()
///     w.endObject()
///
/// Floats are written in their shortest round-trip form (Swift's `description`, which
/// `JSONSerialization` does not use: it goes through Double and prints 17 digits); a non-finite
/// number, which JSON cannot express, is written as `null`.
public struct JSONWriter: Sendable {
    public private(set) var bytes: [UInt8] = []
    /// Per open container: whether it already holds an element (so the next one needs a comma).
    private var filled: [Bool] = []
    /// True right after `key(_:)`: the value that follows needs no comma.
    private var afterKey = false

    public init(capacity: Int = 256) { bytes.reserveCapacity(capacity) }

    public var text: String { String(decoding: bytes, as: UTF8.self) }

    // MARK: - Containers

    public mutating func beginObject() { separate(); bytes.append(UInt8(ascii: "{")); filled.append(false) }
    public mutating func endObject() { filled.removeLast(); bytes.append(UInt8(ascii: "}")) }
    public mutating func beginArray() { separate(); bytes.append(UInt8(ascii: "[")); filled.append(false) }
    public mutating func endArray() { filled.removeLast(); bytes.append(UInt8(ascii: "]")) }

    /// An object member's key; the next call writes its value.
    public mutating func key(_ name: String) {
        separate()
        appendString(name)
        bytes.append(UInt8(ascii: ":"))
        afterKey = true
    }

    // MARK: - Scalars

    public mutating func string(_ value: String) { separate(); appendString(value) }
    public mutating func bool(_ value: Bool) { separate(); appendASCII(value ? "true" : "false") }
    public mutating func null() { separate(); appendASCII("null") }
    public mutating func number(_ value: Int) { separate(); appendASCII(String(value)) }

    public mutating func number(_ value: Float) {
        separate()
        if value.isFinite { appendASCII(value.description) } else { appendASCII("null") }
    }

    public mutating func number(_ value: Double) {
        separate()
        if value.isFinite { appendASCII(value.description) } else { appendASCII("null") }
    }

    /// A number exactly as it was spelt in a document (an echoed request id).
    public mutating func number(_ value: JSONNumber) { separate(); appendASCII(value.text) }

    public mutating func value(_ value: JSONValue) {
        switch value {
        case .null: null()
        case .bool(let b): bool(b)
        case .number(let n): number(n)
        case .string(let s): string(s)
        case .array(let elements):
            beginArray()
            for element in elements { self.value(element) }
            endArray()
        case .object(let object):
            beginObject()
            for member in object.members {
                key(member.key)
                self.value(member.value)
            }
            endObject()
        }
    }

    /// `[x, y, ...]` of floats.
    public mutating func numbers<S: Sequence>(_ values: S) where S.Element == Float {
        beginArray()
        for v in values { number(v) }
        endArray()
    }

    /// `{"key": value, ...}` of scalars, in the order given: a flat record in one call.
    public mutating func object(_ members: KeyValuePairs<String, any JSONScalar>) {
        beginObject()
        for (name, value) in members {
            key(name)
            value.write(to: &self)
        }
        endObject()
    }

    // MARK: - Bytes

    private mutating func separate() {
        if afterKey {
            afterKey = false
            return
        }
        guard let last = filled.indices.last else { return }
        if filled[last] { bytes.append(UInt8(ascii: ",")) } else { filled[last] = true }
    }

    private mutating func appendASCII(_ text: String) { bytes.append(contentsOf: text.utf8) }

    /// A quoted string; `"`, `\` and control characters escaped, everything else as UTF-8.
    private mutating func appendString(_ text: String) {
        bytes.append(JSONByte.quote)
        for b in text.utf8 {
            switch b {
            case JSONByte.quote: bytes.append(JSONByte.backslash); bytes.append(JSONByte.quote)
            case JSONByte.backslash: bytes.append(JSONByte.backslash); bytes.append(JSONByte.backslash)
            case 0x0A: bytes.append(JSONByte.backslash); bytes.append(UInt8(ascii: "n"))
            case 0x0D: bytes.append(JSONByte.backslash); bytes.append(UInt8(ascii: "r"))
            case 0x09: bytes.append(JSONByte.backslash); bytes.append(UInt8(ascii: "t"))
            case 0..<0x20:
                appendASCII("\\u00")
                bytes.append(Self.hexDigit(b >> 4))
                bytes.append(Self.hexDigit(b & 0xF))
            default: bytes.append(b)
            }
        }
        bytes.append(JSONByte.quote)
    }

    private static func hexDigit(_ nibble: UInt8) -> UInt8 {
        nibble < 10 ? UInt8(ascii: "0") + nibble : UInt8(ascii: "a") + nibble - 10
    }
}

/// A value `JSONWriter.object(_:)` writes as one scalar member.
public protocol JSONScalar: Sendable {
    func write(to writer: inout JSONWriter)
}

extension String: JSONScalar { public func write(to writer: inout JSONWriter) { writer.string(self) } }
extension Bool: JSONScalar { public func write(to writer: inout JSONWriter) { writer.bool(self) } }
extension Int: JSONScalar { public func write(to writer: inout JSONWriter) { writer.number(self) } }
extension Float: JSONScalar { public func write(to writer: inout JSONWriter) { writer.number(self) } }
extension Double: JSONScalar { public func write(to writer: inout JSONWriter) { writer.number(self) } }
