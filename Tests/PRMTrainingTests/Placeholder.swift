import XCTest
final class PRMTrainingTestsPlaceholder: XCTestCase { func testBuilds() { XCTAssertTrue(true) } }
