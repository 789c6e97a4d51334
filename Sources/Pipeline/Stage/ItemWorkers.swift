#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Dispatch
#if canImport(Glibc)
import Glibc
#endif

/// Runs a stage's items on `workers` threads (not bounded by the core count: items are
/// usually waiting on a model server), stopping at cancellation, and
/// collects every item's failure instead of stopping at the first (finished items are kept).
///
///     let failures = ItemWorkers.run(pending, workers: 4, cancellation: ctx.cancellation) { i in
///         try journal.append(key: "\(i)", json: try work(i))
///     }
public enum ItemWorkers {
    public struct Failure: Sendable {
        public var item: Int
        public var error: String
    }

    public static func run(_ items: [Int], workers: Int, cancellation: CancellationToken,
                           body: @escaping @Sendable (Int) throws -> Void) -> [Failure] {
        final class State: @unchecked Sendable {
            let lock = Lock()
            var cursor = 0
            var failures: [Failure] = []
        }
        let state = State()
        let n = min(max(1, workers), max(1, items.count))
        // Threads of our own: items are mostly waiting on servers, and Dispatch's
        // concurrentPerform would run only as many at once as there are cores.
        Threads.run(count: n) { _ in
            while !cancellation.isCancelled {
                let next: Int? = state.lock.withLock {
                    defer { state.cursor += 1 }
                    return state.cursor < items.count ? items[state.cursor] : nil
                }
                guard let item = next else { return }
                do { try body(item) } catch is CancellationError { return } catch {
                    state.lock.withLock { state.failures.append(Failure(item: item, error: String(describing: error))) }
                }
            }
        }
        return state.failures.sorted { $0.item < $1.item }
    }
}
