#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The project's one mutual-exclusion lock (a pthread mutex in memory of its own, which must
/// not move), used as `lock.withLock { ... }` or, where a scope needs it, `lock()`/`unlock()`.
///
/// Every module uses this one type (NN and LLM import no Foundation; Pipeline links
/// FoundationEssentials only, for a smaller binary that starts faster). The standard library's
/// `Synchronization.Mutex` was considered: it has no separate lock()/unlock() (which
/// `Condition` users and scoped locks here need) and its `withLock` returns `sending` values,
/// which generic callers cannot always give; it also needs macOS 15.
public final class Lock: @unchecked Sendable {
    fileprivate let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    public init() { pthread_mutex_init(mutex, nil) }
    deinit { pthread_mutex_destroy(mutex); mutex.deallocate() }
    public func lock() { pthread_mutex_lock(mutex) }
    public func unlock() { pthread_mutex_unlock(mutex) }
    @inlinable public func withLock<T>(_ body: () throws -> T) rethrows -> T {
        lock(); defer { unlock() }
        return try body()
    }
}

/// A condition variable with its own lock: `lock()`, `wait()` until signalled, `broadcast()`.
public final class Condition: @unchecked Sendable {
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let cond = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
    public init() { pthread_mutex_init(mutex, nil); pthread_cond_init(cond, nil) }
    deinit {
        pthread_cond_destroy(cond); pthread_mutex_destroy(mutex)
        cond.deallocate(); mutex.deallocate()
    }
    public func lock() { pthread_mutex_lock(mutex) }
    public func unlock() { pthread_mutex_unlock(mutex) }
    /// Must hold the lock; releases it while waiting.
    public func wait() { pthread_cond_wait(cond, mutex) }
    /// Must hold the lock; releases it while waiting, until signalled or `seconds` have passed.
    /// False when the time passed (a wake-up may also be spurious: callers recheck their state).
    @discardableResult
    public func wait(seconds: Double) -> Bool {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)  // the condition's clock
        let nanos = Int(now.tv_nsec) + Int(max(0, seconds) * 1e9)
        var deadline = now
        deadline.tv_sec += .init(nanos / 1_000_000_000)
        deadline.tv_nsec = .init(nanos % 1_000_000_000)
        return pthread_cond_timedwait(cond, mutex, &deadline) == 0
    }
    public func broadcast() { pthread_cond_broadcast(cond) }
    /// Wakes one waiter.
    public func signal() { pthread_cond_signal(cond) }
}
