#if canImport(Glibc)
import Glibc
#endif

/// Our own parallel loops, on a given number of threads (the stage's CPU slots), so that they
/// and OpenBLAS together never use more cores than a stage was given.
///
///     Parallel.forEach(4, threads: 2) { i in ... }   // i = 0..<4, two at a time
public enum Parallel {
    /// Runs `body(i)` for every i in 0..<count on up to `threads` threads (the caller's among
    /// them), then returns; the first error thrown, if any, is rethrown.
    public static func forEach(_ count: Int, threads: Int, _ body: @escaping @Sendable (Int) throws -> Void) throws {
        let workers = min(max(1, threads), count)
        if workers <= 1 { for i in 0..<count { try body(i) }; return }
        final class Shared: @unchecked Sendable {
            let lock = SpinLock()
            var next = 0
            var error: (any Error)?
            let body: @Sendable (Int) throws -> Void
            let count: Int
            init(count: Int, body: @escaping @Sendable (Int) throws -> Void) { self.count = count; self.body = body }
            func work() {
                while true {
                    let i: Int? = lock.withLock { guard next < count, error == nil else { return nil }; defer { next += 1 }; return next }
                    guard let i else { return }
                    do { try body(i) } catch { lock.withLock { if self.error == nil { self.error = error } } }
                }
            }
        }
        let shared = Shared(count: count, body: body)
        var ids: [pthread_t] = []
        for _ in 1..<workers {
            var id = pthread_t()
            let box = Unmanaged.passRetained(shared).toOpaque()
            let rc = pthread_create(&id, nil, { p in
                let s = Unmanaged<AnyObject>.fromOpaque(p!).takeRetainedValue()
                (s as! Shared).work()
                return nil
            }, box)
            if rc == 0 { ids.append(id) } else { Unmanaged<Shared>.fromOpaque(box).release() }
        }
        shared.work()
        for id in ids { pthread_join(id, nil) }
        if let e = shared.error { throw e }
    }
}
