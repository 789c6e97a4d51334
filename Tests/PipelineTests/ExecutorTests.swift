import XCTest
@testable import Pipeline

final class ExecutorTests: CommandStageTestCase {
    /// A stage that logs its start, then (`meet`) waits for the other stage to start too,
    /// then logs its end: with two slots they meet; with one they run one after the other.
    /// Ordering, not timing: no assertion depends on how fast the machine is.
    func rendezvous(_ name: String, other: String, meet: Bool, pool: String? = nil) -> String {
        let wait = meet ? "i=0; while [ ! -e \(dir)/\(other).started ] && [ $i -lt 400 ]; do sleep 0.05; i=$((i+1)); done; [ -e \(dir)/\(other).started ] || exit 3; " : ""
        return #""\#(name)": {"type": "command", \#(pool.map { "\"pool\": \"\($0)\", " } ?? "")"params": {"run": "echo start \#(name) >> \#(dir)/order.log; touch \#(dir)/\#(name).started; \#(wait)sleep 0.1; echo end \#(name) >> \#(dir)/order.log; echo \#(name) > {out}/x"}}"#
    }

    func order() -> [String] { ((try? read(dir + "/order.log")) ?? "").split(separator: "\n").map(String.init) }

    func testIndependentStagesRunInParallelWithinJobs() throws {
        var options = RunOptions()
        options.jobs = 2
        let together = try load(#"{"name": "p", "stages": {\#(rendezvous("a", other: "b", meet: true)), \#(rendezvous("b", other: "a", meet: true))}}"#, dir: dir)
        let s = try runPipeline(together, store: store, options: options)
        XCTAssertTrue(s.succeeded, "with -j 2 both are in flight at once (each saw the other start): \(s.results)")

        options.jobs = 1
        try? FileManager.default.removeItem(atPath: dir + "/order.log")
        let apart = try load(#"{"name": "q", "stages": {\#(rendezvous("c", other: "d", meet: false)), \#(rendezvous("d", other: "c", meet: false))}}"#, dir: dir)
        XCTAssertTrue(try runPipeline(apart, store: store, options: options).succeeded)
        XCTAssertEqual(order(), ["start c", "end c", "start d", "end d"], "with -j 1 they run one after the other")
    }

    /// A stage's time is its own: one that waited for a slot while another ran does not count
    /// the wait (bench/routers once reported a 0.5 s stage as 34 s).
    func testAStagesTimeLeavesOutItsWaitForASlot() throws {
        var options = RunOptions()
        options.jobs = 1
        let json = #"{"name": "p", "stages": {\#(cmd("slow", script: "sleep 1.2; echo a > {outputs.out.txt}")), \#(cmd("quick", script: "echo b > {outputs.out.txt}"))}}"#
        let s = try runPipeline(try load(json, dir: dir), store: store, options: options)
        XCTAssertTrue(s.succeeded)
        XCTAssertGreaterThanOrEqual(s.result("slow")!.seconds, 1.2)
        XCTAssertLessThan(s.result("quick")!.seconds, 1.0, "quick waited for slow's slot (or ran first); either way its own time is short")
    }

    func testNamedPoolsBoundConcurrency() throws {
        var options = RunOptions()
        options.jobs = 4
        let spec = try load(#"{"name": "p", "pools": {"gpu": 1}, "stages": {\#(rendezvous("a", other: "b", meet: false, pool: "gpu")), \#(rendezvous("b", other: "a", meet: false, pool: "gpu"))}}"#, dir: dir)
        XCTAssertTrue(try runPipeline(spec, store: store, options: options).succeeded)
        XCTAssertEqual(order(), ["start a", "end a", "start b", "end b"], "a pool of size 1 serialises its stages, whatever -j allows")
    }

    /// Slots are taken before a stage gets a thread, and stages waiting for them start in spec
    /// order as slots free up (before, each ready stage took a Dispatch thread and blocked on
    /// the pool, and whichever thread woke first ran next).
    func testStagesWaitingForSlotsStartInSpecOrder() throws {
        let names = (0..<6).map { "s\($0)" }
        let stages = names.map { rendezvous($0, other: "", meet: false) }.joined(separator: ", ")
        var options = RunOptions()
        options.jobs = 1
        XCTAssertTrue(try runPipeline(try load(#"{"name": "many", "stages": {\#(stages)}}"#, dir: dir), store: store, options: options).succeeded)
        XCTAssertEqual(order(), names.flatMap { ["start \($0)", "end \($0)"] })
    }

    /// The observer is told outside the executor's lock: an observer that cancels the run from
    /// `stageFinished` (which takes that lock) does not deadlock it.
    func testAnObserverMayCallBackIntoTheRun() throws {
        final class Canceller: RunObserver, @unchecked Sendable {
            let token: CancellationToken
            init(_ token: CancellationToken) { self.token = token }
            func stageStarted(_ stage: String, reasons: [String], progress: ProgressReporter) {}
            func stageFinished(_ result: StageResult) { token.cancel() }
            func message(_ stage: String?, _ text: String) {}
            func runFinished() {}
        }
        let spec = try load(#"{"name": "p", "stages": {"a": {"type": "text-source", "params": {"text": "x"}}, "b": {"type": "upper", "inputs": {"text": "a"}}}}"#, dir: dir)
        let token = CancellationToken(), done = DispatchSemaphore(value: 0)
        final class Box: @unchecked Sendable { var summary: RunSummary? }
        let box = Box(), store = self.store!
        Thread.detachNewThread {
            box.summary = try? Executor(spec: spec, store: store, options: RunOptions(), cancellation: token, observer: Canceller(token)).run()
            done.signal()
        }
        XCTAssertEqual(done.wait(timeout: .now() + 20), .success, "the run deadlocked")
        XCTAssertEqual(box.summary?.outcomes()["a"], "ran")
        XCTAssertEqual(box.summary?.outcomes()["b"], "skipped")
    }

    func chain(_ cParam: Int) -> String {
        #"{"name": "p", "stages": {\#(cmd("a", script: "echo A > {outputs.out.txt}")), \#(cmd("b", inputs: ["in": "a"], script: "cat {inputs.in} > {outputs.out.txt}; echo B >> {outputs.out.txt}")), \#(cmd("c", inputs: ["in": "b"], script: "cat {inputs.in} > {outputs.out.txt}; echo C{params.k} >> {outputs.out.txt}", params: "{\"k\": \(cParam)}")), \#(cmd("d", inputs: ["in": "c"], script: "cat {inputs.in} > {outputs.out.txt}; echo D >> {outputs.out.txt}")), \#(cmd("e", script: "echo E > {outputs.out.txt}"))}}"#
    }

    func testEditingAParameterRerunsOnlyThatStageAndItsDependentsAndRevertingIsACacheHit() throws {
        let s1 = try runPipeline(try load(chain(1), dir: dir), store: store)
        XCTAssertEqual(s1.outcomes(), ["a": "ran", "b": "ran", "c": "ran", "d": "ran", "e": "ran"])
        try FileManager.default.removeItem(atPath: dir + "/runs.log")

        let s2 = try runPipeline(try load(chain(2), dir: dir), store: store)
        XCTAssertEqual(s2.outcomes(), ["a": "cached", "b": "cached", "c": "ran", "d": "ran", "e": "cached"])
        XCTAssertEqual(executions().sorted(), ["c", "d"])
        XCTAssertEqual(s2.result("c")!.reasons, ["params.params.k changed: 1 → 2"])
        XCTAssertEqual(try read(try store.materialize(s2.result("d")!.output!) + "/out.txt"), "A\nB\nC2\nD\n")

        let s3 = try runPipeline(try load(chain(1), dir: dir), store: store)
        XCTAssertEqual(Set(s3.outcomes().values), ["cached"], "reverting the edit is a pure cache hit")
        XCTAssertEqual(executions().sorted(), ["c", "d"], "nothing ran")
        XCTAssertEqual(s3.result("d")!.output, s1.result("d")!.output)
    }

    func testEarlyCutoffStopsACascade() throws {
        func spec(_ text: String) throws -> PipelineSpec {
            try load(#"{"name": "p", "stages": {"src": {"type": "text-source", "params": {"text": "\#(text)"}}, "count": {"type": "word-count", "inputs": {"text": "src"}}, \#(cmd("report", inputs: ["n": "count"], script: "cat {inputs.n} > {outputs.out.txt}"))}}"#, dir: dir)
        }
        try runPipeline(try spec("one two three"), store: store)
        let s = try runPipeline(try spec("four five six"), store: store)
        XCTAssertEqual(s.outcomes(), ["src": "ran", "count": "ran", "report": "cached"],
                       "the count is the same, so the report is not recomputed")
        XCTAssertEqual(executions(), ["report"])
    }

    func testFailFastStopsSchedulingAndKeepGoingRunsTheRest() throws {
        let json = #"{"name": "p", "stages": {\#(cmd("bad", script: "sleep 0.2; echo oops >&2; exit 3")), \#(cmd("after", inputs: ["in": "bad"], script: "cat {inputs.in} > {outputs.out.txt}")), \#(cmd("slow", script: "sleep 0.5; echo ok > {outputs.out.txt}")), \#(cmd("next", inputs: ["in": "slow"], script: "cat {inputs.in} > {outputs.out.txt}"))}}"#
        var options = RunOptions()
        options.jobs = 2
        let s1 = try runPipeline(try load(json, dir: dir), store: store, options: options)
        XCTAssertEqual(s1.outcomes(), ["bad": "failed", "after": "skipped", "slow": "ran", "next": "skipped"],
                       "a running stage finishes, but nothing new starts after a failure")
        guard case .failed(let message) = s1.result("bad")!.outcome else { return XCTFail() }
        XCTAssertTrue(message.hasPrefix("command exited with status 3: /bin/sh -c echo bad >> "), message)  // (bad fails after 0.2 s, so that slow is surely running then)
        XCTAssertTrue(message.hasSuffix("---\noops\n"), message)
        XCTAssertEqual(s1.result("after")!.outcome, .skipped("input stage 'bad' failed"))
        XCTAssertEqual(s1.result("next")!.outcome, .skipped("run stopped before it started"))

        options.keepGoing = true
        let s2 = try runPipeline(try load(json, dir: dir), store: store, options: options)
        XCTAssertEqual(s2.outcomes(), ["bad": "failed", "after": "skipped", "slow": "cached", "next": "ran"])
    }

    func testUntilRunsOnlyAStageAndItsAncestors() throws {
        var options = RunOptions()
        options.until = ["b"]
        let s = try runPipeline(try load(chain(1), dir: dir), store: store, options: options)
        XCTAssertEqual(s.outcomes(), ["a": "ran", "b": "ran"])
        XCTAssertEqual(executions().sorted(), ["a", "b"])
    }

    func testForceRecomputesAStageAndEarlyCutoffProtectsItsDependents() throws {
        try runPipeline(try load(chain(1), dir: dir), store: store)
        var options = RunOptions()
        options.force = ["b"]
        let s = try runPipeline(try load(chain(1), dir: dir), store: store, options: options)
        XCTAssertEqual(s.outcomes(), ["a": "cached", "b": "ran", "c": "cached", "d": "cached", "e": "cached"])
        XCTAssertEqual(s.result("b")!.reasons.first, "forced (--force)")
    }

    func testAFlippedByteInACachedOutputIsDetectedAndRecomputed() throws {
        let s1 = try runPipeline(try load(chain(1), dir: dir), store: store)
        let manifest = try store.manifest(s1.result("b")!.output!)
        let object = store.objectPath(manifest.files["out.txt"]!.digest)
        try flipByte(in: object, at: 15)
        try FileManager.default.removeItem(atPath: dir + "/runs.log")

        let s2 = try runPipeline(try load(chain(1), dir: dir), store: store)
        XCTAssertEqual(s2.outcomes()["b"], "ran")
        XCTAssertTrue(s2.result("b")!.reasons[0].hasPrefix("cached output was damaged: object "), "\(s2.result("b")!.reasons)")
        XCTAssertEqual(executions(), ["b"], "the recomputed output is identical, so c and d stay cached")
        XCTAssertEqual(try store.object(manifest.files["out.txt"]!.digest), Array("A\nB\n".utf8))
    }

    func testADamagedInputFoundWhileRunningIsRecomputedFirst() throws {
        let s1 = try runPipeline(try load(chain(1), dir: dir), store: store)
        // Damage b's output file object but keep its size and mtime, so only a full read notices.
        let entry = try store.manifest(s1.result("b")!.output!).files["out.txt"]!
        let object = store.objectPath(entry.digest)
        let before = FileIO.status(object)!
        try flipByte(in: object, at: 15)
        var times = [timespec(tv_sec: Int(before.mtimeNanos / 1_000_000_000), tv_nsec: Int(before.mtimeNanos % 1_000_000_000)),
                     timespec(tv_sec: Int(before.mtimeNanos / 1_000_000_000), tv_nsec: Int(before.mtimeNanos % 1_000_000_000))]
        XCTAssertEqual(utimensat(AT_FDCWD, object, &times, 0), 0)
        FileIO.remove(store.root + "/trees")
        try FileManager.default.removeItem(atPath: dir + "/runs.log")

        let observer = RecordingObserver()
        let s2 = try runPipeline(try load(chain(2), dir: dir), store: store, observer: observer)
        XCTAssertTrue(s2.succeeded, "\(s2.results)")
        XCTAssertEqual(executions(), ["b", "c", "d"])
        XCTAssertTrue(observer.messages.contains { $0.hasPrefix("input 'in' from 'b' is damaged") }, "\(observer.messages) \(s2.results.map(\.reasons))")
        XCTAssertEqual(try read(try store.materialize(s2.result("d")!.output!) + "/out.txt"), "A\nB\nC2\nD\n")
    }

    func testCancellationKeepsFinishedItemsAndARerunCompletesThem() throws {
        let spec = try load(#"{"name": "p", "stages": {"items": {"type": "slow-items", "params": {"n": 40, "sleep_ms": 25}}}}"#, dir: dir)
        let token = CancellationToken(), observer = RecordingObserver()
        cancel(token) { observer.completed("items") >= 5 }  // once 5 items are done and journaled
        let s1 = try runPipeline(spec, store: store, cancellation: token, observer: observer)
        XCTAssertTrue(s1.interrupted)
        XCTAssertEqual(s1.outcomes(), ["items": "cancelled"])
        let journal = try Journal(path: store.workDirectory(s1.result("items")!.key!) + "/journal/items.log")
        XCTAssertGreaterThan(journal.count, 3)
        XCTAssertLessThan(journal.count, 40)

        let s2 = try runPipeline(spec, store: store)
        XCTAssertEqual(s2.outcomes(), ["items": "ran"])
        let lines = try read(try store.materialize(s2.result("items")!.output!) + "/items.txt").split(separator: "\n")
        XCTAssertEqual(lines.count, 40)
        XCTAssertEqual(Set(lines).count, 40)
        XCTAssertFalse(FileIO.exists(store.workDirectory(s2.result("items")!.key!)), "the work area goes once the stage succeeds")
    }

    func testRunRecordsAndRefsAreWritten() throws {
        let s = try runPipeline(try load(chain(1), dir: dir), store: store)
        let record = try XCTUnwrap(store.runRecord(id: s.runID))
        XCTAssertEqual(record["stages"]?.arrayValue?.count, 5)
        XCTAssertEqual(record["machine"]?["cores"]?.intValue, RunOptions.cores, "the machine results depend on")
        XCTAssertEqual(record["machine"]?["jobs"]?.intValue, RunOptions().jobs)
        XCTAssertEqual(store.ref(pipeline: "p", stage: "d")?.output, s.result("d")!.output)
        XCTAssertEqual(store.ref(pipeline: "p", stage: "a")?.reason, ["no earlier run of this stage"])
    }
}

final class ResourceTests: XCTestCase {
    func spec(_ resource: String, dir: String) throws -> PipelineSpec {
        try load(#"{"name": "r", "resources": {"models": {"llama": \#(resource)}}, "stages": {"ask": {"type": "command", "params": {"resources": ["models.llama"], "run": "echo $HAPS_RESOURCE_MODELS_LLAMA > {out}/r.json"}}}}"#, dir: dir)
    }

    func testAResourceIdentityIsPartOfTheKeyButItsURLIsNot() throws {
        let dir = try makeTempDir(self)
        let store = try Store(root: dir + "/store")
        let s1 = try runPipeline(try spec(#"{"backend": "openai", "model": "m1", "url": "http://127.0.0.1:1/v1"}"#, dir: dir), store: store)
        XCTAssertEqual(s1.outcomes(), ["ask": "ran"])
        XCTAssertEqual(try read(try store.materialize(s1.result("ask")!.output!) + "/r.json"),
                       #"{"backend":"openai","model":"m1","url":"http://127.0.0.1:1/v1"}"# + "\n")
        let moved = try runPipeline(try spec(#"{"backend": "openai", "model": "m1", "url": "http://10.0.0.2:8000/v1"}"#, dir: dir), store: store)
        XCTAssertEqual(moved.outcomes(), ["ask": "cached"], "moving the server does not invalidate results")
        let other = try runPipeline(try spec(#"{"backend": "openai", "model": "m2", "url": "http://10.0.0.2:8000/v1"}"#, dir: dir), store: store)
        XCTAssertEqual(other.outcomes(), ["ask": "ran"])
        XCTAssertEqual(other.result("ask")!.reasons, [#"resource models.llama.model changed: "m1" → "m2""#])
    }

    func testAnUnknownResourceIsAValidationError() throws {
        let dir = try makeTempDir(self)
        XCTAssertThrowsError(try load(#"{"name": "r", "resources": {"models": {"llama": {}}}, "stages": {"ask": {"type": "command", "params": {"resources": ["models.lama"], "run": "true"}}}}"#, dir: dir)) { e in
            XCTAssertEqual((e as? SpecError)?.lines, ["spec.json:1:93: $.stages.ask.params: unknown resource 'models.lama'; did you mean 'models.llama'?"])
        }
    }
}

/// A training-style stage: a seeded random walk of `steps` steps, checkpointed every `every`.
struct Walk: StageType {
    struct Params: StageParameters { @Param("steps") var steps: Int; @Param("checkpoint every") var every: Int; @Param("per step") var sleep_ms: Int }
    static let name = "walk"
    static let version = 1
    static func ports(_ p: Params) -> StagePorts { StagePorts(inputs: [], output: "text") }
    static func run(_ p: Params, _ c: StageContext) throws {
        // State: step, position, and the generator's state, so a resumed walk continues exactly.
        var step = 0, position: Int64 = 0
        var rng = c.makeRandom()
        if let (s, state) = c.checkpoints.latest() {
            let fields = String(decoding: state, as: UTF8.self).split(separator: " ").map { UInt64($0)! }
            step = s; position = Int64(bitPattern: fields[0]); rng = SeededRandom(state: fields[1])
            try write("resumed at \(s)\n", to: c.workDirectory + "/resumed")
        }
        while step < p.steps {
            try c.checkCancellation()
            position += Int64(rng.next() % 7) - 3
            step += 1
            if step % p.every == 0 {
                try c.checkpoints.save(step: step, state: Array("\(UInt64(bitPattern: position)) \(rng.state)".utf8))
            }
            usleep(UInt32(p.sleep_ms * 1000))
        }
        try write("\(position)\n", to: c.outputDirectory + "/position.txt")
    }
}

final class CheckpointResumeTests: XCTestCase {
    func testAResumedTrainingStageReachesTheSameResultAsAnUninterruptedOne() throws {
        let dir = try makeTempDir(self)
        let registry = StageRegistry([Walk.self])
        let spec = try load(#"{"name": "w", "stages": {"walk": {"type": "walk", "params": {"steps": 60, "every": 5, "sleep_ms": 10}}}}"#, dir: dir, registry: registry)

        let straight = try Store(root: dir + "/a")
        let reference = try runPipeline(spec, store: straight)

        let resumed = try Store(root: dir + "/b")
        let token = CancellationToken(), workArea = dir + "/b/work"
        cancel(token) {  // once the first checkpoint is written
            let dirs = (try? FileManager.default.contentsOfDirectory(atPath: workArea)) ?? []
            return dirs.contains { !((try? FileManager.default.contentsOfDirectory(atPath: "\(workArea)/\($0)/checkpoints")) ?? []).isEmpty }
        }
        let first = try runPipeline(spec, store: resumed, cancellation: token)
        XCTAssertEqual(first.outcomes(), ["walk": "cancelled"])
        let work = resumed.workDirectory(first.result("walk")!.key!)
        XCTAssertNotNil(CheckpointStore(directory: work + "/checkpoints").latest())
        let second = try runPipeline(spec, store: resumed)
        XCTAssertEqual(second.outcomes(), ["walk": "ran"])
        XCTAssertEqual(second.result("walk")!.output, reference.result("walk")!.output)
    }
}
