import Foundation

/// One line for a Swift `DecodingError`, naming the JSON path of the offending key
/// (`model.vocab`, `added_tokens[0].content`) instead of Swift's dump of coding keys.
/// Config files (config.json, tokenizer.json, the prm section) all report through this.
public struct DecodingProblem: Sendable, Equatable {
    public enum Kind: Sendable, Equatable {
        /// A required key is absent or null.
        case missingKey
        /// A value has the wrong type or an invalid value.
        case invalidValue
        /// The bytes are not JSON at all.
        case notJSON
    }

    public let kind: Kind
    public let message: String

    public init(_ error: DecodingError) {
        switch error {
        case let .keyNotFound(key, context):
            (kind, message) = (.missingKey, "missing field '\(Self.path(context.codingPath + [key]))'")
        case let .valueNotFound(type, context):
            (kind, message) = (.missingKey, "missing field '\(Self.path(context.codingPath))' (it is null, expected \(type))")
        case let .typeMismatch(type, context):
            if context.codingPath.isEmpty {
                (kind, message) = (.invalidValue, "the top level is not a JSON object")
            } else {
                (kind, message) = (.invalidValue, "field '\(Self.path(context.codingPath))' should be \(type)")
            }
        case let .dataCorrupted(context):
            if context.codingPath.isEmpty {
                (kind, message) = (.notJSON, "not valid JSON")
            } else {
                (kind, message) = (.invalidValue, "field '\(Self.path(context.codingPath))': \(context.debugDescription)")
            }
        @unknown default:
            (kind, message) = (.invalidValue, "cannot decode: \(error)")
        }
    }

    /// `a.b[3].c`: array positions as subscripts, keys joined by dots.
    static func path(_ keys: [any CodingKey]) -> String {
        var text = ""
        for key in keys {
            if let index = key.intValue, key.stringValue.hasPrefix("Index") || key.stringValue == "\(index)" {
                text += "[\(index)]"
            } else {
                text += text.isEmpty ? key.stringValue : "." + key.stringValue
            }
        }
        return text
    }
}
