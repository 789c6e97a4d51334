import NN
#if canImport(Glibc)
import Glibc
#endif

/// Gathers generation requests from many callers (a server's concurrent requests) into batches
/// for one engine: a worker thread takes whatever is queued (up to `maxBatch`) and generates it
/// as one batch, while new requests queue for the next. The queue is bounded: past `maxQueue`
/// waiting requests, `submit` refuses at once (a server answers 429).
public final class GenerationBatcher: @unchecked Sendable {
    public struct QueueFull: Error, CustomStringConvertible {
        public var waiting: Int
        public var description: String { "the server is busy: \(waiting) requests are already waiting" }
    }
    public typealias Completion = @Sendable (Result<GenerationResult, any Error>) -> Void

    public let model: DecoderModel
    public let maxBatch: Int
    public let maxQueue: Int
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let condition = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
    private var pending: [(GenerationRequest, Completion)] = []
    private var stopped = false
    private var thread = pthread_t()
    /// Batches run and requests served (for logs and tests).
    public private(set) var batches = 0, served = 0, largestBatch = 0

    public init(model: DecoderModel, maxBatch: Int = 16, maxQueue: Int = 256) {
        self.model = model; self.maxBatch = max(1, maxBatch); self.maxQueue = max(1, maxQueue)
        pthread_mutex_init(mutex, nil); pthread_cond_init(condition, nil)
        let me = Unmanaged.passRetained(self).toOpaque()
        pthread_create(&thread, nil, { p in
            let batcher = Unmanaged<GenerationBatcher>.fromOpaque(p!).takeRetainedValue()
            batcher.work()
            return nil
        }, me)
    }

    deinit { pthread_cond_destroy(condition); pthread_mutex_destroy(mutex); condition.deallocate(); mutex.deallocate() }

    /// Queues a request; `completion` is called on the worker thread when it is done.
    public func submit(_ request: GenerationRequest, completion: @escaping Completion) throws(QueueFull) {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        if pending.count >= maxQueue { throw QueueFull(waiting: pending.count) }
        pending.append((request, completion))
        pthread_cond_signal(condition)
    }

    /// Finishes what is queued, then ends the worker.
    public func stop() {
        pthread_mutex_lock(mutex); stopped = true; pthread_cond_signal(condition); pthread_mutex_unlock(mutex)
    }

    public var waiting: Int { pthread_mutex_lock(mutex); defer { pthread_mutex_unlock(mutex) }; return pending.count }

    private func work() {
        while true {
            pthread_mutex_lock(mutex)
            while pending.isEmpty && !stopped { pthread_cond_wait(condition, mutex) }
            if pending.isEmpty && stopped { pthread_mutex_unlock(mutex); return }
            let batch = Array(pending.prefix(maxBatch))
            pending.removeFirst(batch.count)
            pthread_mutex_unlock(mutex)
            let outcome = Result { try model.generate(batch.map(\.0)) }
            pthread_mutex_lock(mutex)
            batches += 1; served += batch.count; largestBatch = max(largestBatch, batch.count)
            pthread_mutex_unlock(mutex)
            for (i, (_, completion)) in batch.enumerated() { completion(outcome.map { $0[i] }) }
        }
    }
}
