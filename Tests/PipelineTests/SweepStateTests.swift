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
        // A point labelled as one it has but set otherwise (seeds replicated over other stages).
        try SweepState(name: "r", spec: specPath, points: Sweep.replicated([Sweep.Point(label: "", overrides: [])], seeds: [1], stages: ["a"])).save(store)
        XCTAssertEqual(badRequest { _ = try SweepState.extending("r", spec: specPath, with: Sweep.replicated([Sweep.Point(label: "", overrides: [])], seeds: [1], stages: ["a", "b"]), in: self.store) },
                       "sweep 'r' has a point 'seed=1' set by a.seed=1, not a.seed=1 b.seed=1; choose another --name")
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

/// Replicates (issue 28): a sweep's points over seeds, pooled in its table.
final class SweepReplicateTests: XCTestCase {
    /// Two alphas × seeds 1, 2, 3 of the `seeded` stage alone (its value: alpha + seed): the
    /// source upstream is one node; results.csv keeps every replicate, the printed table and
    /// replicates.csv pool them (mean 2 more than alpha, sd 1, t(0.975, 2) = 4.302653 over √3
    /// either side). With the spec's seed instead, the source is replicated too.
    func testSeedsReplicateAPointAndTheTablePoolsThem() throws {
        let dir = try makeTempDir(self), store = try Store(root: dir + "/store")
        try write(#"{"name": "p", "stages": {"src": {"type": "text-source", "params": {"text": "t"}}, "seeded": {"type": "seeded", "inputs": {"text": "src"}}}}"#,
                  to: dir + "/p.json")
        let points = Sweep.replicated(Sweep.grid([("seeded.alpha", ["0", "10"])]), seeds: [1, 2, 3], stages: ["seeded"])
        XCTAssertEqual(points.map(\.label), ["alpha=0,seed=1", "alpha=0,seed=2", "alpha=0,seed=3", "alpha=10,seed=1", "alpha=10,seed=2", "alpha=10,seed=3"])
        XCTAssertEqual(points[4].overrides, ["seeded.alpha=10", "seeded.seed=2"])
        let state = SweepState(name: "r", spec: dir + "/p.json", points: points)
        try state.save(store)
        let sweep = try XCTUnwrap(try SweepState.load(store, "r")).sweep(in: store, registry: replicateRegistry, baseDirectory: dir)
        XCTAssertEqual(sweep.merged.order.count, 7, "one source, six replicates")
        XCTAssertTrue(try Executor(spec: sweep.merged, store: store, options: RunOptions()).run().succeeded)
        let (table, markdown) = try SweepTable.report(sweep, store: store)
        XCTAssertEqual(table.rows.map { $0[$0.count - 2] }, ["1.0000", "2.0000", "3.0000", "11.0000", "12.0000", "13.0000"], "every replicate in results.csv")
        XCTAssertEqual(markdown, """
            | point | alpha | replicates | state | seeded.value |
            | --- | --- | --- | --- | --- |
            | alpha=0 | 0 | 3/3 | done | 2.0000 ± 1.0000 [-0.4841, 4.4841] |
            | alpha=10 | 10 | 3/3 | done | 12.0000 ± 1.0000 [9.5159, 14.4841] |

            """)
        XCTAssertEqual(try read(store.root + "/sweeps/r/replicates.csv"), """
            point,alpha,replicates,state,seeded.value.mean,seeded.value.sd,seeded.value.low,seeded.value.high,seeded.value.n,\
            seeded.constant.mean,seeded.constant.sd,seeded.constant.low,seeded.constant.high,seeded.constant.n
            alpha=0,0,3/3,done,2.0000,1.0000,-0.4841,4.4841,3,1.0000,0.0000,1.0000,1.0000,3
            alpha=10,10,3/3,done,12.0000,1.0000,9.5159,14.4841,3,1.0000,0.0000,1.0000,1.0000,3

            """, "every figure; the printed table leaves out the one neither alpha nor the seed moves")
        XCTAssertEqual(try read(store.root + "/sweeps/r/results.md"), markdown)

        let whole = try Sweep(name: "w", specText: try read(dir + "/p.json"), file: dir + "/p.json",
                              points: Sweep.replicated([Sweep.Point(label: "", overrides: [])], seeds: [1, 2], stages: []),
                              registry: replicateRegistry, baseDirectory: dir)
        XCTAssertEqual(whole.points.map(\.overrides), [["seed=1"], ["seed=2"]])
        XCTAssertEqual(whole.merged.order.count, 4, "the spec's seed reaches the source too")
    }

    /// A spec's sweep block takes seeds: a list (the spec's seed) or values with stages.
    func testTheSweepBlockTakesSeeds() throws {
        let block = try JSONParser.parse(#"{"grid": {"seeded.alpha": [1]}, "seeds": {"values": [4, 5], "stages": ["seeded"]}}"#)
        XCTAssertEqual(try Sweep.points(fromBlock: block).points.map(\.overrides), [["seeded.alpha=1", "seeded.seed=4"], ["seeded.alpha=1", "seeded.seed=5"]])
        XCTAssertEqual(try Sweep.points(fromBlock: try JSONParser.parse(#"{"seeds": [7]}"#)).points, [Sweep.Point(label: "seed=7", overrides: ["seed=7"])])
    }

    /// Student's t quantile against known values (scipy.stats.t.ppf(0.975, df)).
    func testTheIntervalsQuantile() {
        for (df, t) in [(1, 12.706205), (2, 4.302653), (10, 2.228139), (30, 2.042272), (31, 2.039513), (40, 2.021075), (100, 1.983972), (1000, 1.962339)] {
            XCTAssertEqual(Replicates.studentT975(degreesOfFreedom: df), t, accuracy: 2e-5, "df \(df)")
        }
        XCTAssertEqual(Replicates.Summary([5])?.text(), "5.0000", "one replicate: no spread")
        XCTAssertNil(Replicates.Summary([]))
    }
}

/// Its value is its alpha plus its seed: a figure with a known spread over seeds.
private struct Seeded: StageType {
    struct Params: StageParameters { @Param("added to the seed") var alpha: Double = 0 }
    static let name = "seeded"
    static let version = 1
    static func ports(_ p: Params) -> StagePorts { StagePorts(inputs: [InputPort("text", kind: "text")], output: "scores") }
    static func run(_ p: Params, _ c: StageContext) throws {
        try write("\(p.alpha + Double(c.seed))", to: c.outputDirectory + "/value.txt")
    }
    static func figures(directory: String) -> [Figure] {
        guard let text = try? read(directory + "/value.txt"), let v = Double(text) else { return [] }
        return [Figure("value", v), Figure("constant", 1)]
    }
}

private let replicateRegistry = StageRegistry([TextSource.self, Seeded.self])

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
