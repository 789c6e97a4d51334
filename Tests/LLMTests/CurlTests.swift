import XCTest
@testable import LLM

final class CurlTests: XCTestCase {
    func testLibcurlLoadsOnFirstUse() throws {
        let version = try Curl.shared().version
        XCTAssertTrue(version.hasPrefix("libcurl/"), version)
    }
}
