import Foundation
import XCTest
@testable import Pipeline

/// A fresh temporary directory, removed when the test ends.
func makeTempDir(_ test: XCTestCase, _ prefix: String) throws -> String {
    let dir = NSTemporaryDirectory() + "\(prefix)-\(UUID().uuidString)"
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    test.addTeardownBlock { try? FileManager.default.removeItem(atPath: dir) }
    return dir
}

/// Runs `spec` on a new store at `root`, cancelling it as soon as a stage has written its first
/// checkpoint, then runs it again: the two runs, for resume tests of training stages.
func runInterruptedAtFirstCheckpoint(_ spec: PipelineSpec, storeAt root: String) throws -> (cancelled: RunSummary, resumed: RunSummary) {
    let store = try Store(root: root)
    let token = CancellationToken()
    let watcher = Thread {
        while !token.isCancelled {
            let work = (try? FileManager.default.contentsOfDirectory(atPath: root + "/work")) ?? []
            if work.contains(where: { !((try? FileManager.default.contentsOfDirectory(atPath: root + "/work/\($0)/checkpoints")) ?? []).isEmpty }) {
                token.cancel()
            }
            usleep(500)
        }
    }
    watcher.start()
    let first = try Executor(spec: spec, store: store, options: RunOptions(), cancellation: token).run()
    token.cancel()
    return (first, try Executor(spec: spec, store: store, options: RunOptions()).run())
}
