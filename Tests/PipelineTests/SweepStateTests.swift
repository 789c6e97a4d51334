import XCTest
@testable import Pipeline

/// A sweep's state in the store and the table built from it (what `sweep run`, `sweep status`
/// and `show SWEEP` print), on a two-stage spec whose final stage reports figures.
final class SweepStateTests: XCTestCase {
    var dir = ""
    var store: Store!
    var specPath: String { dir + "/p.json" }

    override func setUpWithError() throws {
        dir = try makeTempDir(self)
        store = try Store(root: dir + "/store")
        try write(#"{"name": "p", "stages": {"src": {"type": "text-source", "params": {"text": "t"}}, "scored": {"type": "scored", "inputs": {"text": "src"}}}}"#,
                  to: specPath)
    }

    /// The saved state of sweep "s" over scored.alpha, and the sweep it makes.
    func sweep(_ alphas: [String]) throws -> Sweep {
        let state = SweepState(name: "s", spec: specPath, points: Sweep.grid([("scored.alpha", alphas)]))
        try state.save(store)
        return try XCTUnwrap(try SweepState.load(store, "s")).sweep(in: store, registry: sweepRegistry, baseDirectory: dir)
    }

    func run(_ sweep: Sweep) throws -> RunSummary {
        var options = RunOptions()
        options.keepGoing = true
        return try Executor(spec: sweep.merged, store: store, options: options).run()
    }

    func badRequest(_ body: () throws -> Void) -> String? {
        do { try body(); return nil } catch let e as SweepError {
            XCTAssertEqual(e.code, .badRequest)
            return e.description
        } catch { XCTFail("\(error)"); return nil }
    }

    func testTheStateIsSavedLoadedAndExtended() throws {
        XCTAssertNil(try SweepState.load(store, "s"))
        let state = SweepState(name: "s", spec: specPath, points: Sweep.grid([("scored.alpha", ["1", "2"])]), failed: ["scored@alpha=2"])
        try state.save(store)
        XCTAssertEqual(try SweepState.load(store, "s"), state)
        XCTAssertEqual(SweepState.names(in: store), ["s"])
        let extended = try SweepState.extending("s", spec: specPath, with: Sweep.grid([("scored.alpha", ["2", "3"])]), in: store)
        XCTAssertEqual(extended.points.map(\.label), ["alpha=1", "alpha=2", "alpha=3"], "the points it has are not repeated")
        XCTAssertEqual(extended.failed, ["scored@alpha=2"])
        XCTAssertEqual(try SweepState.extending("t", spec: specPath, with: [], in: store), SweepState(name: "t", spec: specPath, points: []))
        XCTAssertEqual(badRequest { _ = try SweepState.extending("s", spec: "other.json", with: [], in: self.store) },
                       "sweep 's' exists for \(specPath); choose another --name")
        let lost = SweepState(name: "lost", spec: dir + "/gone.json", points: state.points)
        XCTAssertEqual(badRequest { _ = try lost.sweep(in: self.store, registry: sweepRegistry) }?.hasPrefix("sweep lost: cannot read its spec \(dir)/gone.json: "), true)
    }

    func testTheTableHoldsEachPointsStateAndFigures() throws {
        let s = try sweep(["0.5", "2"])
        let before = try SweepTable.report(s, store: store)
        XCTAssertEqual(before.table, SweepTable(header: ["point", "alpha", "state"], rows: [["alpha=0.5", "0.5", "pending"], ["alpha=2", "2", "pending"]]))
        XCTAssertTrue(try run(s).succeeded)
        let (table, markdown) = try SweepTable.report(s, store: store)
        XCTAssertEqual(table.header, ["point", "alpha", "state", "scored.score", "scored.constant"])
        XCTAssertEqual(table.rows, [["alpha=0.5", "0.5", "done", "1.0000", "1.0000"], ["alpha=2", "2", "done", "4.0000", "1.0000"]])
        XCTAssertEqual(markdown, "| point | alpha | state | scored.score |\n| --- | --- | --- | --- |\n| alpha=0.5 | 0.5 | done | 1.0000 |\n| alpha=2 | 2 | done | 4.0000 |\n",
                       "a figure the same at every point leaves the Markdown table")
        XCTAssertEqual(try read(store.root + "/sweeps/s/results.md"), markdown)
        XCTAssertEqual(try read(store.root + "/sweeps/s/results.csv"),
                       "point,alpha,state,scored.score,scored.constant\nalpha=0.5,0.5,done,1.0000,1.0000\nalpha=2,2,done,4.0000,1.0000\n")
        XCTAssertEqual(SweepTable(header: ["a,b"], rows: [["say \"hi\""]]).csv, "\"a,b\"\n\"say \"\"hi\"\"\"\n")
    }

    func testAPointIsFailedOrRunningAsItsStagesAre() throws {
        let s = try sweep(["-1", "2"])
        let plan = try Planner.plan(s.merged, selection: Set(s.merged.order), forced: [], lookups: .store(store, pipeline: s.merged.name))
        var planned: [String: PlanEntry] = [:]
        for e in plan { planned[e.stage] = e }
        let key = try XCTUnwrap(planned["src"]?.key)
        let lock = try XCTUnwrap(try store.lockKey(key))
        XCTAssertEqual(SweepTable(s, store: store, planned: planned).rows.map { $0[2] }, ["running", "running"],
                       "another process computes the stage both points need")
        lock.unlock()
        XCTAssertEqual(SweepTable(s, store: store, planned: planned).rows.map { $0[2] }, ["pending", "pending"])
        let summary = try run(s)
        XCTAssertEqual(summary.failures.map(\.stage), ["scored@alpha=-1"])
        let failed = try SweepTable.report(s, store: store, failed: Set(summary.failures.map(\.stage))).table
        XCTAssertEqual(failed.rows.map { $0[2] }, ["failed", "done"])
        XCTAssertEqual(try SweepTable.report(s, store: store).table.rows.map { $0[2] }, ["pending", "done"], "not failed unless the last run says so")
    }

    func testPlotsAreCheckedAgainstTheTableAndWritten() throws {
        let s = try sweep(["0.5", "2"])
        XCTAssertEqual(SweepTable.figureStages(s, try load(try read(specPath), dir: dir, registry: sweepRegistry)), ["scored"])
        XCTAssertNoThrow(try SweepTable.checkPlots(["scored.score:alpha"], s))
        XCTAssertEqual(badRequest { try SweepTable.checkPlots(["src.text:alpha"], s) },
                       "--plot: 'src.text': the table holds figures of scored (the final stages and those the points change), not of 'src'")
        XCTAssertEqual(badRequest { try SweepTable.checkPlots(["scored.score"], s) }, "--plot 'scored.score' is not figure[,figure...]:parameter")
        XCTAssertTrue(try run(s).succeeded)
        let table = try SweepTable.report(s, store: store).table
        let file = try table.plot("scored.score:alpha", sweep: s, store: store)
        XCTAssertEqual(file, store.root + "/sweeps/s/scored.score-vs-alpha.svg")
        XCTAssertEqual(try read(file).components(separatedBy: "<circle").count - 1, 2, "one point per sweep point")
        XCTAssertEqual(badRequest { _ = try table.plot("scored.scor:alpha", sweep: s, store: self.store) },
                       "--plot: no figure 'scored.scor'; did you mean 'scored.score'?")
        XCTAssertEqual(badRequest { _ = try table.plot("scored.score:beta", sweep: s, store: self.store) }, "--plot: no parameter 'beta'; one of: alpha")
    }
}

/// Scores twice its alpha (refusing a negative one); its figures are the score and a constant.
private struct Scored: StageType {
    struct Negative: Error {}
    struct Params: StageParameters { @Param("the score is twice this") var alpha: Double = 1 }
    static let name = "scored"
    static let version = 1
    static func ports(_ p: Params) -> StagePorts { StagePorts(inputs: [InputPort("text", kind: "text")], output: "scores") }
    static func run(_ p: Params, _ c: StageContext) throws {
        guard p.alpha >= 0 else { throw Negative() }
        try write("\(p.alpha * 2)", to: c.outputDirectory + "/score.txt")
    }
    static func figures(directory: String) -> [Figure] {
        guard let text = try? read(directory + "/score.txt"), let v = Double(text) else { return [] }
        return [Figure("score", v), Figure("constant", 1)]
    }
}

private let sweepRegistry = StageRegistry([TextSource.self, Scored.self])
