import Foundation
import XCTest

/// Experiments (issue 18): every run belongs to one (the spec as written, its --set overrides,
/// or `run --exp NAME`); `exp show` tabulates them with the figures that differ, `exp diff`
/// compares two, gc keeps each one's latest results until `exp drop`.
final class ExperimentTests: XCTestCase {
    var dir = ""

    override func setUpWithError() throws {
        dir = try makeTempDirectory(self)
        // A baseline table whose F1s follow the parameter v, and its score table (which has figures).
        try writeFile(#"""
        {"name": "e", "stages": {
          "rows": {"type": "command", "params": {"kind": "samples", "outputs": ["baseline.jsonl"], "params": {"v": 1},
                   "run": "for q in 0 1; do for a in 0 1 2 3; do echo \"{{\\\"question\\\": \\\"q$q\\\", \\\"action_index\\\": $a, \\\"f1\\\": 0.$(( (q + a * {params.v}) % 10 ))}}\"; done; done > {outputs.baseline.jsonl}"}},
          "score": {"type": "score", "inputs": {"samples": "rows"}}}}
        """#, dir + "/e.json")
    }

    func run(_ args: [String]) throws -> CLI.Result {
        let r = try CLI.run(args, in: dir)
        XCTAssertEqual(r.status, 0, "\(args): \(r.stderr)")
        return r
    }

    func testExperimentsAreListedComparedAndKeptUntilDropped() throws {
        _ = try run(["run", "e.json"])
        let specRows = try run(["show", "rows", "--json"]).stdout
        let specDigest = try XCTUnwrap((try JSONSerialization.jsonObject(with: Data(specRows.utf8)) as? [String: Any])?["digest"] as? String)
        _ = try run(["run", "e.json", "--set", "rows.v=2"])
        _ = try run(["run", "e.json", "--set", "rows.v=3", "--exp", "three"])

        // `show` shows the spec's own result (not the last experiment's), names the experiments
        // that hold others, and `--exp` picks one of them.
        func digest(_ json: String) throws -> String? { (try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])?["digest"] as? String }
        let shown = try run(["show", "rows", "--json"])
        XCTAssertEqual(try digest(shown.stdout), specDigest)
        XCTAssertTrue(shown.stderr.contains("note: e/rows is the spec's own result; experiments rows.v=2, three hold another (haps-pipe show e/rows --exp 'rows.v=2')"), shown.stderr)
        let three = try run(["show", "e/rows", "--exp", "three", "--json"])
        XCTAssertNotEqual(try digest(three.stdout), specDigest)
        XCTAssertEqual(three.stderr, "")
        let unknown = try CLI.run(["show", "rows", "--exp", "four"], in: dir)
        XCTAssertEqual(unknown.status, 1)
        XCTAssertTrue(unknown.stderr.contains("no experiment 'four'"), unknown.stderr)

        // gc keeps the spec's results although the refs now point at the last run's.
        let dry = try run(["gc", "--dry-run"])
        XCTAssertFalse(dry.stdout.contains("results that would go"), dry.stdout)
        _ = try run(["gc"])
        XCTAssertEqual(try CLI.run(["show", String(specDigest.prefix(12))], in: dir).status, 0, "the spec's result survives gc")

        let show = try run(["exp", "show", "e.json"]).stdout
        XCTAssertTrue(show.hasPrefix("e: 3 experiments\n"), show)
        let lines = show.split(separator: "\n").map(String.init)
        XCTAssertTrue(lines.contains { $0.hasPrefix("  spec ") && $0.hasSuffix("2 (2)") }, show)
        XCTAssertTrue(lines.contains { $0.hasPrefix("  rows.v=2 ") && $0.hasSuffix("2 (2)") }, show)
        XCTAssertTrue(lines.contains { $0.hasPrefix("  three ") }, show)
        let header = try XCTUnwrap(lines.first { $0.hasPrefix("  figures that differ") })
        XCTAssertTrue(header.contains("spec") && header.contains("rows.v=2") && header.contains("three"), header)
        XCTAssertTrue(lines.contains { $0.hasPrefix("  score.oracle_f1 ") }, show)

        let diff = try run(["exp", "diff", "spec", "rows.v=2"]).stdout
        XCTAssertTrue(diff.contains("  rows: params.params.v changed: 1 → 2\n"), diff)
        XCTAssertTrue(diff.contains("  score: input 'samples' changed"), diff)
        XCTAssertTrue(diff.contains("metrics diff:\n  score."), diff)

        let drop = try run(["exp", "drop", "rows.v=2"]).stdout
        XCTAssertTrue(drop.hasPrefix("dropped experiment 'rows.v=2' of e (1 run record)"), drop)
        let after = try run(["gc", "--dry-run"]).stdout
        XCTAssertTrue(after.contains("results that would go:\n"), after)
        XCTAssertTrue(after.contains("  command"), after)
        XCTAssertTrue(after.contains("  score"), after)
        XCTAssertFalse(try run(["exp", "show"]).stdout.contains("rows.v=2"))
        let missing = try CLI.run(["exp", "diff", "spec", "rows.v=9"], in: dir)
        XCTAssertEqual(missing.status, 1)
        XCTAssertTrue(missing.stderr.contains("no experiment 'rows.v=9'"), missing.stderr)
    }

    /// Replicates (issue 28): runs that differ only by a seed (`--set rows.seed=N`) are pooled
    /// by `exp show`, and `sweep --seeds` makes and pools them; every F1 here is 0.SEED, so
    /// seeds 1, 2, 3 give 0.2 ± 0.1 [0.2 ∓ 4.302653 · 0.1 / √3].
    func testReplicatesArePooledOverSeeds() throws {
        try writeFile(#"""
        {"name": "r", "stages": {
          "rows": {"type": "command", "params": {"kind": "samples", "outputs": ["baseline.jsonl"],
                   "run": "for q in 0 1; do for a in 0 1 2 3; do echo \"{{\\\"question\\\": \\\"q$q\\\", \\\"action_index\\\": $a, \\\"f1\\\": 0.$HAPS_SEED}}\"; done; done > {outputs.baseline.jsonl}"}},
          "score": {"type": "score", "inputs": {"samples": "rows"}}}}
        """#, dir + "/r.json")
        for seed in 1...3 { _ = try run(["run", "r.json", "--set", "rows.seed=\(seed)"]) }
        let show = try run(["exp", "show", "r.json"]).stdout
        XCTAssertTrue(show.contains("  replicates of the spec (3 seeds: rows.seed=1, rows.seed=2, rows.seed=3): mean ± sd [95% interval]\n"), show)
        let pooled = try XCTUnwrap(show.split(separator: "\n").first { $0.hasPrefix("  score.oracle_f1") && $0.contains("±") }, show)
        XCTAssertTrue(pooled.hasSuffix("0.2000 ± 0.1000 [-0.0484, 0.4484]"), String(pooled))

        let sweep = try run(["sweep", "r.json", "--seeds", "rows=1,2,3", "--name", "reps", "--plain"])
        XCTAssertTrue(sweep.stdout.contains("| spec | 3/3 | done | "), sweep.stdout)
        XCTAssertTrue(sweep.stdout.contains("0.2000 ± 0.1000 [-0.0484, 0.4484]"), sweep.stdout)
        XCTAssertTrue(sweep.stderr.contains("results.md, replicates.csv"), sweep.stderr)
        XCTAssertTrue(sweep.stderr.contains("sweep reps: 3 points, 6 distinct stages"), sweep.stderr)
        XCTAssertFalse(sweep.stderr.contains("ran in"), "the three runs' stages, from the cache: \(sweep.stderr)")
        let bad = try CLI.run(["sweep", "r.json", "--seeds", "rows=a,b", "--name", "bad"], in: dir)
        XCTAssertEqual(bad.status, 2)
        XCTAssertTrue(bad.stderr.contains("--seeds 'rows=a,b' is not seeds"), bad.stderr)
    }
}
