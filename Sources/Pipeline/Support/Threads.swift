#if canImport(Glibc)
import Glibc
#endif

/// Runs `body(i)` for i in 0..<count on `count` threads of its own and waits for all of them.
/// For work that blocks on I/O, where Dispatch's pool would cap concurrency at the core count.
public enum Threads {
    public static func run(count: Int, stackSize: Int = 1 << 20, _ body: @escaping @Sendable (Int) -> Void) {
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
        for i in 0..<count {
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
                // No thread to be had: do the share of work here rather than lose it.
                Unmanaged<Job>.fromOpaque(job).takeRetainedValue().body(i)
            }
        }
        for t in threads { pthread_join(t, nil) }
    }
}
