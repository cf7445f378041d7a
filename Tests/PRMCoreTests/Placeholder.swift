import XCTest
final class PRMCoreTestsPlaceholder: XCTestCase { func testBuilds() { XCTAssertTrue(true) } }
