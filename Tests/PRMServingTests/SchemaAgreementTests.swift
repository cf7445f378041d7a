import Foundation
import XCTest
import PRMCore
import PRMTestSupport
@testable import PRMServing

/// The Swift side of protocol v1 says what the JSON Schemas in protocols/v1 say (the Python
/// client is held to the same in test_client.py): the version, the error codes, the limits.
final class SchemaAgreementTests: XCTestCase {
    func schema(_ name: String) throws -> JSONObject {
        let url = TestSupport.repoRoot.appendingPathComponent("protocols/v1").appendingPathComponent(name)
        return try XCTUnwrap(try JSONReader.parse(Data(contentsOf: url)).object, name)
    }

    func testErrorCodesAreTheSchemasEnum() throws {
        let definitions = try XCTUnwrap(try schema("common.schema.json")["$defs"]?.object)
        let codes = try XCTUnwrap(definitions["errorCode"]?.object?["enum"]?.array).compactMap(\.string)
        XCTAssertEqual(Set(codes), Set(ErrorCode.allCases.map(\.rawValue)))
        XCTAssertEqual(codes.count, ErrorCode.allCases.count)
    }

    func testVersionIsTheSchemasConstant() throws {
        let definitions = try XCTUnwrap(try schema("common.schema.json")["$defs"]?.object)
        for base in ["requestBase", "okBase"] {
            let version = definitions[base]?.object?["properties"]?.object?["v"]?.object?["const"]?.number?.integer
            XCTAssertEqual(version, ProtocolV1.version, base)
        }
    }

    /// The `limits` object `info` replies with has exactly the members the schema requires.
    func testInfoLimitsAreTheSchemasMembers() throws {
        let limits = try XCTUnwrap(try schema("info.reply.schema.json")["properties"]?.object?["limits"]?.object)
        let required = try XCTUnwrap(limits["required"]?.array).compactMap(\.string)
        var w = JSONWriter()
        ServerLimits().write(&w)
        let written = try XCTUnwrap(try JSONReader.parse(w.bytes).object)
        XCTAssertEqual(Set(written.keys), Set(required))
        XCTAssertEqual(Set(try XCTUnwrap(limits["properties"]?.object).keys), Set(required))
    }
}
