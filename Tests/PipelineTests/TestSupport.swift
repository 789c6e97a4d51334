import Foundation
import XCTest
@testable import Pipeline

/// A fresh temporary directory, removed when the test ends.
func makeTempDir(_ test: XCTestCase, _ name: String = #function) throws -> String {
    let clean = name.filter { $0.isLetter || $0.isNumber }
    let dir = NSTemporaryDirectory() + "haps-\(clean)-\(UUID().uuidString.prefix(8))"
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    test.addTeardownBlock { try? FileManager.default.removeItem(atPath: dir) }
    return dir
}

func write(_ text: String, to path: String) throws {
    try FileIO.writeAtomically(text, to: path, sync: false)
}

func read(_ path: String) throws -> String { try FileIO.readString(path) }

/// Test stage types with typed ports (the framework itself ships only `command`).
struct TextSource: StageType {
    struct Params: StageParameters { @Param("the text") var text: String }
    static let name = "text-source"
    static let version = 1
    static func ports(_ p: Params) -> StagePorts { StagePorts(inputs: [], output: "text") }
    static func run(_ p: Params, _ c: StageContext) throws {
        try write(p.text, to: c.outputDirectory + "/text.txt")
    }
}

struct Upper: StageType {
    struct Params: StageParameters { @Param("appended") var suffix: String? = nil; @Param("unused") var count: Int? = nil }
    static let name = "upper"
    static let version = 1
    static func ports(_ p: Params) -> StagePorts { StagePorts(inputs: [InputPort("text", kind: "text")], output: "text") }
    static func run(_ p: Params, _ c: StageContext) throws {
        let t = try read(c.inputs["text"]!.path)
        try write(t.uppercased() + (p.suffix ?? ""), to: c.outputDirectory + "/text.txt")
    }
}

struct WordCount: StageType {
    struct Params: StageParameters {}
    static let name = "word-count"
    static let version = 1
    static func ports(_ p: Params) -> StagePorts {
        StagePorts(inputs: [InputPort("text", kind: "text"), InputPort("extra", kind: "text", optional: true)], output: "counts")
    }
    static func run(_ p: Params, _ c: StageContext) throws {
        let t = try read(c.inputs["text"]!.path)
        try write("\(t.split(separator: " ").count)\n", to: c.outputDirectory + "/count.txt")
    }
}

/// Processes `n` items through a journal, sleeping per item; for cancellation and resume tests.
struct SlowItems: StageType {
    struct Params: StageParameters { @Param("items") var n: Int; @Param("per item") var sleep_ms: Int }
    static let name = "slow-items"
    static let version = 1
    static func ports(_ p: Params) -> StagePorts { StagePorts(inputs: [], output: "text") }
    static func run(_ p: Params, _ c: StageContext) throws {
        let j = try c.journal()
        c.progress.setTotal(p.n)
        for i in 0..<p.n where !j.contains("\(i)") {
            try c.checkCancellation()
            usleep(UInt32(p.sleep_ms * 1000))
            try j.append(key: "\(i)", json: .number(Double(i * i)))
            c.progress.advance()
        }
        try write(j.entries.map { "\($0.key)=\(String(decoding: $0.value, as: UTF8.self))" }.joined(separator: "\n"),
                  to: c.outputDirectory + "/items.txt")
    }
}

let testRegistry = StageRegistry([CommandStage.self, TextSource.self, Upper.self, WordCount.self, SlowItems.self])

/// Collects results in memory for assertions.
final class RecordingObserver: RunObserver, @unchecked Sendable {
    let lock = NSLock()
    var started: [String] = []
    var finished: [StageResult] = []
    var messages: [String] = []
    var progress: [String: ProgressReporter] = [:]
    func stageStarted(_ stage: String, reasons: [String], progress: ProgressReporter) {
        lock.withLock { started.append(stage); self.progress[stage] = progress }
    }
    /// Items (or steps) a running stage has reported done.
    func completed(_ stage: String) -> Int { lock.withLock { progress[stage]?.snapshot.completed ?? 0 } }
    func stageFinished(_ result: StageResult) { lock.withLock { finished.append(result) } }
    func message(_ stage: String?, _ text: String) { lock.withLock { messages.append(text) } }
    func runFinished() {}
}

extension XCTestCase {
    func load(_ json: String, dir: String, overrides: [String] = [], registry: StageRegistry = testRegistry) throws -> PipelineSpec {
        try PipelineSpec.parse(text: json, file: "spec.json", registry: registry, overrides: overrides, baseDirectory: dir)
    }

    @discardableResult
    func runPipeline(_ spec: PipelineSpec, store: Store, options: RunOptions = RunOptions(),
                     cancellation: CancellationToken = CancellationToken(), observer: RecordingObserver = RecordingObserver()) throws -> RunSummary {
        try Executor(spec: spec, store: store, options: options, cancellation: cancellation, observer: observer).run()
    }
}

extension RunSummary {
    func outcomes() -> [String: String] {
        Dictionary(uniqueKeysWithValues: results.map { ($0.stage, $0.outcome.label) })
    }
}

/// Tests of pipelines of `command` stages that log each execution in `runs.log`.
class CommandStageTestCase: XCTestCase {
    var dir = ""
    var store: Store!

    override func setUpWithError() throws {
        dir = try makeTempDir(self)
        store = try Store(root: dir + "/store")
    }

    /// A command stage that records each execution in `runs.log` (one line per run).
    func cmd(_ name: String, inputs: [String: String] = [:], script: String, params: String = "{}") -> String {
        let ins = inputs.map { "\"\($0.key)\": \"\($0.value)\"" }.joined(separator: ", ")
        return #""\#(name)": {"type": "command", "inputs": {\#(ins)}, "params": {"run": "echo \#(name) >> \#(dir)/runs.log; \#(script)", "outputs": ["out.txt"], "params": \#(params)}}"#
    }

    func executions() -> [String] {
        ((try? read(dir + "/runs.log")) ?? "").split(separator: "\n").map(String.init)
    }
}

/// Cancels `token` as soon as `condition` holds (checked every 5 ms on a thread of its own): a
/// test interrupts a run at a point of its progress, not after a guess of how long it takes.
func cancel(_ token: CancellationToken, when condition: @escaping @Sendable () -> Bool) {
    Thread.detachNewThread {
        let deadline = Date().addingTimeInterval(120)
        while !condition() && Date() < deadline { usleep(5000) }
        token.cancel()
    }
}
