import Foundation
import XCTest
import PRMCore
import PRMTestSupport

/// The GGUF reader against llama.cpp's gguf-py (Tests/Reference/gguf_fixtures.py): metadata of
/// every value type, dequantization of every supported type bit for bit on small files and on
/// the real SmolLM2 file, and the broken files the reader promises to name.
final class GGUFTests: XCTestCase {
    private func fixture(_ name: String) -> URL { TestSupport.ggufFixtures.appendingPathComponent(name) }

    func testMetadataOfEveryValueType() throws {
        let file = try GGUFFile(contentsOf: fixture("types.gguf"))
        XCTAssertEqual(file.version, 3)
        XCTAssertEqual(file.alignment, 64)
        XCTAssertEqual(file.dataOffset % 64, 0)
        XCTAssertEqual(file.metadata["test.u8"], .uint8(200))
        XCTAssertEqual(file.metadata["test.i8"], .int8(-100))
        XCTAssertEqual(file.metadata["test.u16"], .uint16(60000))
        XCTAssertEqual(file.metadata["test.i16"], .int16(-30000))
        XCTAssertEqual(file.metadata["test.u32"], .uint32(4_000_000_000))
        XCTAssertEqual(file.metadata["test.i32"], .int32(-2_000_000_000))
        XCTAssertEqual(file.metadata["test.f32"], .float32(0.1))
        XCTAssertEqual(file.metadata["test.bool"], .bool(true))
        XCTAssertEqual(try file.string("test.string"), "héllo, 世界")
        XCTAssertEqual(file.metadata["test.u64"], .uint64(1 << 62 + 3))
        XCTAssertEqual(file.metadata["test.i64"], .int64(-(1 << 62) - 3))
        XCTAssertEqual(file.metadata["test.f64"], .float64(0.1))
        XCTAssertEqual(try file.ints("test.ints"), [1, -2, 3])
        XCTAssertEqual(try file.strings("test.strings"), ["a", "", "ß c"])
        XCTAssertEqual(file.metadata["test.nested"], .array([.array([.int32(1), .int32(2)]), .array([.int32(3)])]))
        XCTAssertEqual(try file.string("general.architecture"), "test")
        XCTAssertThrowsError(try file.int("test.string")) { error in
            XCTAssertEqual((error as? GGUFError)?.kind, .wrongType)
            XCTAssertTrue("\(error)".contains("key 'test.string'"), "\(error)")
        }
        XCTAssertThrowsError(try file.int("llama.block_count")) { XCTAssertEqual(($0 as? GGUFError)?.kind, .missing) }
    }

    func testDequantizationEqualsGGUFPyBitForBit() throws {
        let file = try GGUFFile(contentsOf: fixture("types.gguf"))
        let expected = try SafetensorsFile(contentsOf: fixture("types.expected.safetensors"))
        XCTAssertEqual(Set(file.tensors.map(\.type)), Set(GGUFTensorType.allCases))
        for info in file.tensors {
            let reference = try expected.tensor(info.name)
            XCTAssertEqual(info.shape, reference.shape, info.name)
            let values = try file.floats(info.name, expectedShape: reference.shape)
            assertBitEqual(values, Array(UnsafeBufferPointer(start: reference.data, count: reference.count)), info.name)
        }
    }

    func testRealSmolLM2TensorsEqualGGUFPy() throws {
        let file = try GGUFFile(contentsOf: try TestSupport.smolLM2File())
        let expected = try SafetensorsFile(contentsOf: fixture("smollm2-tensors.safetensors"))
        XCTAssertEqual(file.tensors.count, 272)
        XCTAssertEqual(try file.string("general.architecture"), "llama")
        XCTAssertEqual(try file.int("llama.block_count"), 30)
        XCTAssertEqual(try file.strings("tokenizer.ggml.tokens").count, 49152)
        XCTAssertEqual(expected.names.count, 6)
        for name in expected.names {
            let info = try XCTUnwrap(file.info(name), name)
            XCTAssertEqual(info.type.name, expected.metadata[name + ".type"], name)
            let values = try file.floats(name)
            let head = try expected.tensor(name)
            assertBitEqual(Array(values.prefix(head.count)), Array(UnsafeBufferPointer(start: head.data, count: head.count)), name)
            XCTAssertEqual(Self.fnv1a64(values), expected.metadata[name + ".fnv1a64"], "\(name): checksum of all \(values.count) values")
        }
    }

    func testBrokenFilesNameTheFileAndTheProblem() throws {
        let directory = try TestSupport.temporaryDirectory("prm-gguf")
        defer { try? FileManager.default.removeItem(at: directory) }
        let good = try Data(contentsOf: fixture("types.gguf"))
        let file = try GGUFFile(contentsOf: fixture("types.gguf"))
        func open(_ bytes: Data, _ name: String) -> GGUFError? {
            let url = directory.appendingPathComponent(name)
            try? bytes.write(to: url)
            do {
                _ = try GGUFFile(contentsOf: url)
                return nil
            } catch {
                XCTAssertTrue("\(error)".hasPrefix(url.path + ": "), "names the file: \(error)")
                return error as? GGUFError
            }
        }
        // Cut inside the header: in the counts, in a key, in an array of strings, in the tensor infos.
        let lastInfo = try XCTUnwrap(good.range(of: Data("q6_k".utf8), options: .backwards)).lowerBound + 2
        for cut in [10, 40, 300, lastInfo] {
            XCTAssertEqual(open(good.prefix(cut), "cut\(cut).gguf")?.kind, .truncated, "cut at \(cut)")
        }
        // Cut inside the data: the last tensor's bytes are out of the file.
        let last = try XCTUnwrap(file.tensors.max { $0.fileOffset < $1.fileOffset })
        let outOfBounds = open(good.prefix(last.fileOffset + last.byteCount - 1), "data.gguf")
        XCTAssertEqual(outOfBounds?.kind, .outOfBounds)
        XCTAssertEqual(outOfBounds?.subject, "tensor '\(last.name)'")

        var magic = good
        magic[0] = UInt8(ascii: "X")
        XCTAssertEqual(open(magic, "magic.gguf")?.kind, .badMagic)
        var version = good
        version[4] = 7
        let versionError = open(version, "version.gguf")
        XCTAssertEqual(versionError?.kind, .unsupportedVersion)
        XCTAssertTrue(versionError?.description.contains("version 7") ?? false)

        do {
            _ = try GGUFFile(contentsOf: fixture("unsupported.gguf"))
            XCTFail("a Q5_K tensor must be refused")
        } catch let error as GGUFError {
            XCTAssertEqual(error.kind, .unsupportedType)
            XCTAssertEqual(error.description, "\(fixture("unsupported.gguf").path): tensor 'blk.0.ffn_up.weight': type Q5_K is not supported (supported: F32, F16, Q4_0, Q4_1, Q8_0, Q4_K, Q6_K, BF16)")
        }
        XCTAssertThrowsError(try file.floats("missing.weight")) { error in
            XCTAssertEqual((error as? GGUFError)?.kind, .missing)
            XCTAssertTrue("\(error)".contains("tensor 'missing.weight'"))
        }
        XCTAssertThrowsError(try file.floats("q4_0", expectedShape: [64, 4])) { XCTAssertEqual(($0 as? GGUFError)?.kind, .badShape) }
    }

    private func assertBitEqual(_ actual: [Float], _ expected: [Float], _ name: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(actual.count, expected.count, name, file: file, line: line)
        let mismatches = zip(actual, expected).enumerated().filter { $0.element.0.bitPattern != $0.element.1.bitPattern }
        if let first = mismatches.first {
            XCTFail("\(name): \(mismatches.count) values differ, first at \(first.offset): \(first.element.0) vs \(first.element.1)", file: file, line: line)
        }
    }

    /// FNV-1a 64 over the values' little-endian float32 bytes, as gguf_fixtures.py computes it.
    static func fnv1a64(_ values: [Float]) -> String {
        var hash: UInt64 = 0xCBF2_9CE4_8422_2325
        values.withUnsafeBytes { bytes in
            for byte in bytes { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01B3 }
        }
        return String(format: "%016llx", hash)
    }
}
