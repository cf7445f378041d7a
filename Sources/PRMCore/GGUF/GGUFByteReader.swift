import Foundation

/// Reads a GGUF header's little-endian scalars, strings and metadata values from the mapped
/// file, checking every read against its end: a short file is a `.truncated` error naming what
/// was being read.
struct GGUFByteReader {
    let data: Data
    let path: String
    private(set) var offset = 0

    init(data: Data, path: String) {
        self.data = data
        self.path = path
    }

    private func truncated(_ subject: String?, needing bytes: Int) -> GGUFError {
        GGUFError(path: path, subject: subject, kind: .truncated,
                  problem: "the file ends at byte \(data.count), inside the header (needed \(bytes) bytes at \(offset))")
    }

    mutating func scalar<T: FixedWidthInteger>(_ type: T.Type, subject: String?) throws -> T {
        let size = MemoryLayout<T>.size
        guard offset + size <= data.count else { throw truncated(subject, needing: size) }
        let value = data.withUnsafeBytes { T(littleEndian: $0.loadUnaligned(fromByteOffset: offset, as: T.self)) }
        offset += size
        return value
    }

    mutating func string(subject: String?) throws -> String {
        let length = try scalar(UInt64.self, subject: subject)
        guard length <= UInt64(data.count - offset) else { throw truncated(subject, needing: Int(clamping: length)) }
        let end = offset + Int(length)
        let bytes = data[data.startIndex + offset..<data.startIndex + end]
        guard let string = String(validating: bytes, as: UTF8.self) else {
            throw GGUFError(path: path, subject: subject, kind: .badValue, problem: "string at byte \(offset) is not UTF-8")
        }
        offset = end
        return string
    }

    mutating func value(code: UInt32, subject: String) throws -> GGUFValue {
        guard let type = GGUFValue.TypeCode(rawValue: code) else {
            throw GGUFError(path: path, subject: subject, kind: .badValue, problem: "unknown value type \(code) (0…12)")
        }
        switch type {
        case .uint8: return .uint8(try scalar(UInt8.self, subject: subject))
        case .int8: return .int8(try scalar(Int8.self, subject: subject))
        case .uint16: return .uint16(try scalar(UInt16.self, subject: subject))
        case .int16: return .int16(try scalar(Int16.self, subject: subject))
        case .uint32: return .uint32(try scalar(UInt32.self, subject: subject))
        case .int32: return .int32(try scalar(Int32.self, subject: subject))
        case .float32: return .float32(Float(bitPattern: try scalar(UInt32.self, subject: subject)))
        case .bool:
            let byte = try scalar(UInt8.self, subject: subject)
            guard byte <= 1 else { throw GGUFError(path: path, subject: subject, kind: .badValue, problem: "bool byte \(byte) is neither 0 nor 1") }
            return .bool(byte == 1)
        case .string: return .string(try string(subject: subject))
        case .uint64: return .uint64(try scalar(UInt64.self, subject: subject))
        case .int64: return .int64(try scalar(Int64.self, subject: subject))
        case .float64: return .float64(Double(bitPattern: try scalar(UInt64.self, subject: subject)))
        case .array:
            let elementCode = try scalar(UInt32.self, subject: subject)
            let count = try scalar(UInt64.self, subject: subject)
            // Every element takes at least one byte: a count beyond what is left is a truncated file.
            guard count <= UInt64(data.count - offset) else { throw truncated(subject, needing: Int(clamping: count)) }
            var elements: [GGUFValue] = []
            elements.reserveCapacity(Int(count))
            for _ in 0..<Int(count) { elements.append(try value(code: elementCode, subject: subject)) }
            return .array(elements)
        }
    }
}
