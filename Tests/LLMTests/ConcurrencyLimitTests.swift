import Foundation
import XCTest
@testable import LLM

final class ConcurrencyLimitTests: XCTestCase {
    final class Log: @unchecked Sendable {
        let lock = NSLock()
        var order: [Int] = []
        var inFlight = 0, peak = 0
        func enter(_ p: Int) { lock.withLock { order.append(p); inFlight += 1; peak = max(peak, inFlight) } }
        func leave() { lock.withLock { inFlight -= 1 } }
    }

    func testAFreedSlotGoesToTheHighestPriorityThenTheEarliest() {
        let limit = ConcurrencyLimit(1), log = Log()
        let holding = DispatchSemaphore(value: 0), release = DispatchSemaphore(value: 0)
        let group = DispatchGroup()
        Thread.detachNewThread { limit.with { holding.signal(); release.wait() } }
        holding.wait()
        for (i, p) in [0, 5, 1, 5].enumerated() {
            group.enter()
            Thread.detachNewThread { limit.with(priority: p) { log.enter(p); log.leave() }; group.leave() }
            while limit.waiting < i + 1 { usleep(1000) }  // queued in this order: wait until this one waits
        }
        release.signal()
        group.wait()
        XCTAssertEqual(log.order, [5, 5, 1, 0])
    }

    func testNeverMoreInFlightThanTheLimitAndLoweringIt() {
        let endpoints = EndpointLimits()
        let limit = endpoints.limit(for: "http://a/v1", 8)
        XCTAssertTrue(endpoints.limit(for: "http://a/v1", 3) === limit, "one limit per URL")
        XCTAssertEqual(endpoints.capacity(of: "http://a/v1"), 3, "the smallest given wins")
        XCTAssertEqual(endpoints.limit(for: "http://a/v1", 16).capacity, 3)
        let log = Log()
        let group = DispatchGroup()
        for i in 0..<32 {  // threads of their own: all of them want a slot at once
            group.enter()
            Thread.detachNewThread { limit.with(priority: i % 3) { log.enter(i); usleep(5000); log.leave() }; group.leave() }
        }
        group.wait()
        XCTAssertEqual(log.order.count, 32)
        XCTAssertEqual(log.peak, 3)
    }
}
