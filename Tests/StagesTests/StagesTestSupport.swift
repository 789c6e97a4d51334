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

/// Runs `spec` on a new store at `root`; the run, and the unpacked output of `stage`.
func runAndUnpack(_ spec: PipelineSpec, stage: String, storeAt root: String) throws -> (run: RunSummary, output: String) {
    let store = try Store(root: root)
    let run = try Executor(spec: spec, store: store, options: RunOptions()).run()
    guard let digest = run.result(stage)?.output else {
        throw NSError(domain: "test", code: 1, userInfo: [NSLocalizedDescriptionKey: "stage \(stage) did not succeed: \(run.results)"])
    }
    return (run, try store.materialize(digest))
}

/// The JSON values of a JSON Lines file.
func jsonLines(_ path: String) throws -> [JSONValue] {
    try FileIO.lines(try FileIO.readString(path)).map { try JSONParser.parse(String($0)) }
}

/// `runInterruptedAtFirstCheckpoint`, then the checks of every resume test: the first run was
/// cancelled, the second ran, and its output is `expected` (an uninterrupted run's).
func assertResumesToTheSameOutput(_ spec: PipelineSpec, stage: String, expected: Digest?, storeAt root: String,
                                  file: StaticString = #filePath, line: UInt = #line) throws {
    let (first, second) = try runInterruptedAtFirstCheckpoint(spec, storeAt: root)
    XCTAssertEqual(first.results.first?.outcome.label, "cancelled", file: file, line: line)
    XCTAssertEqual(second.results.first?.outcome.label, "ran", file: file, line: line)
    XCTAssertEqual(second.result(stage)?.output, expected, "the resumed run ends with the same output", file: file, line: line)
}
