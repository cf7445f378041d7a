import XCTest
final class PRMModelTestsPlaceholder: XCTestCase { func testBuilds() { XCTAssertTrue(true) } }
