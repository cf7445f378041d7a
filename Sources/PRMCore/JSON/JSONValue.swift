/// A JSON document as read by `JSONReader`: the types RFC 8259 has, nothing guessed.
///
/// Why not `JSONSerialization`: on Linux a JSON `true` comes back as an NSNumber that is
/// indistinguishable from `1`, numbers lose their spelling (an echoed request id must come back
/// as it was sent), and duplicate keys are silently merged. Here every value keeps its JSON type,
/// numbers keep their text, and objects keep their members in order.
public enum JSONValue: Sendable, Equatable {
    case null
    case bool(Bool)
    case number(JSONNumber)
    case string(String)
    case array([JSONValue])
    case object(JSONObject)

    public var kind: JSONKind {
        switch self {
        case .null: return .null
        case .bool: return .boolean
        case .number: return .number
        case .string: return .string
        case .array: return .array
        case .object: return .object
        }
    }

    public var string: String? { if case .string(let s) = self { return s } else { return nil } }
    public var number: JSONNumber? { if case .number(let n) = self { return n } else { return nil } }
    public var bool: Bool? { if case .bool(let b) = self { return b } else { return nil } }
    public var array: [JSONValue]? { if case .array(let a) = self { return a } else { return nil } }
    public var object: JSONObject? { if case .object(let o) = self { return o } else { return nil } }
    public var isNull: Bool { if case .null = self { return true } else { return false } }
}

/// A JSON number with its original spelling: `value` for arithmetic, `text` to echo it unchanged.
public struct JSONNumber: Sendable, Equatable {
    /// The number exactly as written in the document (`1`, `-0.5`, `1e400`).
    public let text: String
    /// Its nearest Double; infinite when the text overflows (`1e400`).
    public let value: Double

    public init(text: String) {
        self.text = text
        value = Double(text) ?? .nan
    }

    public init(_ value: Int) {
        text = String(value)
        self.value = Double(value)
    }

    /// The number as an Int when its value is a whole number that fits (`3`, `3.0`, `3e0`): JSON
    /// Schema's "integer", which judges the value, not the spelling.
    public var integer: Int? {
        if let exact = Int(text) { return exact }
        guard value.isFinite, value == value.rounded(), abs(value) < 9.0e15 else { return nil }
        return Int(value)
    }
}

/// A JSON object's members in document order; keys are unique (the reader refuses duplicates).
public struct JSONObject: Sendable, Equatable {
    public private(set) var members: [(key: String, value: JSONValue)]

    public init(_ members: [(key: String, value: JSONValue)] = []) { self.members = members }

    public subscript(key: String) -> JSONValue? {
        members.first { $0.key == key }?.value
    }

    public var keys: [String] { members.map(\.key) }

    public static func == (a: JSONObject, b: JSONObject) -> Bool {
        a.members.count == b.members.count && zip(a.members, b.members).allSatisfy { $0.key == $1.key && $0.value == $1.value }
    }
}

/// A JSON value's type, in the words error messages use ("expected a string, got number").
public enum JSONKind: String, Sendable {
    case string, number, boolean, null, array, object

    /// "a string", "an array", "null": for sentences like "top level is an array".
    public var withArticle: String {
        switch self {
        case .null: return "null"
        case .array, .object: return "an \(rawValue)"
        default: return "a \(rawValue)"
        }
    }
}
