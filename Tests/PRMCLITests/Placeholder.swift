import XCTest
final class PRMCLITestsPlaceholder: XCTestCase { func testBuilds() { XCTAssertTrue(true) } }
