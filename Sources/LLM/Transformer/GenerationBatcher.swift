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
    private let condition = Condition()
    private var pending: [(GenerationRequest, Completion)] = []
    private var stopped = false
    /// Batches run and requests served (for logs and tests).
    public private(set) var batches = 0, served = 0, largestBatch = 0

    public init(model: DecoderModel, maxBatch: Int = 16, maxQueue: Int = 256) {
        self.model = model; self.maxBatch = max(1, maxBatch); self.maxQueue = max(1, maxQueue)
        Threads.spawn(count: 1) { [self] _ in work() }.detach()  // the worker holds the batcher until stop()
    }

    /// Queues a request; `completion` is called on the worker thread when it is done.
    public func submit(_ request: GenerationRequest, completion: @escaping Completion) throws(QueueFull) {
        condition.lock()
        defer { condition.unlock() }
        if pending.count >= maxQueue { throw QueueFull(waiting: pending.count) }
        pending.append((request, completion))
        condition.signal()
    }

    /// Finishes what is queued, then ends the worker.
    public func stop() {
        condition.lock(); stopped = true; condition.signal(); condition.unlock()
    }

    public var waiting: Int { condition.lock(); defer { condition.unlock() }; return pending.count }

    private func work() {
        while true {
            condition.lock()
            while pending.isEmpty && !stopped { condition.wait() }
            if pending.isEmpty && stopped { condition.unlock(); return }
            let batch = Array(pending.prefix(maxBatch))
            pending.removeFirst(batch.count)
            condition.unlock()
            let outcome = Result { try model.generate(batch.map(\.0)) }
            condition.lock()
            batches += 1; served += batch.count; largestBatch = max(largestBatch, batch.count)
            condition.unlock()
            for (i, (_, completion)) in batch.enumerated() { completion(outcome.map { $0[i] }) }
        }
    }
}
