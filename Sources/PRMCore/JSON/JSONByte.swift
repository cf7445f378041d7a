/// Byte constants and classes shared by the JSON reader and the line splitter.
public enum JSONByte {
    public static let quote = UInt8(ascii: "\"")
    public static let backslash = UInt8(ascii: "\\")
    public static let colon = UInt8(ascii: ":")
    public static let comma = UInt8(ascii: ",")
    public static let openBrace = UInt8(ascii: "{")
    public static let closeBrace = UInt8(ascii: "}")
    public static let openBracket = UInt8(ascii: "[")
    public static let closeBracket = UInt8(ascii: "]")
    public static let newline = UInt8(ascii: "\n")
    public static let carriageReturn = UInt8(ascii: "\r")

    /// RFC 8259 whitespace: space, tab, line feed, carriage return (nothing else).
    @inline(__always)
    public static func isJSONWhitespace(_ b: UInt8) -> Bool { b == 0x20 || b == 0x09 || b == 0x0A || b == 0x0D }

    @inline(__always)
    public static func isDigit(_ b: UInt8) -> Bool { b >= UInt8(ascii: "0") && b <= UInt8(ascii: "9") }

    public static func hexValue(_ b: UInt8) -> UInt8? {
        switch b {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return b - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return b - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return b - UInt8(ascii: "A") + 10
        default: return nil
        }
    }

    /// `U+` style hex, at least 4 digits: 9 -> "0009".
    public static func hex4(_ value: UInt32) -> String {
        let digits = String(value, radix: 16, uppercase: true)
        return String(repeating: "0", count: max(0, 4 - digits.count)) + digits
    }

    /// UTF-8 validation per RFC 3629 / Unicode Table 3-7 (no overlong forms, no surrogates, nothing
    /// above U+10FFFF). Returns the 0-based offset of the first byte of the first bad sequence.
    public static func firstInvalidUTF8(_ bytes: UnsafeBufferPointer<UInt8>) -> Int? {
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
