import Foundation

/// A safetensors file, memory-mapped, with its whole header validated when opened: after
/// `init` succeeds, every tensor's bytes are known to lie inside the file, to match its shape
/// and dtype, and to overlap no other tensor, so reads cannot go out of bounds.
///
/// Immutable after `init`, so it can be shared across threads (parallel model loading).
public final class SafetensorsFile: Sendable {
    /// Headers beyond this are refused, as the reference crate does (`MAX_HEADER_SIZE`): a
    /// corrupt length must not make us allocate or parse gigabytes.
    public static let maxHeaderLength = 100_000_000

    public let url: URL
    /// The header's `__metadata__` (empty when absent), e.g. `["format": "pt"]`.
    public let metadata: [String: String]
    /// Tensor names, sorted.
    public let names: [String]
    /// Where the data buffer starts in the file: 8 + header length.
    public let bufferOffset: Int

    private let infos: [String: SafetensorsTensorInfo]
    /// The whole file, mapped: pages are read on first touch, so opening a large model is cheap.
    /// A file truncated in place while mapped would fault on access; `SafetensorsWriter` and
    /// `AtomicFile` replace files by rename, which leaves an existing mapping intact.
    private let storage: Data

    public init(contentsOf url: URL) throws {
        let path = url.path
        let storage: Data
        do {
            storage = try Data(contentsOf: url, options: .alwaysMapped)
        } catch {
            throw SafetensorsError(path: path, kind: .io, problem: "cannot open: \(error.localizedDescription)")
        }
        let header = try Self.parseHeader(storage, path: path)
        self.url = url
        self.storage = storage
        self.metadata = header.metadata
        self.infos = header.infos
        self.names = header.infos.keys.sorted()
        self.bufferOffset = header.bufferOffset
    }

    public func info(_ name: String) -> SafetensorsTensorInfo? { infos[name] }

    public func contains(_ name: String) -> Bool { infos[name] != nil }

    /// Reads a float tensor (F32, F16, BF16, F64) converted to Float32. Throws if it is
    /// missing, if its dtype is not a float type, or if `expectedShape` is given and differs
    /// (the error names both shapes).
    public func tensor(_ name: String, expectedShape: [Int]? = nil) throws -> Tensor {
        let info = try floatInfo(name)
        if let expectedShape { try checkShape(info, name: name, expected: expectedShape) }
        let tensor = Tensor(shape: info.shape)
        convert(info, into: tensor.data)
        return tensor
    }

    /// Like `tensor(_:expectedShape:)`, into caller-owned memory of exactly `shape` (model
    /// loading writes straight into its parameter buffer). `destination` must hold
    /// product(shape) floats.
    public func read(_ name: String, into destination: UnsafeMutablePointer<Float>, shape: [Int]) throws {
        let info = try floatInfo(name)
        try checkShape(info, name: name, expected: shape)
        convert(info, into: destination)
    }

    private func floatInfo(_ name: String) throws -> SafetensorsTensorInfo {
        guard let info = infos[name] else {
            throw SafetensorsError(path: url.path, tensor: name, kind: .missingTensor,
                                   problem: "no such tensor (the file has \(infos.count))")
        }
        guard info.dtype.isReadableAsFloat else {
            throw SafetensorsError(path: url.path, tensor: name, kind: .notFloat,
                                   problem: "dtype \(info.dtype.rawValue) cannot be read as Float32 (only F32, F16, BF16, F64 can)")
        }
        return info
    }

    private func checkShape(_ info: SafetensorsTensorInfo, name: String, expected: [Int]) throws {
        guard info.shape == expected else {
            throw SafetensorsError(path: url.path, tensor: name, kind: .shapeMismatch,
                                   problem: "shape \(safetensorsList(info.shape)) in the file, but \(safetensorsList(expected)) expected")
        }
    }

    /// Converts a validated float tensor's bytes to Float32. Loads are unaligned: the buffer
    /// starts at 8 + N, which writers pad to a multiple of 8, but nothing forces a file to.
    private func convert(_ info: SafetensorsTensorInfo, into destination: UnsafeMutablePointer<Float>) {
        let count = info.elementCount
        guard count > 0 else { return }
        storage.withUnsafeBytes { (file: UnsafeRawBufferPointer) in
            // The header was validated against this very buffer, so the range is inside it.
            guard let base = file.baseAddress else { return }
            let source = base + bufferOffset + info.byteRange.lowerBound
            switch info.dtype {
            case .f32:
                UnsafeMutableRawPointer(destination).copyMemory(from: source, byteCount: count * 4)
            case .f16:
                Parallel.forRange(count, costPerItem: 2) { range in
                    for i in range {
                        destination[i] = floatFromHalf(source.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))
                    }
                }
            case .bf16:
                // bfloat16 is the high half of a float32, so widening is exact.
                Parallel.forRange(count) { range in
                    for i in range {
                        let bits = source.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)
                        destination[i] = Float(bitPattern: UInt32(bits) << 16)
                    }
                }
            case .f64:
                Parallel.forRange(count) { range in
                    for i in range {
                        destination[i] = Float(source.loadUnaligned(fromByteOffset: 8 * i, as: Double.self))
                    }
                }
            default:
                // floatInfo admits only the four float dtypes handled above.
                preconditionFailure("convert called for \(info.dtype.rawValue)")
            }
        }
    }

    // MARK: - Header

    private struct Header {
        var metadata: [String: String]
        var infos: [String: SafetensorsTensorInfo]
        var bufferOffset: Int
    }

    /// Validates the whole header against the file's size. Each failure is a thrown
    /// `SafetensorsError` naming the file and, where there is one, the tensor.
    private static func parseHeader(_ file: Data, path: String) throws -> Header {
        let fail = Failure(path: path)

        guard file.count >= 8 else {
            throw fail(.fileTooShort, "the file is \(file.count) bytes, too short for the 8-byte header length")
        }
        let declared = file.withUnsafeBytes { UInt64(littleEndian: $0.loadUnaligned(as: UInt64.self)) }
        guard declared <= UInt64(maxHeaderLength) else {
            throw fail(.invalidHeaderLength, "header length \(declared) exceeds the \(maxHeaderLength)-byte limit")
        }
        let headerLength = Int(declared)
        guard headerLength <= file.count - 8 else {
            throw fail(.invalidHeaderLength,
                       "header length \(headerLength) runs past the end of the \(file.count)-byte file")
        }
        let bufferOffset = 8 + headerLength
        let bufferLength = file.count - bufferOffset

        let headerBytes = file.subdata(in: 8..<bufferOffset)
        guard String(validating: headerBytes, as: UTF8.self) != nil else {
            throw fail(.headerNotUTF8, "the \(headerLength)-byte header is not valid UTF-8")
        }
        // prm's one strict JSON reader (as strict as the reference crate's serde_json: no trailing
        // commas, no duplicate keys); the message quotes the header's start so a file of some
        // other format is recognisable.
        let document: JSONObject
        do {
            let value = try JSONReader.parse(headerBytes)
            guard let object = value.object else {
                throw fail(.headerNotJSONObject, "the header is \(value.kind.withArticle), not a JSON object")
            }
            document = object
        } catch let error as JSONParseError {
            let start = String(decoding: headerBytes.prefix(40), as: UTF8.self)
            throw fail(.headerNotJSONObject, "the header is not valid JSON (it starts \(start.debugDescription)): \(error)")
        }

        var metadata: [String: String] = [:]
        switch document["__metadata__"] {
        case nil, .null?:
            break
        case .object(let entries)?:
            for (key, value) in entries.members {
                guard case .string(let text) = value else {
                    throw fail(.invalidMetadata, "__metadata__[\"\(key)\"] is \(value.kind.withArticle), not a string")
                }
                metadata[key] = text
            }
        case let other?:
            throw fail(.invalidMetadata, "__metadata__ is \(other.kind.withArticle), not an object of strings")
        }

        var infos: [String: SafetensorsTensorInfo] = [:]
        // In name order, so that of several broken entries the same one is always reported.
        for (name, entry) in document.members.filter({ $0.key != "__metadata__" }).sorted(by: { $0.key < $1.key }) {
            infos[name] = try parseEntry(entry, name: name, bufferLength: bufferLength, fail: fail)
        }
        try checkLayout(infos, bufferLength: bufferLength, fail: fail)
        return Header(metadata: metadata, infos: infos, bufferOffset: bufferOffset)
    }

    private static func parseEntry(
        _ entry: JSONValue, name: String, bufferLength: Int,
        fail: Failure
    ) throws -> SafetensorsTensorInfo {
        guard let fields = entry.object else {
            throw fail(.invalidEntry, name, "the entry is \(entry.kind.withArticle), not an object with dtype, shape and data_offsets")
        }
        guard let dtypeValue = fields["dtype"] else { throw fail(.invalidEntry, name, "the entry has no \"dtype\"") }
        guard let dtypeName = dtypeValue.string else {
            throw fail(.invalidEntry, name, "\"dtype\" must be a string, got \(safetensorsQuote(dtypeValue))")
        }
        guard let shapeValue = fields["shape"] else { throw fail(.invalidEntry, name, "the entry has no \"shape\"") }
        guard let shape = integers(shapeValue) else {
            throw fail(.invalidEntry, name, "\"shape\" must be an array of integers, got \(safetensorsQuote(shapeValue))")
        }
        guard let offsetsValue = fields["data_offsets"] else { throw fail(.invalidEntry, name, "the entry has no \"data_offsets\"") }
        guard let offsets = integers(offsetsValue) else {
            throw fail(.invalidOffsets, name,
                       "data_offsets must be two ascending non-negative integers [begin, end], got \(safetensorsQuote(offsetsValue))")
        }

        guard let dtype = SafetensorsDType(rawValue: dtypeName) else {
            let known = SafetensorsDType.allCases.map(\.rawValue).joined(separator: ", ")
            throw fail(.unknownDType, name, "unknown dtype '\(dtypeName)' (known: \(known))")
        }
        if shape.contains(where: { $0 < 0 }) {
            throw fail(.invalidShape, name, "shape \(safetensorsList(shape)) has a negative dimension")
        }
        var elementCount = 1
        for dimension in shape {
            let (product, overflow) = elementCount.multipliedReportingOverflow(by: dimension)
            guard !overflow else {
                throw fail(.invalidShape, name, "shape \(safetensorsList(shape)) has more elements than can be addressed")
            }
            elementCount = product
        }
        guard offsets.count == 2, offsets[0] >= 0, offsets[0] <= offsets[1] else {
            throw fail(.invalidOffsets, name,
                       "data_offsets must be two ascending non-negative integers [begin, end], got \(safetensorsList(offsets))")
        }
        let byteRange = offsets[0]..<offsets[1]
        guard byteRange.upperBound <= bufferLength else {
            throw fail(.offsetsOutOfBounds, name,
                       "data_offsets \(safetensorsList(offsets)) exceed the \(bufferLength)-byte buffer (is the file truncated?)")
        }
        guard let expectedBytes = dtype.byteCount(elements: elementCount) else {
            throw fail(.sizeMismatch, name,
                       "shape \(safetensorsList(shape)) of \(dtype.rawValue) does not fill a whole number of bytes")
        }
        guard byteRange.count == expectedBytes else {
            throw fail(.sizeMismatch, name,
                       "data_offsets \(safetensorsList(offsets)) hold \(byteRange.count) bytes, but shape \(safetensorsList(shape)) of \(dtype.rawValue) needs \(expectedBytes)")
        }
        return SafetensorsTensorInfo(dtype: dtype, shape: shape, byteRange: byteRange, elementCount: elementCount)
    }

    /// An array of integers spelt as integers (`2`, not `2.0` or `true`), as the reference crate's
    /// `usize` fields require; nil for anything else.
    private static func integers(_ value: JSONValue) -> [Int]? {
        guard let elements = value.array else { return nil }
        var result: [Int] = []
        result.reserveCapacity(elements.count)
        for element in elements {
            guard let text = element.number?.text, let integer = Int(text) else { return nil }
            result.append(integer)
        }
        return result
    }

    /// Tensors may not share bytes, and, as in the reference crate (`Metadata::validate`),
    /// together they must cover the buffer exactly: a hole or trailing bytes mean the header
    /// and the data disagree. Empty tensors occupy no bytes and take no part.
    private static func checkLayout(
        _ infos: [String: SafetensorsTensorInfo], bufferLength: Int,
        fail: Failure
    ) throws {
        let occupied = infos.filter { !$0.value.byteRange.isEmpty }
            .sorted { ($0.value.byteRange.lowerBound, $0.key) < ($1.value.byteRange.lowerBound, $1.key) }
        var end = 0
        var previous: (name: String, range: Range<Int>)?
        for (name, info) in occupied {
            let range = info.byteRange
            if let previous, range.lowerBound < end {
                throw fail(.overlappingTensors, name,
                           "data_offsets [\(range.lowerBound), \(range.upperBound)] overlap tensor '\(previous.name)' at [\(previous.range.lowerBound), \(previous.range.upperBound)]")
            }
            if range.lowerBound > end {
                throw fail(.uncoveredBytes, name,
                           "buffer bytes [\(end), \(range.lowerBound)] before data_offsets [\(range.lowerBound), \(range.upperBound)] belong to no tensor")
            }
            end = range.upperBound
            previous = (name, range)
        }
        guard end == bufferLength else {
            throw fail(.uncoveredBytes, nil,
                       "the tensors end at byte \(end) of the \(bufferLength)-byte buffer; the rest belongs to no tensor")
        }
    }

    /// Builds the errors of one file's header check.
    private struct Failure {
        let path: String
        func callAsFunction(_ kind: SafetensorsError.Kind, _ tensor: String?, _ problem: String) -> SafetensorsError {
            SafetensorsError(path: path, tensor: tensor, kind: kind, problem: problem)
        }
        func callAsFunction(_ kind: SafetensorsError.Kind, _ problem: String) -> SafetensorsError {
            SafetensorsError(path: path, kind: kind, problem: problem)
        }
    }
}

/// IEEE 754 binary16 → binary32, exact for every input. Written out rather than using Swift's
/// `Float16`, which is unavailable on macOS x86_64. Infinities and NaNs keep sign and payload;
/// subnormals (exponent 0) are mantissa × 2⁻²⁴, which Float represents exactly.
@inline(__always)
func floatFromHalf(_ half: UInt16) -> Float {
    let sign = UInt32(half & 0x8000) << 16
    let exponent = UInt32(half >> 10) & 0x1F
    let mantissa = UInt32(half & 0x3FF)
    if exponent == 0x1F {
        return Float(bitPattern: sign | 0x7F80_0000 | mantissa << 13)
    }
    if exponent != 0 {
        // Rebias the exponent from 15 to 127.
        return Float(bitPattern: sign | (exponent + 112) << 23 | mantissa << 13)
    }
    return Float(bitPattern: sign | (Float(mantissa) * 0x1p-24).bitPattern)
}
