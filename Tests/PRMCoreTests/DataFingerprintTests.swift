import XCTest
import PRMCore

/// The fingerprint saved in trainer_state.json must stay the hash earlier runs saved, or they
/// could no longer be resumed: pinned against FNV-1a 64 computed independently (Python).
final class DataFingerprintTests: XCTestCase {
    func testLabelsAndPartsHashAsSaved() {
        let items: [(String, [[Int32]])] = [("alice", [[1, 2, 3], []]), ("bob", [[-1, 70000]])]
        let print = DataFingerprint(items, label: \.0) { $0.1 }
        XCTAssertEqual(print.count, 2)
        XCTAssertEqual(print.fingerprint, "3497a2e8d4536bd0")
        let dialogues = DataFingerprint([[5, 6], [7]] as [[Int32]]) { [$0] }
        XCTAssertEqual(dialogues.count, 2)
        XCTAssertEqual(dialogues.fingerprint, "123107048e30f2ea")
        XCTAssertNotEqual(DataFingerprint([[5, 6]] as [[Int32]]) { [$0] }, DataFingerprint([[6, 5]] as [[Int32]]) { [$0] })
    }
}
