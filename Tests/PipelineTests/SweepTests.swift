import XCTest
@testable import Pipeline

/// Sweeps as one merged DAG: shared upstream stages run once, points extend, failures isolate.
final class SweepTests: CommandStageTestCase {
    /// data → prep → train(alpha) → evaluate: a sweep over train's alpha.
    var specText: String {
        #"{"name": "p", "stages": {\#(cmd("data", script: "echo d > {outputs.out.txt}")), \#(cmd("prep", inputs: ["in": "data"], script: "cat {inputs.in} > {outputs.out.txt}")), \#(cmd("train", inputs: ["in": "prep"], script: "test {params.alpha} != 0.5 && echo {params.alpha} > {outputs.out.txt}", params: #"{"alpha": 0.01}"#)), \#(cmd("evaluate", inputs: ["in": "train"], script: "cat {inputs.in} > {outputs.out.txt}"))}}"#
    }

    func sweep(_ values: [String], name: String = "s") throws -> Sweep {
        try Sweep(name: name, specText: specText, file: "p.json", points: Sweep.grid([("train.params.alpha", values)]), registry: .builtin, baseDirectory: dir)
    }

    func testAnEightPointSweepRunsEachUpstreamStageOnce() throws {
        let values = (1...8).map { "0.\($0)" }.filter { $0 != "0.5" } + ["0.9"]
        let s = try sweep(values)
        XCTAssertEqual(s.merged.order.count, 2 + 8 * 2, "data and prep once, train and evaluate per point")
        XCTAssertEqual(s.mapping[3]["prep"], "prep")
        XCTAssertEqual(s.mapping[3]["train"], "train@alpha=0.4")
        var options = RunOptions()
        options.jobs = 2
        let run = try Executor(spec: s.merged, store: store, options: options).run()
        XCTAssertTrue(run.succeeded, "\(run.results)")
        let counts = Dictionary(grouping: executions(), by: { $0 }).mapValues(\.count)
        XCTAssertEqual(counts, ["data": 1, "prep": 1, "train": 8, "evaluate": 8])
        // Each point's evaluate read its own train's output.
        for (i, v) in values.enumerated() {
            let out = try store.materialize(run.result(s.mapping[i]["evaluate"]!)!.output!)
            XCTAssertEqual(try read(out + "/out.txt"), v + "\n")
        }
    }

    func testExtendingASweepRunsOnlyTheNewPointsAndAnotherSweepReusesShared() throws {
        try Executor(spec: try sweep(["0.1", "0.2"]).merged, store: store, options: RunOptions()).run()
        XCTAssertEqual(executions().count, 2 + 2 * 2)
        let extended = try Executor(spec: try sweep(["0.1", "0.2", "0.3"]).merged, store: store, options: RunOptions()).run()
        XCTAssertTrue(extended.succeeded)
        XCTAssertEqual(Array(executions().dropFirst(6)), ["train", "evaluate"], "only the new point ran")
        let other = try Executor(spec: try sweep(["0.2", "0.4"], name: "other").merged, store: store, options: RunOptions()).run()
        XCTAssertTrue(other.succeeded)
        XCTAssertEqual(Array(executions().dropFirst(8)), ["train", "evaluate"], "a second sweep reuses the points it shares")
    }

    func testAFailingPointDoesNotStopTheOthersUnderKeepGoing() throws {
        var options = RunOptions()
        options.keepGoing = true
        let s = try sweep(["0.4", "0.5", "0.6"])
        let run = try Executor(spec: s.merged, store: store, options: options).run()
        XCTAssertFalse(run.succeeded)
        XCTAssertEqual(run.failures.map(\.stage), ["train@alpha=0.5"])
        XCTAssertNotNil(run.result(s.mapping[0]["evaluate"]!)?.output)
        XCTAssertNotNil(run.result(s.mapping[2]["evaluate"]!)?.output)
    }

    func testZipPairsValuesAndRefusesUnequalAxes() throws {
        let points = try Sweep.zip([("a.x", ["1", "2"]), ("b.y", ["3", "4"])])
        XCTAssertEqual(points.map(\.overrides), [["a.x=1", "b.y=3"], ["a.x=2", "b.y=4"]])
        XCTAssertThrowsError(try Sweep.zip([("a.x", ["1", "2"]), ("b.y", ["3"])]))
        XCTAssertEqual(Sweep.grid([("a.x", ["1", "2"]), ("b.y", ["3", "4"])]).count, 4)
    }
}

extension SweepTests {
    /// A sweep stopped halfway, run again, completes only what is missing.
    func testAnInterruptedSweepResumesWithOnlyTheRest() throws {
        let slow = #"{"name": "p", "stages": {\#(cmd("data", script: "echo d > {outputs.out.txt}")), \#(cmd("train", inputs: ["in": "data"], script: "sleep 0.3; echo {params.alpha} > {outputs.out.txt}", params: #"{"alpha": 0}"#))}}"#
        let s = try Sweep(name: "slow", specText: slow, file: "p.json", points: Sweep.grid([("train.params.alpha", (1...6).map(String.init))]),
                          registry: .builtin, baseDirectory: dir)
        let token = CancellationToken()
        let watcher = Thread { [dir] in
            while !token.isCancelled {
                let runs = ((try? read(dir + "/runs.log")) ?? "").split(separator: "\n").filter { $0 == "train" }.count
                if runs >= 3 { token.cancel() }
                usleep(5000)
            }
        }
        watcher.start()
        var options = RunOptions()
        options.jobs = 1
        let first = try Executor(spec: s.merged, store: store, options: options, cancellation: token).run()
        token.cancel()
        XCTAssertTrue(first.interrupted)
        let ranFirst = executions().filter { $0 == "train" }.count
        XCTAssertLessThan(ranFirst, 6)
        let second = try Executor(spec: s.merged, store: store, options: options).run()
        XCTAssertTrue(second.succeeded)
        let trains = executions().filter { $0 == "train" }.count
        let finishedFirst = first.results.filter { $0.outcome == .ran && $0.stage.hasPrefix("train") }.count
        XCTAssertEqual(trains, ranFirst + (6 - finishedFirst), "the second run did only the points not finished")
        XCTAssertEqual(executions().filter { $0 == "data" }.count, 1)
    }
}
