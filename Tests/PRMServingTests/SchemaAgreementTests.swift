import Foundation
import XCTest
import PRMCore
import PRMModel
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

    /// Every operation has a request and a reply schema, and "any v1 request" is one of exactly
    /// the operations' requests.
    func testEveryOperationHasItsSchemas() throws {
        let anyRequest = try XCTUnwrap(try schema("request.schema.json")["oneOf"]?.array).compactMap { $0.object?["$ref"]?.string }
        XCTAssertEqual(Set(anyRequest), Set(Operation.allCases.map { "\($0.rawValue).request.schema.json" }))
        for op in Operation.allCases {
            XCTAssertEqual(try schema("\(op.rawValue).request.schema.json")["properties"]?.object?["op"]?.object?["const"]?.string, op.rawValue)
            XCTAssertNoThrow(try schema("\(op.rawValue).reply.schema.json"), op.rawValue)
        }
    }

    /// The members a rank reply with uncertainty and a suggest reply carry are the schemas' properties.
    func testUncertaintyAndSuggestMembersAreInTheSchemas() throws {
        let rank = try XCTUnwrap(try schema("rank.reply.schema.json")["properties"]?.object)
        for key in ["uncertainty", "std", "uncertainty_reason"] { XCTAssertNotNil(rank[key], key) }
        let suggest = try XCTUnwrap(try schema("suggest.reply.schema.json")["properties"]?.object)
        let pair = PairSuggestion(first: 0, second: 1, firstPreferred: 0.5, varianceReduction: 1)
        let reply = WireReply.suggest(id: .number(JSONNumber(1)), JobResult.Suggested(pairs: [pair], basis: "prior", totalVariance: 2, knownUser: false,
                                                                                      fingerprint: "0123456789abcdef"),
                                      timing: WireReply.Timing(queueMs: 0, computeMs: 0))
        let written = try XCTUnwrap(try JSONReader.parse(reply).object)
        XCTAssertEqual(Set(written.keys).subtracting(["v", "id", "ok"]), Set(suggest.keys))
        let pairKeys = try XCTUnwrap(suggest["pairs"]?.object?["items"]?.object?["required"]?.array).compactMap(\.string)
        XCTAssertEqual(Set(try XCTUnwrap(written["pairs"]?.array?.first?.object).keys), Set(pairKeys))
    }
}
