import Foundation

// The safetensors format (https://huggingface.co/docs/safetensors), as read and written by the
// reference Rust crate (huggingface/safetensors, safetensors/src/tensor.rs):
//   8 bytes   N, the header length, u64 little-endian
//   N bytes   UTF-8 JSON {name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {str: str}}
//   the rest  the data buffer; data_offsets are relative to its start, elements are little-endian,
//             row-major.
// The reader is in SafetensorsReader.swift, the writer in SafetensorsWriter.swift.

#if _endian(big)
#error("safetensors stores little-endian elements; the reader and writer copy them as host values")
#endif

/// Everything that can go wrong reading or writing a safetensors file. The description is one
/// line naming the file, the tensor when there is one, and the problem, e.g.
/// `/m/model.safetensors: tensor 'encoder.layer.0.attention.self.query.weight': data_offsets [0, 600] exceed the 512-byte buffer`.
public struct SafetensorsError: Error, CustomStringConvertible, Sendable {
    /// Which check failed; lets callers and tests tell problems apart without parsing text.
    public enum Kind: String, Sendable {
        /// The file could not be opened, mapped or written.
        case io
        /// Fewer than the 8 bytes of the header length.
        case fileTooShort
        /// The header length is beyond the 100 MB limit or runs past the end of the file.
        case invalidHeaderLength
        /// The header bytes are not UTF-8.
        case headerNotUTF8
        /// The header is not a JSON object.
        case headerNotJSONObject
        /// `__metadata__` is not an object of strings.
        case invalidMetadata
        /// A tensor entry is not an object, or lacks dtype/shape/data_offsets, or has wrong types.
        case invalidEntry
        /// A dtype this reader does not know.
        case unknownDType
        /// A negative dimension, or more elements than can be addressed.
        case invalidShape
        /// data_offsets are not two ascending non-negative integers.
        case invalidOffsets
        /// data_offsets end beyond the buffer: usually a truncated file.
        case offsetsOutOfBounds
        /// The byte range's length differs from product(shape) × element size.
        case sizeMismatch
        /// Two tensors share bytes.
        case overlappingTensors
        /// Part of the buffer belongs to no tensor (the reference implementation refuses these too).
        case uncoveredBytes
        /// No tensor of that name.
        case missingTensor
        /// The tensor's dtype cannot be read as Float32.
        case notFloat
        /// The tensor's shape is not the one the caller expects.
        case shapeMismatch
        /// The writer was given an entry it cannot write (duplicate or reserved name, bad shape).
        case invalidWriteEntry
    }

    /// The file's path as given by the caller.
    public let path: String
    /// The tensor concerned, when the problem is about one.
    public let tensor: String?
    public let kind: Kind
    /// What is wrong, with the values involved.
    public let problem: String

    public init(path: String, tensor: String? = nil, kind: Kind, problem: String) {
        self.path = path
        self.tensor = tensor
        self.kind = kind
        self.problem = problem
    }

    public var description: String {
        if let tensor { return "\(path): tensor '\(tensor)': \(problem)" }
        return "\(path): \(problem)"
    }
}

/// Element types of the format, with the names used in headers. Sizes follow the reference
/// crate's `Dtype::bitsize`; F4 and F6 pack several elements per byte.
public enum SafetensorsDType: String, Sendable, CaseIterable {
    case bool = "BOOL"
    case f4 = "F4"
    case f6e2m3 = "F6_E2M3"
    case f6e3m2 = "F6_E3M2"
    case u8 = "U8"
    case i8 = "I8"
    case f8e5m2 = "F8_E5M2"
    case f8e4m3 = "F8_E4M3"
    case f8e8m0 = "F8_E8M0"
    case f8e4m3fnuz = "F8_E4M3FNUZ"
    case f8e5m2fnuz = "F8_E5M2FNUZ"
    case i16 = "I16"
    case u16 = "U16"
    case f16 = "F16"
    case bf16 = "BF16"
    case i32 = "I32"
    case u32 = "U32"
    case f32 = "F32"
    case c64 = "C64"
    case f64 = "F64"
    case i64 = "I64"
    case u64 = "U64"

    /// Bits per element.
    public var bitWidth: Int {
        switch self {
        case .f4: return 4
        case .f6e2m3, .f6e3m2: return 6
        case .bool, .u8, .i8, .f8e5m2, .f8e4m3, .f8e8m0, .f8e4m3fnuz, .f8e5m2fnuz: return 8
        case .i16, .u16, .f16, .bf16: return 16
        case .i32, .u32, .f32: return 32
        case .c64, .f64, .i64, .u64: return 64
        }
    }

    /// Bytes per element; nil for the sub-byte types F4 and F6_*.
    public var size: Int? { bitWidth % 8 == 0 ? bitWidth / 8 : nil }

    /// Whether `SafetensorsFile.tensor(_:)` can convert this dtype to Float32.
    public var isReadableAsFloat: Bool {
        switch self {
        case .f32, .f16, .bf16, .f64: return true
        default: return false
        }
    }

    /// Bytes taken by `elements` elements, or nil when that overflows or ends mid-byte
    /// (the reference crate refuses F4/F6 tensors that do not fill whole bytes).
    public func byteCount(elements: Int) -> Int? {
        let (bits, overflow) = elements.multipliedReportingOverflow(by: bitWidth)
        guard !overflow, bits % 8 == 0 else { return nil }
        return bits / 8
    }
}

/// One tensor's header entry, validated.
public struct SafetensorsTensorInfo: Sendable, Equatable {
    public let dtype: SafetensorsDType
    public let shape: [Int]
    /// The tensor's bytes, relative to the start of the data buffer (the header's
    /// `data_offsets`); `SafetensorsFile.bufferOffset` is where the buffer starts in the file.
    public let byteRange: Range<Int>
    /// product(shape); 1 for a scalar (`shape == []`).
    public let elementCount: Int
}

/// A header value quoted in an error message: compact JSON, numbers as spelt, cut short when long.
func safetensorsQuote(_ value: JSONValue) -> String {
    let full: String
    switch value {
    case .null: full = "null"
    case .bool(let b): full = String(b)
    case .number(let n): full = n.text
    case .string(let s): full = "\"\(s)\""
    case .array(let elements): full = "[" + elements.map(safetensorsQuote).joined(separator: ", ") + "]"
    case .object(let object):
        full = "{" + object.members.map { "\"\($0.key)\": \(safetensorsQuote($0.value))" }.joined(separator: ", ") + "}"
    }
    return full.count > 80 ? String(full.prefix(77)) + "..." : full
}

/// Formats a shape or an offset pair the way the header writes it: `[384, 384]`.
func safetensorsList(_ values: [Int]) -> String {
    "[" + values.map(String.init).joined(separator: ", ") + "]"
}
