import NN
import Threading

/// Where concurrent `generate` callers' calls meet: a sender thread (started by the first call
/// to find none, gone once no call has come for a while) sends the calls queued (up to
/// `maxRows`) as one worker request, hands each caller its replies, and goes on while calls
/// keep arriving; the callers wait for their replies. Many dialogues in flight
/// (evaluation's questions, the K-dialogue variant) so decode as one batch in the worker, each
/// row under its own update. A request that fails is retried caller by caller, so that one bad
/// call fails only its own caller.
///
/// Before each request the sender waits for the callers the last request answered to come back
/// with their next calls (a dialogue turns a reply into its next prompt in milliseconds:
/// parsing, retrieval, tokenising): until all are back, the request is full, or none arrived
/// for `gather` seconds. Without the wait the first caller back went alone and the rest waited
/// for its whole decode, so that requests alternated between one call and all the others. (The
/// sender was once the first caller itself, whose own dialogue then stalled while it sent the
/// others' requests.) A lone caller (joint RL's default) waits for nothing: its next call is
/// the arrival the sender waits for.
///
/// Rows are independent in the worker's decoder, but a row's arithmetic may depend on how many
/// rows share its batch (the GPU's matrix kernels are chosen by shape), so on a GPU a call's
/// last bits (rarely a greedy token) may depend on what it happened to be batched with, as in
/// any batching server; one caller at a time always decodes alone.
final class TorchCallBatcher: @unchecked Sendable {
    private struct Group {
        let calls: [EngineCall]
        let waiter: Waiter<[EngineReply]>
    }

    let maxRows: Int
    let gather: Double
    private let condition = Condition()
    private var queue: [Group] = []
    private var dispatching = false
    /// Callers answered by the last request that have not come back yet.
    private var awaited = 0
    private var sent = (requests: 0, calls: 0)

    /// The requests sent so far and the calls they held.
    var counts: (requests: Int, calls: Int) {
        condition.lock(); defer { condition.unlock() }
        return sent
    }

    init(maxRows: Int, gather: Double = 0.05) {
        self.maxRows = maxRows
        self.gather = gather
    }

    /// `calls`' replies; `send` makes one worker request (every caller passes the same).
    func generate(_ calls: [EngineCall], send: @escaping @Sendable ([EngineCall]) throws -> [EngineReply]) throws -> [EngineReply] {
        let waiter = Waiter<[EngineReply]>()
        condition.lock()
        queue.append(Group(calls: calls, waiter: waiter))
        awaited = max(0, awaited - 1)
        condition.broadcast()
        let starts = !dispatching
        dispatching = true
        condition.unlock()
        if starts { Threads.spawn(count: 1) { _ in self.drain(send) }.detach() }
        return try waiter.result()
    }

    /// The sender: sends what is queued, request after request, until nothing has come for
    /// `gather` seconds.
    private func drain(_ send: ([EngineCall]) throws -> [EngineReply]) {
        while true {
            condition.lock()
            waitForCallersToComeBack()
            var batch: [Group] = [], rows = 0
            while let g = queue.first, batch.isEmpty || rows + g.calls.count <= maxRows {
                batch.append(queue.removeFirst())
                rows += g.calls.count
            }
            if batch.isEmpty { dispatching = false }
            condition.unlock()
            if batch.isEmpty { return }
            let result = Result { try send(batch.flatMap(\.calls)) }
            condition.lock()
            awaited = batch.count
            sent.requests += 1
            sent.calls += rows
            condition.unlock()
            switch result {
            case .success(let replies):
                var at = 0
                for g in batch {
                    g.waiter.deliver(.success(Array(replies[at..<at + g.calls.count])))
                    at += g.calls.count
                }
            case .failure(let error):
                if batch.count == 1 { batch[0].waiter.deliver(.failure(error)); continue }
                for g in batch { g.waiter.deliver(Result { try send(g.calls) }) }
            }
        }
    }

    /// Holding the lock: waits while callers are still to come back and the next request has
    /// room, at most `gather` seconds after the last arrival.
    private func waitForCallersToComeBack() {
        let clock = ContinuousClock()
        var deadline = clock.now.advanced(by: .seconds(gather))
        while awaited > 0 && queue.reduce(0, { $0 + $1.calls.count }) < maxRows {
            let left = clock.now.duration(to: deadline)
            if left <= .zero { break }
            let before = queue.count
            condition.wait(seconds: Double(left.components.seconds) + Double(left.components.attoseconds) * 1e-18)
            if queue.count > before { deadline = clock.now.advanced(by: .seconds(gather)) }
        }
    }
}
