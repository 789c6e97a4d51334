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
/// The executor takes them with `tryAcquire` before it hands a stage to a thread, so waiting
/// for slots never holds a thread.
final class SlotPool: @unchecked Sendable {
    private let lock = Lock()
    private var freeSlots: Int
    let totalSlots: Int
    private var freePools: [String: Int]

    init(slots: Int, pools: [String: Int]) {
        totalSlots = max(1, slots); freeSlots = totalSlots; freePools = pools
    }

    /// Takes the slots (and the pool unit) if they are free now; false otherwise.
    func tryAcquire(cpus: Int, pool: String?) -> Bool {
        let need = min(max(1, cpus), totalSlots)
        return lock.withLock {
            guard freeSlots >= need, pool.map({ (freePools[$0] ?? 0) >= 1 }) ?? true else { return false }
            freeSlots -= need
            if let pool { freePools[pool, default: 0] -= 1 }
            return true
        }
    }

    func release(cpus: Int, pool: String?) {
        lock.withLock {
            freeSlots += min(max(1, cpus), totalSlots)
            if let pool { freePools[pool, default: 0] += 1 }
        }
    }
}
