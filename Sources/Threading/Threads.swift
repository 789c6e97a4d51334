#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The one way the project starts threads of its own (pthreads, with a stack size), for work
/// that blocks on I/O (where Dispatch's pool would cap concurrency at the core count) and for
/// the numeric loops of `Parallel`.
///
///     Threads.run(count: 8) { i in fetch(i) }        // 8 threads; returns when all are done
///     let running = Threads.spawn(count: 2) { i in work(i) }; ...; running.join()
public enum Threads {
    /// Threads started by `spawn`, to be joined.
    public struct Running: ~Copyable {
        fileprivate var threads: [pthread_t]
        /// Waits for every thread to finish.
        public consuming func join() { for t in threads { pthread_join(t, nil) } }
        /// Lets the threads run on their own (a service's worker that lives as long as it).
        public consuming func detach() { for t in threads { pthread_detach(t) } }
    }

    /// Starts `body(i)` for i in 0..<count, each on a thread of its own. A thread that cannot
    /// be had runs its share on the calling thread, before `spawn` returns, rather than lose it.
    public static func spawn(count: Int, stackSize: Int = 1 << 20, _ body: @escaping @Sendable (Int) -> Void) -> Running {
        final class Job: @unchecked Sendable {
            let index: Int
            let body: @Sendable (Int) -> Void
            init(_ index: Int, _ body: @escaping @Sendable (Int) -> Void) { self.index = index; self.body = body }
        }
        var threads: [pthread_t] = []
        var attr = pthread_attr_t()
        pthread_attr_init(&attr)
        pthread_attr_setstacksize(&attr, stackSize)
        defer { pthread_attr_destroy(&attr) }
        for i in 0..<max(0, count) {
            let job = Unmanaged.passRetained(Job(i, body)).toOpaque()
            var t = pthread_t()
            let rc = pthread_create(&t, &attr, { raw in
                let job = Unmanaged<Job>.fromOpaque(raw!).takeRetainedValue()
                job.body(job.index)
                return nil
            }, job)
            if rc == 0 {
                threads.append(t)
            } else {
                Unmanaged<Job>.fromOpaque(job).takeRetainedValue().body(i)
            }
        }
        return Running(threads: threads)
    }

    /// Runs `body(i)` for i in 0..<count on `count` threads of its own and waits for all of them.
    public static func run(count: Int, stackSize: Int = 1 << 20, _ body: @escaping @Sendable (Int) -> Void) {
        spawn(count: count, stackSize: stackSize, body).join()
    }
}

/// Parallel loops on a given number of threads (the stage's CPU slots), so that they and
/// OpenBLAS together never use more cores than a stage was given.
///
///     try Parallel.forEach(4, threads: 2) { i in ... }   // i = 0..<4, two at a time
public enum Parallel {
    /// Runs `body(i)` for every i in 0..<count on up to `threads` threads (the caller's among
    /// them), then returns; the first error thrown, if any, is rethrown.
    public static func forEach(_ count: Int, threads: Int, _ body: @escaping @Sendable (Int) throws -> Void) throws {
        let workers = min(max(1, threads), count)
        if workers <= 1 { for i in 0..<count { try body(i) }; return }
        final class Shared: @unchecked Sendable {
            let lock = Lock()
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
        let helpers = Threads.spawn(count: workers - 1) { _ in shared.work() }
        shared.work()
        helpers.join()
        if let e = shared.error { throw e }
    }
}
