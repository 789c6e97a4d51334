#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Dispatch
#if canImport(Glibc)
import Glibc
#endif

/// CPU slots and named concurrency pools that running stages hold.
///
/// A stage needs `cpus` slots (at most the total) and, when it names a pool, one unit of it.
/// `acquire` blocks until both are free, or returns false once the run is stopping.
final class SlotPool: @unchecked Sendable {
    private let condition = Condition()
    private var freeSlots: Int
    let totalSlots: Int
    private var freePools: [String: Int]
    private var stopping = false

    init(slots: Int, pools: [String: Int]) {
        totalSlots = max(1, slots); freeSlots = totalSlots; freePools = pools
    }

    func acquire(cpus: Int, pool: String?) -> Bool {
        let need = min(max(1, cpus), totalSlots)
        condition.lock(); defer { condition.unlock() }
        while !stopping && (freeSlots < need || (pool != nil && (freePools[pool!] ?? 0) < 1)) { condition.wait() }
        if stopping { return false }
        freeSlots -= need
        if let pool { freePools[pool, default: 0] -= 1 }
        return true
    }

    func release(cpus: Int, pool: String?) {
        condition.lock()
        freeSlots += min(max(1, cpus), totalSlots)
        if let pool { freePools[pool, default: 0] += 1 }
        condition.broadcast()
        condition.unlock()
    }

    func stop() {
        condition.lock(); stopping = true; condition.broadcast(); condition.unlock()
    }
}
