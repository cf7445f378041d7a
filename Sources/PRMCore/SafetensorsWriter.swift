import Foundation

/// Writes F32 safetensors files that the reference implementation reads, laid out as it lays
/// them out (huggingface/safetensors `prepare`): tensors sorted by name, packed back to back,
/// `__metadata__` first in the header, the header padded with spaces to a multiple of 8 so
/// the buffer starts 8-byte aligned.
public enum SafetensorsWriter {
    /// One tensor to write: its name, its row-major shape, and product(shape) floats at `data`
    /// (which must stay valid until `write` returns).
    public struct Entry {
        public let name: String
        public let shape: [Int]
        public let data: UnsafePointer<Float>

        public init(name: String, shape: [Int], data: UnsafePointer<Float>) {
            self.name = name
            self.shape = shape
            self.data = data
        }

        /// The whole of `tensor`, which must outlive the `write` call.
        public init(name: String, tensor: Tensor) {
            self.init(name: name, shape: tensor.shape, data: UnsafePointer(tensor.data))
        }
    }

    /// Writes F32 tensors (names sorted, as the Rust implementation does), with optional
    /// metadata, atomically (temporary file in the same directory + rename), so a crash never
    /// leaves a half-written file. Entries are checked before anything is written: a duplicate
    /// or reserved name or a negative dimension throws and leaves any existing file untouched.
    public static func write(_ entries: [Entry], metadata: [String: String]? = nil, to url: URL) throws {
        let path = url.path
        // Byte order of the UTF-8 names, as Rust's `String` orders them; Swift's `<` compares
        // Unicode-normalized text and could order some names differently.
        let sorted = entries.sorted { $0.name.utf8.lexicographicallyPrecedes($1.name.utf8) }
        var byteCounts: [Int] = []
        byteCounts.reserveCapacity(sorted.count)
        // A Swift set also catches names that differ only in Unicode normalization, which
        // `SafetensorsFile` (keyed by Swift strings) could not tell apart when reading back.
        var seen = Set<String>()
        for entry in sorted {
            if entry.name == "__metadata__" {
                throw SafetensorsError(path: path, tensor: entry.name, kind: .invalidWriteEntry,
                                       problem: "the name is reserved for the file's metadata")
            }
            guard seen.insert(entry.name).inserted else {
                throw SafetensorsError(path: path, tensor: entry.name, kind: .invalidWriteEntry,
                                       problem: "the name is given twice")
            }
            byteCounts.append(try byteCount(of: entry, path: path))
        }

        var header = "{"
        var members: [String] = []
        if let metadata {
            let pairs = metadata.keys.sorted().map { "\(jsonString($0)):\(jsonString(metadata[$0] ?? ""))" }
            members.append("\"__metadata__\":{" + pairs.joined(separator: ",") + "}")
        }
        var offset = 0
        for (entry, bytes) in zip(sorted, byteCounts) {
            let shape = entry.shape.map(String.init).joined(separator: ",")
            members.append("\(jsonString(entry.name)):{\"dtype\":\"F32\",\"shape\":[\(shape)],\"data_offsets\":[\(offset),\(offset + bytes)]}")
            offset += bytes
        }
        header += members.joined(separator: ",") + "}"
        var headerBytes = Data(header.utf8)
        headerBytes.append(contentsOf: repeatElement(UInt8(ascii: " "), count: (8 - headerBytes.count % 8) % 8))
        guard headerBytes.count <= SafetensorsFile.maxHeaderLength else {
            throw SafetensorsError(path: path, kind: .invalidWriteEntry,
                                   problem: "the \(headerBytes.count)-byte header exceeds the \(SafetensorsFile.maxHeaderLength)-byte limit readers enforce")
        }

        do {
            try AtomicFile.write(to: url) { sink in
                var length = UInt64(headerBytes.count).littleEndian
                try withUnsafeBytes(of: &length) { try sink.write($0) }
                try sink.write(headerBytes)
                for (entry, bytes) in zip(sorted, byteCounts) {
                    try sink.write(UnsafeRawBufferPointer(start: entry.data, count: bytes))
                }
            }
        } catch let error as AtomicFileError {
            throw SafetensorsError(path: path, kind: .io, problem: error.reason)
        }
    }

    private static func byteCount(of entry: Entry, path: String) throws -> Int {
        guard entry.shape.allSatisfy({ $0 >= 0 }) else {
            throw SafetensorsError(path: path, tensor: entry.name, kind: .invalidWriteEntry,
                                   problem: "shape \(safetensorsList(entry.shape)) has a negative dimension")
        }
        var bytes = MemoryLayout<Float>.size
        for dimension in entry.shape {
            let (product, overflow) = bytes.multipliedReportingOverflow(by: dimension)
            guard !overflow else {
                throw SafetensorsError(path: path, tensor: entry.name, kind: .invalidWriteEntry,
                                       problem: "shape \(safetensorsList(entry.shape)) is too large to address")
            }
            bytes = product
        }
        return bytes
    }

    /// A JSON string literal escaped as serde_json escapes it (quote, backslash, \b \f \n \r \t,
    /// other control characters as \u00XX; everything else verbatim), so our headers are
    /// byte-identical to the reference writer's.
    static func jsonString(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\u{08}": out += "\\b"
            case "\u{0C}": out += "\\f"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where scalar.value < 0x20:
                let hex = String(scalar.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default:
                out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }
}
