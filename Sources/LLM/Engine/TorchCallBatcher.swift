import NN

/// Where concurrent `generate` callers' calls meet: the first caller to find no request in
/// flight sends every call queued (up to `maxRows`) as one worker request, hands each caller
/// its replies, and goes on while calls keep arriving; the others wait. Many dialogues in flight
/// (evaluation's questions, the K-dialogue variant) so decode as one batch in the worker, each
/// row under its own update. A request that fails is retried caller by caller, so that one bad
/// call fails only its own caller.
///
/// Rows are independent in the worker's decoder, but a row's arithmetic may depend on how many
/// rows share its batch (the GPU's matrix kernels are chosen by shape), so on a GPU a call's
/// last bits (rarely a greedy token) may depend on what it happened to be batched with, as in
/// any batching server; one caller at a time (joint RL's default, one question per update)
/// always decodes alone.
final class TorchCallBatcher: @unchecked Sendable {
    private struct Group {
        let calls: [EngineCall]
        let waiter: Waiter<[EngineReply]>
    }

    let maxRows: Int
    private let lock = Lock()
    private var queue: [Group] = []
    private var dispatching = false

    init(maxRows: Int) { self.maxRows = maxRows }

    /// `calls`' replies; `send` makes one worker request (every caller passes the same).
    func generate(_ calls: [EngineCall], send: ([EngineCall]) throws -> [EngineReply]) throws -> [EngineReply] {
        let waiter = Waiter<[EngineReply]>()
        let leads = lock.withLock { () -> Bool in
            queue.append(Group(calls: calls, waiter: waiter))
            if dispatching { return false }
            dispatching = true
            return true
        }
        if leads { drain(send) }
        return try waiter.result()
    }

    /// Sends what is queued, batch after batch, until nothing is.
    private func drain(_ send: ([EngineCall]) throws -> [EngineReply]) {
        while true {
            let batch = lock.withLock { () -> [Group] in
                var taken: [Group] = [], rows = 0
                while let g = queue.first, taken.isEmpty || rows + g.calls.count <= maxRows {
                    taken.append(queue.removeFirst())
                    rows += g.calls.count
                }
                if taken.isEmpty { dispatching = false }
                return taken
            }
            if batch.isEmpty { return }
            do {
                let replies = try send(batch.flatMap(\.calls))
                var at = 0
                for g in batch {
                    g.waiter.deliver(.success(Array(replies[at..<at + g.calls.count])))
                    at += g.calls.count
                }
            } catch {
                if batch.count == 1 { batch[0].waiter.deliver(.failure(error)); continue }
                for g in batch { g.waiter.deliver(Result { try send(g.calls) }) }
            }
        }
    }
}
