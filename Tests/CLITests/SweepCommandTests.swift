import Foundation
import XCTest
import TestSupport

/// `haps-pipe sweep` end to end: a grid over build-sft's smart_target on the reference fixture.
final class SweepCommandTests: XCTestCase {
    let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/reference").path

    func testTheTableHoldsEachPointsFigures() throws {
        let dir = try makeTempDirectory(self)
        let baseline = fixtures + "/build-sft/baseline.jsonl"
        try """
            {"name": "t", "stages": {
              "score": {"type": "score", "inputs": {"samples": "\(baseline)"}, "params": {"use_recorded": true}},
              "sft": {"type": "build-sft", "inputs": {"samples": "\(baseline)"}, "params": {"tie_policy": "all", "balance": "smart_oversample", "smart_target": 40}}}}
            """.write(toFile: dir + "/t.json", atomically: true, encoding: .utf8)
        let r = try CLI.run(["sweep", "t.json", "--grid", "sft.smart_target=40,60", "--name", "targets", "--plain"], in: dir)
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stderr.contains("sweep targets: 2 points, 3 distinct stages (4 over all points)"), r.stderr)
        let csv = try String(contentsOfFile: dir + "/artifacts/sweeps/targets/results.csv", encoding: .utf8).split(separator: "\n").map { $0.split(separator: ",", omittingEmptySubsequences: false).map(String.init) }
        XCTAssertEqual(csv[0], ["point", "smart_target", "state", "score.best_fixed_f1", "score.oracle_f1", "score.oracle_gap", "score.random_f1", "sft.sft_rows"])
        XCTAssertEqual(csv[1][0...2], ["smart_target=40", "40", "done"])
        XCTAssertEqual(csv[1][7], "164.0000", "the reference's 164 rows at smart_target 40")
        XCTAssertEqual(csv[1][3], csv[2][3], "the shared score is the same in both points")
        XCTAssertNotEqual(csv[1][7], csv[2][7])
        let status = try CLI.run(["sweep", "status", "targets"], in: dir)
        XCTAssertEqual(status.status, 0, status.stderr)
        XCTAssertEqual(status.stdout.split(separator: "\n").first, "| point | smart_target | state | sft.sft_rows |",
                       "figures that are the same at every point (the shared score) leave the table; the CSV keeps them")
        let shown = try CLI.run(["show", "targets"], in: dir)
        XCTAssertEqual(shown.stdout, status.stdout, "show of a sweep prints its table")
        XCTAssertEqual(try CLI.run(["run", "t.json", "--plain"], in: dir).status, 0)
        let shared = try CLI.run(["show", "score"], in: dir)
        XCTAssertEqual(shared.status, 0, "a stage the sweep shares with its spec is one result, not an ambiguity: \(shared.stderr)")
        XCTAssertTrue(shared.stdout.hasPrefix("t/score\n"), shared.stdout)
        let plotted = try CLI.run(["sweep", "status", "targets", "--plot", "sft.sft_rows:smart_target"], in: dir)
        XCTAssertEqual(plotted.status, 0, plotted.stderr)
        let svg = try String(contentsOfFile: dir + "/artifacts/sweeps/targets/sft.sft_rows-vs-smart_target.svg", encoding: .utf8)
        XCTAssertTrue(svg.hasPrefix("<svg xmlns=\"http://www.w3.org/2000/svg\""), svg)
        XCTAssertEqual(svg.components(separatedBy: "<circle").count - 1, 2, "one point per sweep point")
        XCTAssertTrue(svg.contains("<title>40: 164.0</title>"), "the points carry their values")
        // well-formed XML, by Python's parser
        let xml = try Python.run("import sys, xml.etree.ElementTree as E; E.parse(sys.argv[1])",
                                 arguments: [dir + "/artifacts/sweeps/targets/sft.sft_rows-vs-smart_target.svg"])
        XCTAssertEqual(xml.status, 0, xml.stderr)
        // Several figures on one axis; ticks at round values.
        let two = try CLI.run(["sweep", "status", "targets", "--plot", "score.oracle_f1,score.best_fixed_f1:smart_target"], in: dir)
        XCTAssertEqual(two.status, 0, two.stderr)
        let path = try XCTUnwrap(two.stderr.split(separator: "\n").first { $0.hasPrefix("plot: ") }).dropFirst(6)
        let both = try String(contentsOfFile: String(path), encoding: .utf8)
        XCTAssertEqual(both.components(separatedBy: "<circle").count - 1, 4, "two series of two points")
        XCTAssertTrue(both.contains(">score.oracle_f1<") && both.contains(">score.best_fixed_f1<"), both)
        let ticks = both.split(separator: "\n").filter { $0.contains("text-anchor=\"end\">") }.map { $0.split(separator: ">")[2].split(separator: "<")[0] }
        XCTAssertGreaterThanOrEqual(ticks.count, 3)
        for t in ticks { XCTAssertLessThanOrEqual(t.split(separator: ".").last!.count, 2, "round ticks: \(ticks)") }
        let badPlot = try CLI.run(["sweep", "status", "targets", "--plot", "sft.rows:smart_target"], in: dir)
        XCTAssertEqual(badPlot.status, 2)
        XCTAssertTrue(badPlot.stderr.contains("--plot: no figure 'sft.rows'"), badPlot.stderr)
        let missing = try CLI.run(["sweep", "status", "targetz"], in: dir)
        XCTAssertEqual(missing.status, 1)
        XCTAssertTrue(missing.stderr.contains("no sweep named 'targetz'"), missing.stderr)
    }
}


extension SweepCommandTests {
    /// Ctrl-C stops a sweep as it stops a run: running stages are told, finished items kept,
    /// exit 130; the sweep resumes where it stopped.
    func testCtrlCStopsASweepCleanly() throws {
        let dir = try makeTempDirectory(self)
        try writeFile((0..<20).map { "\($0)" }.joined(separator: "\n") + "\n", dir + "/items.jsonl")
        try writeFile(#"""
        {"name": "slow", "stages": {"each": {"type": "command", "inputs": {"items": "items.jsonl"},
          "params": {"foreach": "items", "run": "sleep 0.1; echo {params.k} {item_index} >> executed.log; cat {item_file}", "params": {"k": 1}}}}}
        """#, dir + "/spec.json")
        let r = try CLI.interrupted(["sweep", "spec.json", "--grid", "each.k=1,2", "--name", "k", "-j", "1", "--plain"], in: dir) {
            lines(dir + "/executed.log").count >= 5
        }
        XCTAssertEqual(r.status, 130, r.stderr)
        XCTAssertTrue(r.stderr.contains("interrupted: stopping running stages and keeping finished work"), r.stderr)
        XCTAssertLessThan(lines(dir + "/executed.log").count, 40)
        let again = try CLI.run(["sweep", "spec.json", "--grid", "each.k=1,2", "--name", "k", "--plain"], in: dir)
        XCTAssertEqual(again.status, 0, again.stderr)
        XCTAssertEqual(Set(lines(dir + "/executed.log")).count, 40)
        XCTAssertLessThanOrEqual(lines(dir + "/executed.log").count, 42, "finished items are not redone")
    }

    /// A stage the points change holds figures even when a later stage reads it; `--plot` of a
    /// stage without figures in the table is refused before anything runs.
    func testFiguresOfTheStagesThePointsChange() throws {
        let dir = try makeTempDirectory(self)
        let baseline = fixtures + "/build-sft/baseline.jsonl"
        try """
            {"name": "t", "stages": {
              "score": {"type": "score", "inputs": {"samples": "\(baseline)"}, "params": {"use_recorded": true}},
              "sft": {"type": "build-sft", "inputs": {"samples": "\(baseline)"}, "params": {"tie_policy": "all", "balance": "smart_oversample", "smart_target": 40}},
              "copy": {"type": "command", "inputs": {"sft": "sft", "score": "score"}, "params": {"run": "cp {inputs.sft}/sft.json {outputs.sft.json}", "outputs": ["sft.json"]}}}}
            """.write(toFile: dir + "/t.json", atomically: true, encoding: .utf8)
        let refused = try CLI.run(["sweep", "t.json", "--grid", "sft.smart_target=40,60", "--name", "s", "--plot", "score.oracle_f1:smart_target", "--plain"], in: dir)
        XCTAssertEqual(refused.status, 2, refused.stderr)
        XCTAssertTrue(refused.stderr.contains("the table holds figures of sft, copy (the final stages and those the points change), not of 'score'"), refused.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/artifacts/objects"), "nothing ran")
        let r = try CLI.run(["sweep", "t.json", "--grid", "sft.smart_target=40,60", "--name", "s", "--plot", "sft.sft_rows:smart_target", "--plain"], in: dir)
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(r.stdout.split(separator: "\n").first, "| point | smart_target | state | sft.sft_rows |", r.stdout)
        XCTAssertTrue(FileManager.default.fileExists(atPath: dir + "/artifacts/sweeps/s/sft.sft_rows-vs-smart_target.svg"))
    }

    /// A spec's own sweep block, and a failing point that --keep-going isolates.
    func testTheSpecsSweepBlockAndAFailedPoint() throws {
        let dir = try makeTempDirectory(self)
        try #"""
            {"name": "b",
             "sweep": {"name": "block", "grid": {"train.params.alpha": [0.1, 0.5, 0.9]}},
             "stages": {
               "prep": {"type": "command", "params": {"run": "echo p > {outputs.out.txt}", "outputs": ["out.txt"]}},
               "train": {"type": "command", "inputs": {"in": "prep"},
                         "params": {"run": "test {params.alpha} != 0.5 && echo {params.alpha} > {outputs.out.txt}", "outputs": ["out.txt"], "params": {"alpha": 0.1}}}}}
            """#.write(toFile: dir + "/b.json", atomically: true, encoding: .utf8)
        XCTAssertEqual(try CLI.run(["run", "b.json", "--plain"], in: dir).status, 0, "run ignores the sweep block")
        let r = try CLI.run(["sweep", "b.json", "--keep-going", "--plain"], in: dir)
        XCTAssertEqual(r.status, 1, r.stderr)
        XCTAssertTrue(r.stderr.contains("sweep block: 3 points, 4 distinct stages (6 over all points)"), r.stderr)
        XCTAssertTrue(r.stdout.contains("| alpha=0.1 | 0.1 | done |"), r.stdout)
        XCTAssertTrue(r.stdout.contains("| alpha=0.5 | 0.5 | failed |"), r.stdout)
        XCTAssertTrue(r.stdout.contains("| alpha=0.9 | 0.9 | done |"), r.stdout)
        XCTAssertTrue(try CLI.run(["sweep", "status", "block"], in: dir).stdout.contains("| alpha=0.5 | 0.5 | failed |"))
        try #"{"name": "b", "sweep": {"gird": {}}, "stages": {}}"#.write(toFile: dir + "/bad.json", atomically: true, encoding: .utf8)
        let bad = try CLI.run(["sweep", "bad.json"], in: dir)
        XCTAssertEqual(bad.status, 2)
        XCTAssertTrue(bad.stderr.contains("$.sweep.gird: unknown field 'gird'; did you mean 'grid'?"), bad.stderr)
    }
}

extension SweepCommandTests {
    /// `sweep status` from another process while the sweep computes a point: that point is
    /// `running` (its stage key's lock is held), and `done` once it finishes.
    func testStatusShowsAPointAnotherProcessIsComputingAsRunning() throws {
        let dir = try makeTempDirectory(self)
        try #"""
            {"name": "r",
             "stages": {
               "prep": {"type": "command", "params": {"run": "echo p > {outputs.out.txt}", "outputs": ["out.txt"]}},
               "train": {"type": "command", "inputs": {"in": "prep"},
                         "params": {"run": "if [ {params.alpha} = 0.5 ]; then touch DIR/started; while [ ! -e DIR/go ]; do sleep 0.05; done; fi; echo {params.alpha} > {outputs.out.txt}",
                                    "outputs": ["out.txt"], "params": {"alpha": 0.1}}}}}
            """#.replacingOccurrences(of: "DIR", with: dir).write(toFile: dir + "/r.json", atomically: true, encoding: .utf8)
        let (sweep, out, err) = try CLI.start(["sweep", "r.json", "--grid", "train.params.alpha=0.1,0.5", "--name", "slow", "-j", "1", "--plain"], in: dir)
        let deadline = Date().addingTimeInterval(60)
        while !FileManager.default.fileExists(atPath: dir + "/started") && Date() < deadline && sweep.isRunning { usleep(20_000) }
        XCTAssertTrue(FileManager.default.fileExists(atPath: dir + "/started"), "the slow point started")
        let during = try CLI.run(["sweep", "status", "slow"], in: dir)
        XCTAssertEqual(during.status, 0, during.stderr)
        XCTAssertTrue(during.stdout.contains("| alpha=0.5 | 0.5 | running |"), during.stdout)
        try writeFile("", dir + "/go")
        let finished = CLI.finish(sweep, out, err)
        XCTAssertEqual(finished.status, 0, finished.stderr)
        let after = try CLI.run(["sweep", "status", "slow"], in: dir)
        XCTAssertTrue(after.stdout.contains("| alpha=0.1 | 0.1 | done |") && after.stdout.contains("| alpha=0.5 | 0.5 | done |"), after.stdout)
    }
}
