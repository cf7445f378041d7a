import Foundation
import XCTest
import PRMCore
@testable import PRMModel

/// The user log's lines: rows read back bit for bit, a torn last line left for a later read (a
/// writer may be mid-append) or reported when the reader is the last word, malformed lines
/// reported and skipped, and a torn line closed before the next append.
final class UserLogTests: XCTestCase {
    func temporaryLog() throws -> UserLog {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("userlog-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: dir) }
        return UserLog(beside: dir)
    }

    func record(_ id: String, seed: UInt64) -> UserLog.Record {
        var rng = RandomSource(seed: seed)
        var fit = ComparisonFit()
        fit.add([0.5, -0.25, 2])
        return UserLog.Record(userID: id, row: (0..<17).map { _ in rng.nextNormal() * 1e-3 }, fit: fit, writer: "w-\(seed)")
    }

    func testRecordsRoundTripExactly() throws {
        let log = try temporaryLog()
        XCTAssertEqual(try log.read().records.count, 0, "a missing log has no records")
        let written = [record("a", seed: 1), record("b \"quoted\"", seed: 2)]
        for r in written { try log.append(r) }
        let reading = try log.read(final: true)
        XCTAssertEqual(reading.records, written)
        XCTAssertEqual(reading.end, log.size)
        XCTAssertEqual(reading.problems, [])
    }

    func testTornAndMalformedLines() throws {
        let log = try temporaryLog()
        try log.append(record("a", seed: 1))
        let whole = log.size
        let handle = try FileHandle(forWritingTo: log.url)
        try handle.seekToEnd()
        try handle.write(contentsOf: Data("{\"user_id\":\"x\",\"row\":[1,\"two\"]}\n{\"user_id\":\"torn\",\"ro".utf8))
        try handle.close()

        let live = try log.read()
        XCTAssertEqual(live.records.map(\.userID), ["a"])
        XCTAssertEqual(live.problems.count, 1, "the malformed line; the torn one may still be being written")
        XCTAssertTrue(live.problems[0].contains("a non-number in 'row'"), live.problems[0])
        XCTAssertLessThan(live.end, log.size, "the torn line is left for a later read")
        XCTAssertGreaterThan(live.end, whole)

        let last = try log.read(final: true)
        XCTAssertEqual(last.problems.count, 2)
        XCTAssertTrue(last.problems[1].contains("torn last line"), last.problems[1])

        try log.terminateTornLine()
        try log.append(record("b", seed: 2))
        let after = try log.read(final: true)
        XCTAssertEqual(after.records.map(\.userID), ["a", "b"], "the append after a torn line is a line of its own")
        XCTAssertEqual(after.problems.count, 2)
        let size = log.size
        try log.terminateTornLine()
        XCTAssertEqual(log.size, size, "a log that ends with a newline is left alone")
    }
}
