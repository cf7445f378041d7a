/// JSON text written directly, for outputs with many numbers (embeddings, scores): Foundation's
/// `JSONSerialization` boxes every value and prints floats through Double with 17 digits, which
/// made writing `prm embed`'s output slower than computing it.
public enum JSONText {
    /// A value JSON cannot hold.
    public struct Unrepresentable: Error, CustomStringConvertible {
        public let description: String
    }

    /// Appends `value` as a JSON string: quotes, backslashes and control characters escaped as
    /// JSONSerialization escapes them; everything else (non-ASCII and "/" included) as is.
    public static func appendString(_ value: String, to out: inout String) {
        out.append("\"")
        if !value.utf8.contains(where: { $0 < 0x20 || $0 == 0x22 || $0 == 0x5C }) {
            out.append(value)
        } else {
            for scalar in value.unicodeScalars {
                switch scalar {
                case "\"": out.append("\\\"")
                case "\\": out.append("\\\\")
                case "\n": out.append("\\n")
                case "\r": out.append("\\r")
                case "\t": out.append("\\t")
                case "\u{08}": out.append("\\b")
                case "\u{0C}": out.append("\\f")
                case let control where control.value < 0x20:
                    let hex = String(control.value, radix: 16)
                    out.append("\\u" + String(repeating: "0", count: 4 - hex.count) + hex)
                default: out.unicodeScalars.append(scalar)
                }
            }
        }
        out.append("\"")
    }

    /// Appends a float as its shortest decimal that reads back to the same Float (Swift's
    /// `description`: "0.012345679", "1e-05", "-0.0", all valid JSON numbers). Throws for NaN
    /// and infinities, which JSON has no numbers for.
    public static func appendNumber(_ value: Float, to out: inout String) throws(Unrepresentable) {
        guard value.isFinite else { throw Unrepresentable(description: "\(value) cannot be written as a JSON number") }
        out.append(value.description)
    }

    /// Appends `[v0,v1,…]`.
    public static func appendArray(_ values: some Collection<Float>, to out: inout String) throws(Unrepresentable) {
        out.append("[")
        var first = true
        for value in values {
            if !first { out.append(",") }
            first = false
            try appendNumber(value, to: &out)
        }
        out.append("]")
    }
}
