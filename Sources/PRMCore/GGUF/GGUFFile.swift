import Foundation

// The GGUF format (llama.cpp's ggml/docs/gguf.md, version 3; version 2 has the same layout),
// all little-endian:
//   "GGUF", version u32, tensor count u64, metadata count u64
//   metadata: key (u64 length + UTF-8), value type u32, value (arrays: element type u32, count u64, elements)
//   tensor infos: name, dimension count u32, dimensions u64 (ne[0], the fastest-varying, first),
//                 ggml type u32, offset u64 from the data section
//   padding to `general.alignment` (default 32), then the data section.

/// A GGUF file, memory-mapped, with its header read and every tensor's bytes checked to lie
/// inside the file when opened; tensors are dequantized to Float32 on request.
public final class GGUFFile: Sendable {
    public static let defaultAlignment = 32

    /// One tensor's entry. `dimensions` are ggml's (ne[0] first); `shape` is the row-major shape
    /// (the reverse), e.g. a (out, in) weight matrix.
    public struct TensorInfo: Sendable, Equatable {
        public let name: String
        public let dimensions: [Int]
        public let type: GGUFTensorType
        /// Offset of the data from the start of the file.
        public let fileOffset: Int
        public var shape: [Int] { dimensions.reversed() }
        public var count: Int { dimensions.reduce(1, *) }
        public var byteCount: Int { count / type.blockSize * type.blockBytes }
    }

    public let url: URL
    public let version: Int
    public let alignment: Int
    /// Offset of the data section from the start of the file.
    public let dataOffset: Int
    public let metadata: [String: GGUFValue]
    /// Metadata keys in file order.
    public let keys: [String]
    /// Tensors in file order.
    public let tensors: [TensorInfo]
    private let byName: [String: Int]
    private let storage: Data

    public init(contentsOf url: URL) throws {
        let path = url.path
        do {
            storage = try Data(contentsOf: url, options: .alwaysMapped)
        } catch {
            throw GGUFError(path: path, kind: .io, problem: "cannot open: \(error.localizedDescription)")
        }
        self.url = url
        var reader = GGUFByteReader(data: storage, path: path)
        let header = try Self.readHeader(&reader)
        version = header.version
        metadata = header.metadata
        keys = header.keys
        alignment = header.alignment
        var tensors: [TensorInfo] = []
        var byName: [String: Int] = [:]
        var infoSubjects: [(String, UInt64, [Int], UInt32)] = []
        for index in 0..<header.tensorCount {
            let name = try reader.string(subject: "tensor info \(index)")
            let subject = "tensor '\(name)'"
            let dimensionCount = Int(try reader.scalar(UInt32.self, subject: subject))
            guard dimensionCount <= 8 else {
                throw GGUFError(path: path, subject: subject, kind: .badShape, problem: "\(dimensionCount) dimensions (at most 8)")
            }
            var dimensions: [Int] = []
            for _ in 0..<dimensionCount { dimensions.append(Int(clamping: try reader.scalar(UInt64.self, subject: subject))) }
            let type = try reader.scalar(UInt32.self, subject: subject)
            let offset = try reader.scalar(UInt64.self, subject: subject)
            guard byName[name] == nil else {
                throw GGUFError(path: path, subject: subject, kind: .badShape, problem: "appears twice in the tensor infos")
            }
            byName[name] = infoSubjects.count
            infoSubjects.append((name, offset, dimensions, type))
        }
        dataOffset = (reader.offset + alignment - 1) / alignment * alignment
        for (name, offset, dimensions, code) in infoSubjects {
            tensors.append(try Self.validate(name: name, offset: offset, dimensions: dimensions, code: code,
                                             dataOffset: dataOffset, alignment: alignment, fileSize: storage.count, path: path))
        }
        self.tensors = tensors
        self.byName = byName
    }

    // MARK: - Metadata

    public func contains(key: String) -> Bool { metadata[key] != nil }

    /// The value under `key`, or a `.missing` error naming it.
    public func value(_ key: String) throws -> GGUFValue {
        guard let value = metadata[key] else { throw error(key: key, .missing, "missing") }
        return value
    }

    public func int(_ key: String) throws -> Int {
        let value = try value(key)
        guard let int = value.int else { throw error(key: key, .wrongType, "expected an integer, got \(value.typeName)") }
        return int
    }

    public func double(_ key: String) throws -> Double {
        let value = try value(key)
        guard let double = value.double else { throw error(key: key, .wrongType, "expected a float, got \(value.typeName)") }
        return double
    }

    public func string(_ key: String) throws -> String {
        let value = try value(key)
        guard let string = value.string else { throw error(key: key, .wrongType, "expected a string, got \(value.typeName)") }
        return string
    }

    public func strings(_ key: String) throws -> [String] {
        let value = try value(key)
        guard let array = value.array, let strings = Optional(array.compactMap(\.string)), strings.count == array.count else {
            throw error(key: key, .wrongType, "expected an array of strings, got \(value.typeName)")
        }
        return strings
    }

    public func ints(_ key: String) throws -> [Int] {
        let value = try value(key)
        guard let array = value.array, let ints = Optional(array.compactMap(\.int)), ints.count == array.count else {
            throw error(key: key, .wrongType, "expected an array of integers, got \(value.typeName)")
        }
        return ints
    }

    /// An error about this file and `key`, for callers that check metadata themselves.
    public func error(key: String, _ kind: GGUFError.Kind, _ problem: String) -> GGUFError {
        GGUFError(path: url.path, subject: "key '\(key)'", kind: kind, problem: problem)
    }

    // MARK: - Tensors

    public func info(_ name: String) -> TensorInfo? { byName[name].map { tensors[$0] } }

    public func contains(_ name: String) -> Bool { byName[name] != nil }

    /// The tensor's values as Float32, row-major in `shape`. Throws if it is missing or, when
    /// `expectedShape` is given, has another shape.
    public func floats(_ name: String, expectedShape: [Int]? = nil) throws -> [Float] {
        let info = try tensorInfo(name, expectedShape: expectedShape)
        return [Float](unsafeUninitializedCapacity: info.count) { buffer, initialized in
            dequantize(info, into: buffer.baseAddress!)
            initialized = info.count
        }
    }

    /// Dequantizes the tensor into caller-owned memory of exactly `shape` (model loading writes
    /// straight into its parameter buffer).
    public func read(_ name: String, into destination: UnsafeMutablePointer<Float>, shape: [Int]) throws {
        dequantize(try tensorInfo(name, expectedShape: shape), into: destination)
    }

    private func tensorInfo(_ name: String, expectedShape: [Int]?) throws -> TensorInfo {
        guard let info = info(name) else {
            throw GGUFError(path: url.path, subject: "tensor '\(name)'", kind: .missing, problem: "missing")
        }
        if let expectedShape, expectedShape != info.shape {
            throw GGUFError(path: url.path, subject: "tensor '\(name)'", kind: .badShape,
                            problem: "shape \(info.shape) (row-major), expected \(expectedShape)")
        }
        return info
    }

    private func dequantize(_ info: TensorInfo, into destination: UnsafeMutablePointer<Float>) {
        storage.withUnsafeBytes { file in
            // init checked that the tensor's bytes lie inside the file.
            GGUFDequantizer.dequantize(info.type, source: file.baseAddress! + info.fileOffset, count: info.count, into: destination)
        }
    }

    // MARK: - Header

    private struct Header {
        var version: Int
        var tensorCount: Int
        var metadata: [String: GGUFValue]
        var keys: [String]
        var alignment: Int
    }

    private static func readHeader(_ reader: inout GGUFByteReader) throws -> Header {
        let path = reader.path
        let magic = try reader.scalar(UInt32.self, subject: nil)
        guard magic == 0x4655_4747 else {  // "GGUF" read as a little-endian u32
            let bytes = withUnsafeBytes(of: magic.littleEndian) { Array($0) }
            throw GGUFError(path: path, kind: .badMagic, problem: "not a GGUF file (starts with bytes \(bytes), expected \"GGUF\")")
        }
        let version = try reader.scalar(UInt32.self, subject: nil)
        guard version == 2 || version == 3 else {
            throw GGUFError(path: path, kind: .unsupportedVersion, problem: "GGUF version \(version) is not supported (2 and 3 are)")
        }
        let tensorCount = try reader.scalar(UInt64.self, subject: nil)
        let keyCount = try reader.scalar(UInt64.self, subject: nil)
        // Each entry takes at least 8 bytes: counts beyond the file's size are corrupt, not large.
        guard tensorCount <= UInt64(reader.data.count / 8), keyCount <= UInt64(reader.data.count / 8) else {
            throw GGUFError(path: path, kind: .truncated, problem: "header claims \(tensorCount) tensors and \(keyCount) keys, more than the file's \(reader.data.count) bytes hold")
        }
        var metadata: [String: GGUFValue] = [:], keys: [String] = []
        for index in 0..<Int(keyCount) {
            let key = try reader.string(subject: "metadata entry \(index)")
            let subject = "key '\(key)'"
            let code = try reader.scalar(UInt32.self, subject: subject)
            metadata[key] = try reader.value(code: code, subject: subject)
            keys.append(key)
        }
        var alignment = defaultAlignment
        if let value = metadata["general.alignment"] {
            guard let int = value.int, int > 0, int & (int - 1) == 0 else {
                throw GGUFError(path: path, subject: "key 'general.alignment'", kind: .badValue, problem: "must be a power of two, got \(value)")
            }
            alignment = int
        }
        return Header(version: Int(version), tensorCount: Int(tensorCount), metadata: metadata, keys: keys, alignment: alignment)
    }

    private static func validate(name: String, offset: UInt64, dimensions: [Int], code: UInt32,
                                 dataOffset: Int, alignment: Int, fileSize: Int, path: String) throws -> TensorInfo {
        let subject = "tensor '\(name)'"
        guard let type = GGUFTensorType(rawValue: code) else {
            throw GGUFError(path: path, subject: subject, kind: .unsupportedType,
                            problem: "type \(GGUFTensorType.unsupportedName(code)) is not supported (supported: \(GGUFTensorType.allCases.map(\.name).joined(separator: ", ")))")
        }
        guard !dimensions.isEmpty, dimensions.allSatisfy({ $0 > 0 && $0 < 1 << 40 }) else {
            throw GGUFError(path: path, subject: subject, kind: .badShape, problem: "dimensions \(dimensions) must be positive")
        }
        let (count, overflow) = dimensions.reduce((1, false)) { partial, d in
            let (p, o) = partial.0.multipliedReportingOverflow(by: d)
            return (p, partial.1 || o)
        }
        guard !overflow, count < 1 << 48 else { throw GGUFError(path: path, subject: subject, kind: .badShape, problem: "too many elements") }
        guard dimensions[0] % type.blockSize == 0 else {
            throw GGUFError(path: path, subject: subject, kind: .badShape,
                            problem: "rows of \(dimensions[0]) values do not fill whole \(type.name) blocks of \(type.blockSize)")
        }
        guard offset % UInt64(alignment) == 0 else {
            throw GGUFError(path: path, subject: subject, kind: .outOfBounds, problem: "offset \(offset) is not a multiple of the alignment \(alignment)")
        }
        let bytes = count / type.blockSize * type.blockBytes
        guard offset < UInt64(fileSize), dataOffset + Int(offset) + bytes <= fileSize else {
            throw GGUFError(path: path, subject: subject, kind: .outOfBounds,
                            problem: "bytes \(UInt64(dataOffset) &+ offset)..<\(UInt64(dataOffset) &+ offset &+ UInt64(bytes)) end past the file's \(fileSize) bytes (truncated?)")
        }
        return TensorInfo(name: name, dimensions: dimensions, type: type, fileOffset: dataOffset + Int(offset))
    }
}
