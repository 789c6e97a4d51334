#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Dispatch
#if canImport(Glibc)
import Glibc
#endif

/// A stage's progress: items done out of a total (if known), and a short status line.
/// Thread-safe; stages update it from any worker.
public final class ProgressReporter: @unchecked Sendable {
    private let lock = Lock()
    private var _total: Int?
    private var _completed = 0
    private var _status = ""
    private var _unit = "items"
    public let startedAt = Date()
    /// When the current counting began (resumed items are counted but not rated).
    private var rateBase = 0
    private var rateStart = Date()

    public init() {}

    public func setTotal(_ total: Int?, unit: String = "items") {
        lock.withLock { _total = total; _unit = unit }
    }
    /// Marks items as already done (e.g. resumed from a journal) without counting them in the rate.
    public func resume(completed: Int) {
        lock.withLock { _completed = completed; rateBase = completed; rateStart = Date() }
    }
    public func advance(by n: Int = 1) { lock.withLock { _completed += n } }
    public func setStatus(_ s: String) { lock.withLock { _status = s } }

    public struct Snapshot: Sendable {
        public var total: Int?
        public var completed: Int
        public var status: String
        public var unit: String
        public var elapsed: Double
        /// Items per second since counting began.
        public var rate: Double?
        public var eta: Double? {
            guard let total, let rate, rate > 0 else { return nil }
            return Double(max(0, total - completed)) / rate
        }
    }

    public var snapshot: Snapshot {
        lock.withLock {
            let dt = Date().timeIntervalSince(rateStart)
            let done = _completed - rateBase
            return Snapshot(total: _total, completed: _completed, status: _status, unit: _unit,
                            elapsed: Date().timeIntervalSince(startedAt),
                            rate: dt > 0.5 && done > 0 ? Double(done) / dt : nil)
        }
    }
}
