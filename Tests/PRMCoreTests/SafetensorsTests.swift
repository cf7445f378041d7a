import Foundation
import XCTest
import PRMCore
import PRMTestSupport
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The safetensors reader and writer against themselves, against the Hugging Face
/// implementation (Tests/Reference/safetensors_fixtures.py), against the real MiniLM weights,
/// and against every kind of broken file the header check promises to catch.
final class SafetensorsTests: XCTestCase {

    // MARK: - Round trips

    func testRoundTripOddShapesAndMetadata() throws {
        let directory = try makeDirectory()
        let url = directory.appendingPathComponent("round.safetensors")
        let tensors = oddTensors()
        let metadata = ["format": "pt", "note": "quote \" backslash \\ newline \n tab \t control \u{1} é 😀 /"]
        try write(tensors, metadata: metadata, to: url)

        let file = try SafetensorsFile(contentsOf: url)
        XCTAssertEqual(file.metadata, metadata)
        XCTAssertEqual(file.names, tensors.map(\.name).sorted())
        XCTAssertEqual(file.bufferOffset % 8, 0, "header must be padded to a multiple of 8")
        var end = 0
        for name in file.names.sorted(by: { $0.utf8.lexicographicallyPrecedes($1.utf8) }) {
            let info = try XCTUnwrap(file.info(name))
            XCTAssertEqual(info.byteRange.lowerBound, end, "\(name): tensors are packed in name order")
            end = info.byteRange.upperBound
        }
        for (name, shape, values) in tensors {
            let info = try XCTUnwrap(file.info(name), name)
            XCTAssertEqual(info.dtype, .f32)
            XCTAssertEqual(info.shape, shape, name)
            XCTAssertTrue(file.contains(name))
            let tensor = try file.tensor(name, expectedShape: shape)
            XCTAssertEqual(tensor.shape, shape, name)
            assertSameFloats(tensor.array, values.map(\.bitPattern), name)
        }
        XCTAssertFalse(file.contains("absent"))
        XCTAssertNil(file.info("absent"))
    }

    func testPythonReadsOurFile() throws {
        let directory = try makeDirectory()
        let url = directory.appendingPathComponent("for-python.safetensors")
        let tensors = oddTensors()
        // One metadata key only: the reference writer keeps metadata in a HashMap, so with
        // several keys its byte-for-byte output varies between runs.
        let metadata = ["note": "quote \" backslash \\ newline \n tab \t control \u{1} é 😀 /"]
        try write(tensors, metadata: metadata, to: url)

        let output = try TestSupport.runPython(script, ["verify", url.path])
        let verified = try JSONDecoder().decode(Verified.self, from: output)
        XCTAssertEqual(verified.metadata, metadata)
        XCTAssertEqual(verified.tensors.count, tensors.count)
        for (name, shape, values) in tensors {
            let python = try XCTUnwrap(verified.tensors[name], "Python did not load \(name)")
            XCTAssertEqual(python.dtype, "F32", name)
            XCTAssertEqual(python.shape, shape, name)
            XCTAssertEqual(python.bits, values.map(\.bitPattern), name)
        }
        XCTAssertEqual(verified.header_length % 8, 0)
        XCTAssertEqual(verified.names_in_buffer_order,
                       tensors.map(\.name).sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) })
        XCTAssertTrue(verified.resaved_identical,
                      "safetensors.numpy.save of the same tensors and metadata gives different bytes")
    }

    func testReadsPythonFixtures() throws {
        let directory = try makeDirectory()
        let output = try TestSupport.runPython(script, ["write", directory.path])
        let fixtures = try JSONDecoder().decode([String: Fixture].self, from: output)
        XCTAssertEqual(Set(fixtures.keys),
                       ["f32.safetensors", "f16.safetensors", "f64.safetensors", "bf16.safetensors", "mixed.safetensors"])
        for (fileName, fixture) in fixtures {
            let url = directory.appendingPathComponent(fileName)
            let file = try SafetensorsFile(contentsOf: url)
            XCTAssertEqual(file.metadata, fixture.metadata, fileName)
            XCTAssertEqual(file.names, fixture.tensors.keys.sorted(), fileName)
            for (name, expected) in fixture.tensors {
                let context = "\(fileName) \(name)"
                let info = try XCTUnwrap(file.info(name), context)
                XCTAssertEqual(info.dtype.rawValue, expected.dtype, context)
                XCTAssertEqual(info.shape, expected.shape, context)
                if let bits = expected.bits {
                    let tensor = try file.tensor(name)
                    XCTAssertEqual(tensor.shape, expected.shape, context)
                    assertSameFloats(tensor.array, bits, context)
                } else {
                    assertThrows(.notFloat, url: url, tensor: name, mentions: [expected.dtype]) {
                        _ = try file.tensor(name)
                    }
                }
            }
        }
    }

    /// Every binary16 and bfloat16 bit pattern, in a file whose buffer starts at an odd
    /// address, against Swift's own `Float16` conversion (hardware or compiler-rt, independent
    /// of ours) and against the definition of bfloat16.
    func testEveryHalfAndBFloat16PatternConvertsExactly() throws {
        let directory = try makeDirectory()
        let patterns = (0...UInt16.max).map { $0 }
        var buffer: [UInt8] = []
        for pattern in patterns { buffer += [UInt8(pattern & 0xFF), UInt8(pattern >> 8)] }
        let bytes = 2 * patterns.count
        // 3 spaces of padding make the header length odd, so no load is aligned.
        let header = "{\"half\":{\"dtype\":\"F16\",\"shape\":[256,256],\"data_offsets\":[0,\(bytes)]},"
            + "\"brain\":{\"dtype\":\"BF16\",\"shape\":[65536],\"data_offsets\":[\(bytes),\(2 * bytes)]}}   "
        XCTAssertEqual(header.utf8.count % 2, 1)
        let url = try rawFile(directory, header: header, buffer: buffer + buffer)
        let file = try SafetensorsFile(contentsOf: url)
        XCTAssertEqual(file.bufferOffset % 2, 1)

        let half = try file.tensor("half", expectedShape: [256, 256]).array
        let brain = try file.tensor("brain").array
        var mismatches: [String] = []
        for (index, pattern) in patterns.enumerated() {
            let expectedBrain = Float(bitPattern: UInt32(pattern) << 16)
            if !same(brain[index], expectedBrain) { mismatches.append("BF16 \(pattern): \(brain[index])") }
            #if !(os(macOS) && arch(x86_64))
            let expectedHalf = Float(Float16(bitPattern: pattern))
            if !same(half[index], expectedHalf) {
                mismatches.append("F16 \(String(pattern, radix: 16)): \(half[index]) != \(expectedHalf)")
            }
            #endif
        }
        XCTAssertEqual(mismatches.count, 0, mismatches.prefix(10).joined(separator: "; "))
        // A few by definition, independent of any conversion routine.
        XCTAssertEqual(half[0x0001], 0x1p-24)              // smallest subnormal
        XCTAssertEqual(half[0x03FF], 0x1p-14 - 0x1p-24)    // largest subnormal
        XCTAssertEqual(half[0x3C00], 1)
        XCTAssertEqual(half[0x7BFF], 65504)
        XCTAssertEqual(half[0x7C00], .infinity)
        XCTAssertEqual(half[0xFC00], -.infinity)
        XCTAssertEqual(half[0x8000].bitPattern, (-0.0 as Float).bitPattern)
        XCTAssertTrue(half[0x7E00].isNaN)
    }

    func testReadsF32AndF64AtUnalignedOffsets() throws {
        let directory = try makeDirectory()
        let singles: [Float] = [1.5, -0.0, .infinity, 0x1p-149, 3.4028235e38]
        let doubles: [Double] = [0.1, -2.5, 1e300, 1e-50, .pi]
        var buffer: [UInt8] = []
        for value in singles { withUnsafeBytes(of: value.bitPattern.littleEndian) { buffer += $0 } }
        for value in doubles { withUnsafeBytes(of: value.bitPattern.littleEndian) { buffer += $0 } }
        let header = "{\"s\":{\"dtype\":\"F32\",\"shape\":[5],\"data_offsets\":[0,20]},"
            + "\"d\":{\"dtype\":\"F64\",\"shape\":[5],\"data_offsets\":[20,60]}} "
        let url = try rawFile(directory, header: header, buffer: buffer)
        let file = try SafetensorsFile(contentsOf: url)
        XCTAssertNotEqual(file.bufferOffset % 4, 0)
        assertSameFloats(try file.tensor("s").array, singles.map(\.bitPattern), "F32")
        assertSameFloats(try file.tensor("d").array, doubles.map { Float($0).bitPattern }, "F64")
        XCTAssertEqual(try file.tensor("d").array[2], .infinity, "1e300 is beyond Float32")
    }

    // MARK: - The pretrained model

    func testMiniLMMatchesNumpy() throws {
        let url = try TestSupport.miniLMDirectory().appendingPathComponent("model.safetensors")
        let file = try SafetensorsFile(contentsOf: url)
        let output = try TestSupport.runPython(script, ["minilm", url.path])
        let reference = try JSONDecoder().decode(MiniLMReference.self, from: output)

        XCTAssertEqual(file.names.count, 104)
        XCTAssertEqual(reference.count, 104)
        XCTAssertEqual(file.metadata, reference.metadata)
        XCTAssertEqual(Set(file.names), Set(reference.tensors.keys))

        let queryName = "encoder.layer.0.attention.self.query.weight"
        XCTAssertEqual(file.info(queryName)?.shape, [384, 384])
        XCTAssertEqual(file.info(queryName)?.dtype, .f32)
        let query = try file.tensor(queryName, expectedShape: [384, 384])
        XCTAssertEqual(reference.spot.name, queryName)
        let spots = reference.spot.positions.map { query[$0] }
        assertSameFloats(spots, reference.spot.bits, "spot values of \(queryName)")

        // The same values through read(into:), straight into caller-owned memory.
        let destination = UnsafeMutablePointer<Float>.allocate(capacity: 384 * 384)
        defer { destination.deallocate() }
        try file.read(queryName, into: destination, shape: [384, 384])
        XCTAssertTrue(query.array.elementsEqual(UnsafeBufferPointer(start: destination, count: 384 * 384)))

        // Every tensor's dtype, shape and sum, which catches a wrong offset anywhere.
        for (name, expected) in reference.tensors {
            let info = try XCTUnwrap(file.info(name), name)
            XCTAssertEqual(info.dtype.rawValue, expected.dtype, name)
            XCTAssertEqual(info.shape, expected.shape, name)
            guard info.dtype.isReadableAsFloat else { continue }
            let values = try file.tensor(name).array
            let sum = values.reduce(0.0) { $0 + Double($1) }
            XCTAssertEqual(sum, expected.sum, accuracy: 1e-9 * expected.abs_sum + 1e-12, name)
        }

        XCTAssertEqual(file.info("embeddings.position_ids")?.dtype, .i64)
        XCTAssertEqual(file.info("embeddings.position_ids")?.shape, [1, 512])
        assertThrows(.notFloat, url: url, tensor: "embeddings.position_ids", mentions: ["I64", "Float32"]) {
            _ = try file.tensor("embeddings.position_ids")
        }
        assertThrows(.shapeMismatch, url: url, tensor: queryName, mentions: ["[384, 384]", "[384, 385]"]) {
            _ = try file.tensor(queryName, expectedShape: [384, 385])
        }
    }

    // MARK: - Broken files

    /// A valid two-tensor header over a 40-byte buffer; the cases below break one thing each.
    private let validHeader = #"{"a":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]},"b":{"dtype":"F32","shape":[4],"data_offsets":[24,40]}}"#

    func testValidHandWrittenHeaderOpens() throws {
        // Guards the cases below: they must fail because of their one edit, not the base.
        let url = try rawFile(try makeDirectory(), header: validHeader, buffer: Array(repeating: 0, count: 40))
        let file = try SafetensorsFile(contentsOf: url)
        XCTAssertEqual(file.names, ["a", "b"])
        XCTAssertEqual(try file.tensor("b").array, [0, 0, 0, 0])
    }

    func testFileTooShort() throws {
        let directory = try makeDirectory()
        for length in [0, 5] {
            let url = directory.appendingPathComponent("short\(length).safetensors")
            try Data(repeating: 1, count: length).write(to: url)
            assertThrows(.fileTooShort, url: url, mentions: ["\(length) bytes"]) { _ = try SafetensorsFile(contentsOf: url) }
        }
    }

    func testMissingFile() throws {
        let url = try makeDirectory().appendingPathComponent("absent.safetensors")
        assertThrows(.io, url: url, mentions: ["cannot open"]) { _ = try SafetensorsFile(contentsOf: url) }
    }

    func testHeaderLengthPastEndOrAbsurd() throws {
        let directory = try makeDirectory()
        let buffer = [UInt8](repeating: 0, count: 40)
        let past = UInt64(validHeader.utf8.count + 41)
        let url = try rawFile(directory, header: validHeader, buffer: buffer, declaredLength: past)
        assertThrows(.invalidHeaderLength, url: url, mentions: ["header length \(past)", "runs past the end"]) {
            _ = try SafetensorsFile(contentsOf: url)
        }
        for absurd in [UInt64(100_000_001), UInt64.max] {
            let url = try rawFile(directory, header: validHeader, buffer: buffer, declaredLength: absurd)
            assertThrows(.invalidHeaderLength, url: url, mentions: ["\(absurd)", "100000000-byte limit"]) {
                _ = try SafetensorsFile(contentsOf: url)
            }
        }
    }

    func testHeaderNotUTF8OrNotAJSONObject() throws {
        let directory = try makeDirectory()
        let notUTF8 = try rawFile(directory, headerBytes: Data([0x7B, 0x22, 0xFF, 0xFE, 0x22, 0x7D]))
        assertThrows(.headerNotUTF8, url: notUTF8, mentions: ["UTF-8"]) { _ = try SafetensorsFile(contentsOf: notUTF8) }

        for (header, mention) in [("[1, 2]", "an array, not a JSON object"), ("\"text\"", "a string"),
                                  ("{\"a\": ", #"not valid JSON (it starts "{\"a\": ")"#), ("", "not valid JSON"),
                                  // As strict as the reference crate's serde_json: no trailing comma, no duplicate key.
                                  (#"{"__metadata__": {},}"#, "not valid JSON"), (#"{"a": {}, "a": {}}"#, "duplicate key 'a'")] {
            let url = try rawFile(directory, header: header)
            assertThrows(.headerNotJSONObject, url: url, mentions: [mention]) { _ = try SafetensorsFile(contentsOf: url) }
        }
    }

    func testMetadataMustMapStringsToStrings() throws {
        let directory = try makeDirectory()
        for metadata in [#"{"format": 1}"#, #"["pt"]"#] {
            let url = try rawFile(directory, header: #"{"__metadata__":\#(metadata)}"#)
            assertThrows(.invalidMetadata, url: url, mentions: ["__metadata__"]) { _ = try SafetensorsFile(contentsOf: url) }
        }
    }

    func testEntryMissingFieldsOrWithWrongTypes() throws {
        let directory = try makeDirectory()
        let buffer = [UInt8](repeating: 0, count: 40)
        let missing = [
            (#""dtype":"F32","#, "no \"dtype\""),
            (#""shape":[2,3],"#, "no \"shape\""),
            (#","data_offsets":[0,24]"#, "no \"data_offsets\""),
        ]
        for (removed, mention) in missing {
            let url = try rawFile(directory, header: edit(validHeader, removed, ""), buffer: buffer)
            assertThrows(.invalidEntry, url: url, tensor: "a", mentions: [mention]) { _ = try SafetensorsFile(contentsOf: url) }
        }
        let wrongTypes = [
            (#""dtype":"F32""#, #""dtype":5"#, "\"dtype\" must be a string, got 5"),
            (#""shape":[2,3]"#, #""shape":"2x3""#, "\"shape\" must be an array of integers, got \"2x3\""),
            (#""shape":[2,3]"#, #""shape":[2,1.5]"#, "got [2, 1.5]"),
            (#""shape":[2,3]"#, #""shape":[true,3]"#, "got [true, 3]"),
        ]
        for (original, replacement, mention) in wrongTypes {
            let url = try rawFile(directory, header: edit(validHeader, original, replacement), buffer: buffer)
            assertThrows(.invalidEntry, url: url, tensor: "a", mentions: [mention]) { _ = try SafetensorsFile(contentsOf: url) }
        }
        let notAnObject = try rawFile(directory, header: #"{"a":"F32"}"#)
        assertThrows(.invalidEntry, url: notAnObject, tensor: "a", mentions: ["a string, not an object"]) {
            _ = try SafetensorsFile(contentsOf: notAnObject)
        }
    }

    func testUnknownDType() throws {
        let url = try rawFile(try makeDirectory(), header: edit(validHeader, #""dtype":"F32""#, #""dtype":"F17""#),
                              buffer: Array(repeating: 0, count: 40))
        assertThrows(.unknownDType, url: url, tensor: "a", mentions: ["unknown dtype 'F17'", "BF16"]) {
            _ = try SafetensorsFile(contentsOf: url)
        }
    }

    func testNegativeOrOverflowingShape() throws {
        let directory = try makeDirectory()
        let buffer = [UInt8](repeating: 0, count: 40)
        let negative = try rawFile(directory, header: edit(validHeader, "[2,3]", "[2,-3]"), buffer: buffer)
        assertThrows(.invalidShape, url: negative, tensor: "a", mentions: ["[2, -3]", "negative"]) {
            _ = try SafetensorsFile(contentsOf: negative)
        }
        let huge = try rawFile(directory, header: edit(validHeader, "[2,3]", "[4294967296,4294967296]"), buffer: buffer)
        assertThrows(.invalidShape, url: huge, tensor: "a", mentions: ["more elements than can be addressed"]) {
            _ = try SafetensorsFile(contentsOf: huge)
        }
    }

    func testOffsetsNotTwoAscendingIntegers() throws {
        let directory = try makeDirectory()
        for offsets in ["[24]", "[24,0]", "[0,24,40]", "[-8,16]", "[0,24.5]", "\"0-24\""] {
            let url = try rawFile(directory, header: edit(validHeader, "[0,24]", offsets),
                                  buffer: Array(repeating: 0, count: 40))
            assertThrows(.invalidOffsets, url: url, tensor: "a", mentions: ["two ascending non-negative integers"]) {
                _ = try SafetensorsFile(contentsOf: url)
            }
        }
    }

    func testTruncatedFile() throws {
        let directory = try makeDirectory()
        let url = directory.appendingPathComponent("model.safetensors")
        let values: [Float] = Array(repeating: 1, count: 128)
        try values.withUnsafeBufferPointer { buffer in
            guard let base = buffer.baseAddress else { return XCTFail("empty buffer") }
            try SafetensorsWriter.write([.init(name: "encoder.layer.0.attention.self.query.weight", shape: [8, 16], data: base)], to: url)
        }
        let whole = try Data(contentsOf: url)
        try whole.prefix(whole.count - 88).write(to: url)
        // The message of the brief: file, tensor, the offsets and the buffer they exceed.
        assertThrows(.offsetsOutOfBounds, url: url, tensor: "encoder.layer.0.attention.self.query.weight",
                     mentions: ["data_offsets [0, 512] exceed the 424-byte buffer"]) {
            _ = try SafetensorsFile(contentsOf: url)
        }
    }

    func testByteLengthDisagreesWithShapeAndDType() throws {
        let url = try rawFile(try makeDirectory(), header: edit(validHeader, #""dtype":"F32","shape":[2,3]"#, #""dtype":"F16","shape":[2,3]"#),
                              buffer: Array(repeating: 0, count: 40))
        assertThrows(.sizeMismatch, url: url, tensor: "a", mentions: ["[0, 24] hold 24 bytes", "[2, 3] of F16 needs 12"]) {
            _ = try SafetensorsFile(contentsOf: url)
        }
    }

    func testSubByteDTypesMustFillWholeBytes() throws {
        // F4 packs two elements per byte: 4 elements take 2 bytes, 3 elements end mid-byte.
        let directory = try makeDirectory()
        let valid = try rawFile(directory, header: #"{"q":{"dtype":"F4","shape":[2,2],"data_offsets":[0,2]}}"#, buffer: [0x12, 0x34])
        let file = try SafetensorsFile(contentsOf: valid)
        XCTAssertEqual(file.info("q")?.dtype, .f4)
        XCTAssertEqual(file.info("q")?.byteRange, 0..<2)
        assertThrows(.notFloat, url: valid, tensor: "q", mentions: ["F4"]) { _ = try file.tensor("q") }
        let partial = try rawFile(directory, header: #"{"q":{"dtype":"F4","shape":[3],"data_offsets":[0,2]}}"#, buffer: [0x12, 0x34])
        assertThrows(.sizeMismatch, url: partial, tensor: "q", mentions: ["whole number of bytes"]) {
            _ = try SafetensorsFile(contentsOf: partial)
        }
    }

    func testOverlappingTensorsGapsAndTrailingBytes() throws {
        let directory = try makeDirectory()
        let overlap = try rawFile(directory, header: edit(validHeader, "[24,40]", "[16,32]"), buffer: Array(repeating: 0, count: 32))
        assertThrows(.overlappingTensors, url: overlap, tensor: "b", mentions: ["[16, 32] overlap tensor 'a' at [0, 24]"]) {
            _ = try SafetensorsFile(contentsOf: overlap)
        }
        let gap = try rawFile(directory, header: edit(validHeader, "[24,40]", "[28,44]"), buffer: Array(repeating: 0, count: 44))
        assertThrows(.uncoveredBytes, url: gap, tensor: "b", mentions: ["[24, 28]", "belong to no tensor"]) {
            _ = try SafetensorsFile(contentsOf: gap)
        }
        let trailing = try rawFile(directory, header: validHeader, buffer: Array(repeating: 0, count: 48))
        assertThrows(.uncoveredBytes, url: trailing, mentions: ["end at byte 40 of the 48-byte buffer"]) {
            _ = try SafetensorsFile(contentsOf: trailing)
        }
    }

    func testMissingTensorAndShapeMismatchOnRead() throws {
        let url = try rawFile(try makeDirectory(), header: validHeader, buffer: Array(repeating: 0, count: 40))
        let file = try SafetensorsFile(contentsOf: url)
        assertThrows(.missingTensor, url: url, tensor: "c", mentions: ["no such tensor"]) { _ = try file.tensor("c") }
        assertThrows(.shapeMismatch, url: url, tensor: "a", mentions: ["shape [2, 3] in the file, but [3, 2] expected"]) {
            _ = try file.tensor("a", expectedShape: [3, 2])
        }
        let destination = UnsafeMutablePointer<Float>.allocate(capacity: 6)
        defer { destination.deallocate() }
        assertThrows(.shapeMismatch, url: url, tensor: "a", mentions: ["[2, 3]", "[6] expected"]) {
            try file.read("a", into: destination, shape: [6])
        }
        assertThrows(.missingTensor, url: url, tensor: "c") { try file.read("c", into: destination, shape: [6]) }
    }

    // MARK: - Writing

    func testWriterRejectsBadEntriesAndLeavesExistingFile() throws {
        let directory = try makeDirectory()
        let url = directory.appendingPathComponent("keep.safetensors")
        try Data("previous".utf8).write(to: url)
        let values: [Float] = [1, 2, 3, 4]
        values.withUnsafeBufferPointer { buffer in
            guard let base = buffer.baseAddress else { return XCTFail("empty buffer") }
            let cases: [([SafetensorsWriter.Entry], String, String)] = [
                ([.init(name: "w", shape: [4], data: base), .init(name: "w", shape: [2, 2], data: base)], "w", "given twice"),
                ([.init(name: "__metadata__", shape: [4], data: base)], "__metadata__", "reserved"),
                ([.init(name: "neg", shape: [-4], data: base)], "neg", "[-4] has a negative dimension"),
            ]
            for (entries, tensor, mention) in cases {
                assertThrows(.invalidWriteEntry, url: url, tensor: tensor, mentions: [mention]) {
                    try SafetensorsWriter.write(entries, to: url)
                }
            }
        }
        XCTAssertEqual(try Data(contentsOf: url), Data("previous".utf8))
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: directory.path), ["keep.safetensors"])
    }

    func testWriterIntoMissingDirectory() throws {
        let url = try makeDirectory().appendingPathComponent("no/such/dir/model.safetensors")
        let value: [Float] = [1]
        value.withUnsafeBufferPointer { buffer in
            guard let base = buffer.baseAddress else { return XCTFail("empty buffer") }
            assertThrows(.io, url: url, mentions: ["creating a temporary file", "No such file or directory"]) {
                try SafetensorsWriter.write([.init(name: "x", shape: [1], data: base)], to: url)
            }
        }
    }

    func testWriterAcceptsTensorEntries() throws {
        let url = try makeDirectory().appendingPathComponent("tensors.safetensors")
        let tensor = Tensor(shape: [2, 2], values: [1, -2, 3.5, 0])
        try SafetensorsWriter.write([.init(name: "t", tensor: tensor)], to: url)
        XCTAssertEqual(try SafetensorsFile(contentsOf: url).tensor("t", expectedShape: [2, 2]).array, [1, -2, 3.5, 0])
    }

    func testEmptyFileMatchesReferenceBytes() throws {
        // The reference crate's own test (`test_empty`): "{}" padded to 8 bytes, and with
        // metadata {"framework": "pt"}.
        let directory = try makeDirectory()
        let bare = directory.appendingPathComponent("bare.safetensors")
        try SafetensorsWriter.write([], to: bare)
        XCTAssertEqual([UInt8](try Data(contentsOf: bare)), [8, 0, 0, 0, 0, 0, 0, 0] + Array("{}      ".utf8))
        let tagged = directory.appendingPathComponent("tagged.safetensors")
        try SafetensorsWriter.write([], metadata: ["framework": "pt"], to: tagged)
        XCTAssertEqual([UInt8](try Data(contentsOf: tagged)),
                       [40, 0, 0, 0, 0, 0, 0, 0] + Array(#"{"__metadata__":{"framework":"pt"}}     "#.utf8))
        XCTAssertEqual(try SafetensorsFile(contentsOf: tagged).metadata, ["framework": "pt"])
        XCTAssertEqual(try SafetensorsFile(contentsOf: bare).names, [])
    }

    // MARK: - Atomic writes

    func testAtomicWriteReplacesWholeFileAndLeavesNoTemporaries() throws {
        let directory = try makeDirectory()
        let url = directory.appendingPathComponent("result.json")
        try AtomicFile.write(Data(repeating: 7, count: 1 << 20), to: url)
        XCTAssertEqual(try Data(contentsOf: url).count, 1 << 20)
        try AtomicFile.write(Data("short".utf8), to: url)
        XCTAssertEqual(try Data(contentsOf: url), Data("short".utf8), "the old, longer contents must be gone entirely")
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: directory.path), ["result.json"])

        // Permissions follow the umask like a plain create, not mkstemp's 0600.
        let mask = umask(0)
        umask(mask)
        let attributes = try FileManager.default.attributesOfItem(atPath: url.path)
        let permissions = try XCTUnwrap(attributes[.posixPermissions] as? Int)
        XCTAssertEqual(permissions, 0o666 & ~Int(mask))
    }

    func testAtomicWriteThatFailsKeepsTheOldFile() throws {
        struct Interrupted: Error {}
        let directory = try makeDirectory()
        let url = directory.appendingPathComponent("checkpoint.bin")
        try AtomicFile.write(Data("old contents".utf8), to: url)
        XCTAssertThrowsError(try AtomicFile.write(to: url) { sink in
            try sink.write(Data("half of the new".utf8))
            throw Interrupted()
        }) { error in
            XCTAssertTrue(error is Interrupted, "the producer's error is rethrown unchanged, got \(error)")
        }
        XCTAssertEqual(try Data(contentsOf: url), Data("old contents".utf8))
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: directory.path), ["checkpoint.bin"])
    }

    func testAtomicWriteIntoMissingDirectory() throws {
        let url = try makeDirectory().appendingPathComponent("missing/out.json")
        XCTAssertThrowsError(try AtomicFile.write(Data("x".utf8), to: url)) { error in
            guard let error = error as? AtomicFileError else { return XCTFail("unexpected error \(error)") }
            XCTAssertEqual(error.path, url.path)
            XCTAssertTrue(error.description.contains(url.path), error.description)
            XCTAssertTrue(error.description.contains("creating a temporary file in \(url.deletingLastPathComponent().path)"), error.description)
            XCTAssertTrue(error.description.contains("No such file or directory"), error.description)
        }
    }

    // MARK: - Helpers

    private let script = TestSupport.referenceScript("safetensors_fixtures.py")

    private struct Fixture: Decodable {
        struct Entry: Decodable { let dtype: String; let shape: [Int]; let bits: [UInt32]? }
        let metadata: [String: String]
        let tensors: [String: Entry]
    }

    private struct Verified: Decodable {
        struct Entry: Decodable { let dtype: String; let shape: [Int]; let bits: [UInt32] }
        let metadata: [String: String]
        let tensors: [String: Entry]
        let header_length: Int
        let names_in_buffer_order: [String]
        let resaved_identical: Bool
    }

    private struct MiniLMReference: Decodable {
        struct Entry: Decodable { let dtype: String; let shape: [Int]; let sum: Double; let abs_sum: Double }
        struct Spot: Decodable { let name: String; let positions: [Int]; let bits: [UInt32] }
        let count: Int
        let metadata: [String: String]
        let tensors: [String: Entry]
        let spot: Spot
    }

    /// A fresh directory removed after the test.
    private func makeDirectory() throws -> URL {
        let url = try TestSupport.temporaryDirectory("prm-safetensors")
        addTeardownBlock { try? FileManager.default.removeItem(at: url) }
        return url
    }

    /// Tensors with awkward shapes (scalar, a zero-sized dimension, unit dimensions), given out
    /// of name order, with values that include -0, infinities, NaN, subnormals and extremes.
    private func oddTensors() -> [(name: String, shape: [Int], values: [Float])] {
        var generator = RandomSource(seed: 0x5AFE_7E05)  // the same SplitMix64 sequence on every run
        let specials: [Float] = [-0.0, .infinity, -.infinity, .nan, 0x1p-149, .greatestFiniteMagnitude, -1]
        func values(_ count: Int) -> [Float] {
            (0..<count).map { index in
                index < specials.count && count > 20 ? specials[index]
                    : Float(Double(generator.next() >> 11) * 0x1p-53 * 8 - 4)
            }
        }
        let shapes: [(String, [Int])] = [
            ("z.last", [3, 5, 7]), ("a.scalar", []), ("m.empty", [4, 0, 3]),
            ("b.vector", [1]), ("c.unit_dims", [2, 1, 3, 1]), ("unicode.é", [2]),
        ]
        return shapes.map { name, shape in (name, shape, values(shape.reduce(1, *))) }
    }

    private func write(_ tensors: [(name: String, shape: [Int], values: [Float])], metadata: [String: String]?, to url: URL) throws {
        // Copies that live until the write returns, as Entry requires.
        let buffers = tensors.map { tensor -> UnsafeMutablePointer<Float> in
            let buffer = UnsafeMutablePointer<Float>.allocate(capacity: max(tensor.values.count, 1))
            buffer.initialize(from: tensor.values, count: tensor.values.count)
            return buffer
        }
        defer { buffers.forEach { $0.deallocate() } }
        let entries = zip(tensors, buffers).map { SafetensorsWriter.Entry(name: $0.name, shape: $0.shape, data: $1) }
        try SafetensorsWriter.write(entries, metadata: metadata, to: url)
    }

    /// Writes a file from raw parts: the header length (`declaredLength`, else the header's
    /// true length), the header bytes, the buffer.
    private func rawFile(_ directory: URL, header: String, buffer: [UInt8] = [], declaredLength: UInt64? = nil) throws -> URL {
        try rawFile(directory, headerBytes: Data(header.utf8), buffer: buffer, declaredLength: declaredLength)
    }

    private func rawFile(_ directory: URL, headerBytes: Data, buffer: [UInt8] = [], declaredLength: UInt64? = nil) throws -> URL {
        let url = directory.appendingPathComponent("broken-\(UUID().uuidString).safetensors")
        var data = Data()
        withUnsafeBytes(of: (declaredLength ?? UInt64(headerBytes.count)).littleEndian) { data.append(contentsOf: $0) }
        data.append(headerBytes)
        data.append(contentsOf: buffer)
        try data.write(to: url)
        return url
    }

    /// `text` with `original` replaced; fails the test if `original` is absent, so that a
    /// case cannot silently test the unedited header.
    private func edit(_ text: String, _ original: String, _ replacement: String, line: UInt = #line) -> String {
        XCTAssertTrue(text.contains(original), "edit target \(original) not in header", line: line)
        return text.replacingOccurrences(of: original, with: replacement)
    }

    /// Asserts that `body` throws a `SafetensorsError` of `kind` whose description names the
    /// file, the tensor (when given) and every `mentions` fragment.
    private func assertThrows(
        _ kind: SafetensorsError.Kind, url: URL, tensor: String? = nil, mentions: [String] = [],
        line: UInt = #line, _ body: () throws -> Void
    ) {
        do {
            try body()
            XCTFail("expected the \(kind) error, nothing was thrown", line: line)
        } catch let error as SafetensorsError {
            let text = error.description
            XCTAssertEqual(error.kind, kind, text, line: line)
            XCTAssertEqual(error.tensor, tensor, text, line: line)
            XCTAssertTrue(text.hasPrefix(url.path + ": "), "does not name the file: \(text)", line: line)
            if let tensor {
                XCTAssertTrue(text.contains("tensor '\(tensor)'"), "does not name the tensor: \(text)", line: line)
            }
            for fragment in mentions {
                XCTAssertTrue(text.contains(fragment), "\"\(fragment)\" missing from: \(text)", line: line)
            }
            XCTAssertFalse(text.contains("\n"), "not one line: \(text)", line: line)
        } catch {
            XCTFail("expected SafetensorsError, got \(type(of: error)): \(error)", line: line)
        }
    }

    /// Bit-exact comparison, except that any NaN matches any NaN (conversions may quiet them).
    private func assertSameFloats(_ got: [Float], _ expectedBits: [UInt32], _ context: String, line: UInt = #line) {
        XCTAssertEqual(got.count, expectedBits.count, context, line: line)
        for (index, (value, bits)) in zip(got, expectedBits).enumerated() where !same(value, Float(bitPattern: bits)) {
            XCTFail("\(context)[\(index)]: \(value) (\(String(value.bitPattern, radix: 16))) != \(Float(bitPattern: bits)) (\(String(bits, radix: 16)))", line: line)
            return
        }
    }

    private func same(_ a: Float, _ b: Float) -> Bool {
        (a.isNaN && b.isNaN) || a.bitPattern == b.bitPattern
    }
}
