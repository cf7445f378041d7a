import XCTest
final class PRMTokenizersTestsPlaceholder: XCTestCase { func testBuilds() { XCTAssertTrue(true) } }
