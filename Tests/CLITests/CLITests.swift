import Foundation
import XCTest

/// End-to-end tests of the command-line tool as users run it, in separate processes.
final class CLITests: XCTestCase {
    var dir = ""

    override func setUpWithError() throws {
        dir = try makeTempDirectory(self)
        XCTAssertTrue(FileManager.default.isExecutableFile(atPath: CLI.binary), "build haps-pipe first: \(CLI.binary)")
    }

    /// A three-stage pipeline whose stages log each execution to runs.log.
    func writeDiamondSpec(sleep: Double = 0) throws {
        try writeFile(#"""
        {"name": "demo",
         "stages": {
           "a": {"type": "command", "params": {"run": "echo a >> runs.log; sleep \#(sleep); echo A > {outputs.a.txt}", "outputs": ["a.txt"]}},
           "b": {"type": "command", "params": {"run": "echo b >> runs.log; sleep \#(sleep); echo B {params.x} > {outputs.b.txt}", "outputs": ["b.txt"], "params": {"x": 1}}},
           "c": {"type": "command", "inputs": {"a": "a", "b": "b"},
                 "params": {"run": "echo c >> runs.log; cat {inputs.a} {inputs.b} > {outputs.c.txt}", "outputs": ["c.txt"]}}
         }}
        """#, dir + "/spec.json")
    }

    func testRunThenNoOpRerunThenEdit() throws {
        try writeDiamondSpec()
        let r1 = try CLI.run(["run", "spec.json"], in: dir)
        XCTAssertEqual(r1.status, 0, r1.stderr)
        XCTAssertTrue(r1.stderr.contains("demo: 3 ran in "), r1.stderr)
        let r2 = try CLI.run(["run", "spec.json"], in: dir)
        XCTAssertTrue(r2.stderr.contains("demo: 3 cached in "), r2.stderr)
        XCTAssertEqual(lines(dir + "/runs.log").sorted(), ["a", "b", "c"])

        let plan = try CLI.run(["plan", "spec.json", "--set", "b.params.x=2"], in: dir)
        XCTAssertEqual(plan.stdout, """
            demo: 2 of 3 stages to run
              ✓ a                cached
              ▸ b                will run
                    - params.params.x changed: 1 → 2
              ? c                will run unless its inputs come out unchanged
                    - input from 'b', which will run

            """)
        XCTAssertEqual(try CLI.run(["run", "spec.json", "--set", "b.params.x=2"], in: dir).status, 0)
        XCTAssertEqual(lines(dir + "/runs.log").sorted(), ["a", "b", "b", "c", "c"])

        let explain = try CLI.run(["explain", "c"], in: dir)
        XCTAssertTrue(explain.stdout.contains("it ran because:\n  - input 'b' changed (output of stage 'b'): "), explain.stdout)
        // `show` shows the spec's own result and names the experiment holding another; --exp shows that one.
        let show = try CLI.run(["show", "c"], in: dir)
        XCTAssertTrue(show.stdout.hasPrefix("demo/c\nartifact "), show.stdout)
        XCTAssertTrue(show.stdout.hasSuffix("--- c.txt\nA\nB 1\n"), show.stdout)
        XCTAssertTrue(show.stderr.contains("experiment b.params.x=2 holds another (haps-pipe show demo/c --exp 'b.params.x=2')"), show.stderr)
        let edited = try CLI.run(["show", "c", "--exp", "b.params.x=2"], in: dir)
        XCTAssertTrue(edited.stdout.hasSuffix("--- c.txt\nA\nB 2\n"), edited.stdout)
        let json = try CLI.run(["show", "c", "--json"], in: dir)
        let obj = try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any]
        XCTAssertEqual((obj?["manifest"] as? [String: Any])?["kind"] as? String, "files")
        let status = try CLI.run(["status", "spec.json"], in: dir)
        XCTAssertTrue(status.stdout.contains("  a                up to date"), status.stdout)
        // The spec's own results are an experiment beside the --set run's: gc keeps both
        // until one is dropped.
        let gc = try CLI.run(["gc"], in: dir)
        XCTAssertTrue(gc.stdout.hasPrefix("removed 0 objects"), gc.stdout)
        XCTAssertEqual(try CLI.run(["exp", "drop", "spec"], in: dir).status, 0)
        let gc2 = try CLI.run(["gc"], in: dir)
        XCTAssertTrue(gc2.stdout.hasPrefix("removed 4 objects"), gc2.stdout)
    }

    func testInvalidSpecExitsWithStatus2AndEveryProblem() throws {
        try writeFile(#"{"name": "x", "stages": {"a": {"type": "comand"}, "b": {"type": "command", "params": {"rnu": "x"}}}}"#, dir + "/bad.json")
        let r = try CLI.run(["run", "bad.json"], in: dir)
        XCTAssertEqual(r.status, 2)
        XCTAssertEqual(r.stderr, """
            error: bad.json is not a valid pipeline spec (3 problems):
              bad.json:1:32: $.stages.a.type: unknown stage type 'comand'; did you mean 'command'?
              bad.json:1:87: $.stages.b.params.rnu: unknown parameter 'rnu' for stage type 'command'; did you mean 'run'?
              bad.json:1:76: $.stages.b.params: missing parameter 'run'

            """)
        let missing = try CLI.run(["plan", "nope.json"], in: dir)
        XCTAssertEqual(missing.status, 2)
        XCTAssertEqual(missing.stderr, "error: nope.json is not a valid pipeline spec (1 problem):\n  nope.json: $: cannot read the spec: No such file or directory\n")
    }

    func testUnknownNamesOnTheCommandLineAreClearErrors() throws {
        try writeDiamondSpec()
        let until = try CLI.run(["run", "spec.json", "--until", "d"], in: dir)
        XCTAssertEqual(until.status, 2)
        XCTAssertEqual(until.stderr, "error: unknown stage 'd'; did you mean 'a'?\n")
        let explain = try CLI.run(["explain", "nope"], in: dir)
        XCTAssertEqual(explain.status, 1)
        XCTAssertEqual(explain.stderr, "error: no stored result for stage 'nope' in \(dir)/artifacts; run the pipeline first, or pass --spec\n")
        let show = try CLI.run(["show", "abcdef"], in: dir)
        XCTAssertEqual(show.status, 1)
        XCTAssertEqual(show.stderr, "error: 'abcdef' is neither a stage with a stored result nor an artifact digest in \(dir)/artifacts\n")
    }

    func testAFailingStageExitsWithStatus1AndShowsItsOutput() throws {
        try writeFile(#"{"name": "f", "stages": {"a": {"type": "command", "params": {"run": "echo something broke >&2; exit 7"}}}}"#, dir + "/f.json")
        let r = try CLI.run(["run", "f.json"], in: dir)
        XCTAssertEqual(r.status, 1)
        XCTAssertTrue(r.stderr.contains("✗ a                failed after"), r.stderr)
        XCTAssertTrue(r.stderr.contains("command exited with status 7: /bin/sh -c echo something broke >&2; exit 7"), r.stderr)
        XCTAssertTrue(r.stderr.contains("    something broke"), r.stderr)
        XCTAssertTrue(r.stderr.hasSuffix("failed: a\n"), r.stderr)
    }

    func testHelpExplainsEveryCommand() throws {
        let r = try CLI.run(["--help"], in: dir)
        for c in ["run", "plan", "explain", "status", "show", "gc"] {
            XCTAssertTrue(r.stdout.contains("  \(c) "), "--help lists \(c)")
        }
        let run = try CLI.run(["run", "--help"], in: dir)
        for flag in ["--keep-going", "--force", "--until", "--jobs", "--set", "--store"] {
            XCTAssertTrue(run.stdout.contains(flag), "run --help explains \(flag)")
        }
    }

    /// `types` prints each stage type's parameters from their declarations: names, types,
    /// defaults, choices and meanings, as the decoder uses them.
    func testTypesPrintsTheDeclaredParameters() throws {
        let all = try CLI.run(["types"], in: dir)
        XCTAssertEqual(all.status, 0, all.stderr)
        for t in ["command", "questions", "sample", "score", "build-sft", "synth-data", "train-agent", "train-decoder"] {
            XCTAssertTrue(all.stdout.contains("\n" + t + " ") || all.stdout.hasPrefix(t + " "), "types lists \(t): \(all.stdout)")
        }
        let agent = try CLI.run(["types", "train-agent"], in: dir)
        XCTAssertEqual(agent.status, 0, agent.stderr)
        XCTAssertTrue(agent.stdout.hasPrefix("train-agent (version 3): Train a small candidate LLM"), agent.stdout)
        XCTAssertTrue(agent.stdout.contains("\n  steps (an integer, required): optimisation steps\n"), agent.stdout)
        XCTAssertTrue(agent.stdout.contains("\n  difficulty (one of easy, medium, hard, default \"hard\"): of the fresh worlds' distractors\n"), agent.stdout)
        XCTAssertTrue(agent.stdout.contains("\n  intermediate_size (an integer, optional): MLP size (default 3 × hidden_size)\n"), agent.stdout)
        let sample = try CLI.run(["types", "sample"], in: dir)
        XCTAssertTrue(sample.stdout.contains("\n  budget (an integer, default 3): search steps per question\n"), sample.stdout)
        let bad = try CLI.run(["types", "trian-agent"], in: dir)
        XCTAssertEqual(bad.stderr, "error: unknown stage type 'trian-agent'; did you mean 'train-agent'?\n")
    }

    /// `show --path` names the store's read-only files of a result; `export` copies them out.
    func testShowPathAndExportTakeAResultOutOfTheStore() throws {
        try writeDiamondSpec()
        XCTAssertEqual(try CLI.run(["run", "spec.json"], in: dir).status, 0)
        let path = try CLI.run(["show", "c", "--path"], in: dir)
        XCTAssertEqual(path.status, 0, path.stderr)
        let tree = path.stdout.trimmingCharacters(in: .newlines)
        XCTAssertTrue(tree.hasPrefix(dir + "/artifacts/trees/") || tree.contains("/artifacts/trees/"), tree)
        XCTAssertEqual(readFile(tree + "/c.txt"), "A\nB 1\n")
        let mode = try XCTUnwrap(try FileManager.default.attributesOfItem(atPath: tree)[.posixPermissions] as? Int)
        XCTAssertEqual(mode & 0o222, 0, "the store's tree is read-only")
        let export = try CLI.run(["export", "demo/c", "out"], in: dir)
        XCTAssertEqual(export.status, 0, export.stderr)
        XCTAssertEqual(export.stderr.hasPrefix("copied 1 file of "), true, export.stderr)
        XCTAssertEqual(readFile(dir + "/out/c.txt"), "A\nB 1\n")
        try "changed".write(toFile: dir + "/out/c.txt", atomically: true, encoding: .utf8)  // a plain, writable copy
        XCTAssertEqual(readFile(tree + "/c.txt"), "A\nB 1\n")
        let again = try CLI.run(["export", "c", "out"], in: dir)
        XCTAssertEqual(again.status, 2, again.stderr)
        XCTAssertTrue(again.stderr.contains("out exists and is not empty"), again.stderr)
        let missing = try CLI.run(["export", "nope", "elsewhere"], in: dir)
        XCTAssertEqual(missing.status, 1, missing.stderr)
        XCTAssertTrue(missing.stderr.contains("'nope' is neither a stage with a stored result nor an artifact digest"), missing.stderr)
    }

    /// A spec may read another pipeline's result (PIPELINE/STAGE) or an artifact by digest,
    /// without copying that pipeline; a name that is neither is still an error.
    func testAnInputMayNameAnotherPipelinesResultOrADigest() throws {
        try writeDiamondSpec()
        XCTAssertEqual(try CLI.run(["run", "spec.json"], in: dir).status, 0)
        try writeFile(#"""
        {"name": "reader", "stages": {"d": {"type": "command", "inputs": {"c": "demo/c"},
          "params": {"run": "cat {inputs.c} > {outputs.d.txt}; echo read >> {outputs.d.txt}", "outputs": ["d.txt"]}}}}
        """#, dir + "/reader.json")
        let r = try CLI.run(["run", "reader.json"], in: dir)
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(try CLI.run(["show", "d", "--file", "d.txt"], in: dir).stdout, "A\nB 1\nread\n")
        let dag = try CLI.run(["dag", "reader.json"], in: dir)
        XCTAssertTrue(dag.stdout.contains("d (command): c ← artifact "), dag.stdout)

        // By digest: the same key (the input is the same artifact), so it is cached.
        let json = try CLI.run(["show", "demo/c", "--json"], in: dir).stdout
        let digest = try XCTUnwrap((try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])?["digest"] as? String)
        try writeFile((try String(contentsOfFile: dir + "/reader.json", encoding: .utf8)).replacingOccurrences(of: "demo/c", with: digest), dir + "/reader.json")
        let again = try CLI.run(["run", "reader.json"], in: dir)
        XCTAssertTrue(again.stderr.contains("reader: 1 cached"), again.stderr)

        // A changed upstream result is picked up by the next run of the reader.
        XCTAssertEqual(try CLI.run(["run", "spec.json", "--set", "b.x=2"], in: dir).status, 0)
        try writeFile((try String(contentsOfFile: dir + "/reader.json", encoding: .utf8)).replacingOccurrences(of: digest, with: "demo/c"), dir + "/reader.json")
        XCTAssertEqual(try CLI.run(["run", "reader.json"], in: dir).status, 0)
        XCTAssertEqual(try CLI.run(["show", "d", "--file", "d.txt"], in: dir).stdout, "A\nB 2\nread\n")

        try writeFile(#"{"name": "bad", "stages": {"d": {"type": "command", "inputs": {"c": "nothing"}, "params": {"run": "true"}}}}"#, dir + "/bad.json")
        let bad = try CLI.run(["plan", "bad.json"], in: dir)
        XCTAssertEqual(bad.status, 2)
        XCTAssertTrue(bad.stderr.contains("'nothing' is neither a stage of this pipeline nor an existing file nor a result in the store"), bad.stderr)
    }

    /// A successful command's output is kept beside its result (`show` names the file) and
    /// goes with it when gc collects the result.
    func testACommandsLogIsKeptWithItsResult() throws {
        try writeFile(#"{"name": "l", "stages": {"s": {"type": "command", "params": {"run": "echo hello from the program; echo {params.v} > {outputs.o.txt}", "outputs": ["o.txt"], "params": {"v": 1}}}}}"#,
                      dir + "/l.json")
        XCTAssertEqual(try CLI.run(["run", "l.json"], in: dir).status, 0)
        let show = try CLI.run(["show", "s"], in: dir).stdout
        let line = try XCTUnwrap(show.split(separator: "\n").first { $0.hasPrefix("log      ") }, show)
        let path = String(line.dropFirst(9).prefix { $0 != " " })
        XCTAssertEqual(readFile(path), "hello from the program\n")
        XCTAssertEqual(try CLI.run(["run", "l.json", "--set", "s.v=2"], in: dir).status, 0)
        XCTAssertEqual(try CLI.run(["exp", "drop", "spec"], in: dir).status, 0)
        XCTAssertEqual(try CLI.run(["gc"], in: dir).status, 0)
        XCTAssertFalse(FileManager.default.fileExists(atPath: path), "the log went with its result")
        XCTAssertTrue(try CLI.run(["show", "s"], in: dir).stdout.contains("log      "), "the new result keeps its own")
    }

    /// Direct commands report problems with their own flags, not as places in the one-stage
    /// spec they build.
    func testDirectCommandsNameTheirOwnFlags() throws {
        let r = try CLI.run(["sample", "--questions", "nope.jsonl", "--prompts", "nodir", "--output", "x.jsonl"], in: dir)
        XCTAssertEqual(r.status, 2)
        XCTAssertEqual(r.stderr, "error: --questions nope.jsonl: no such file or directory\n--prompts nodir: no such file or directory\n")
        let split = try CLI.run(["sample", "--data-type", "trian", "--output", "x.jsonl"], in: dir)
        XCTAssertEqual(split.stderr, "error: unknown --data-type 'trian'; did you mean 'train'?\n")
        let sft = try CLI.run(["sft-train", "--sft-data", "a.json", "--model-name-or-path", "m", "--valid-baseline", "v.jsonl", "--output-dir", "o"], in: dir)
        XCTAssertEqual(sft.status, 2)
        XCTAssertTrue(sft.stderr.hasPrefix("error: --sft-data a.json: no such file or directory\n--model-name-or-path m: no such file or directory\n--valid-baseline v.jsonl"), sft.stderr)
        XCTAssertFalse(sft.stderr.contains("$.stages"), sft.stderr)
    }

    /// `dag` prints the graph: stages in run order with their inputs, as text, DOT and Mermaid.
    func testDagPrintsTheGraphInThreeFormats() throws {
        try writeDiamondSpec()
        try writeFile("x\n", dir + "/notes.txt")
        var spec = try String(contentsOfFile: dir + "/spec.json", encoding: .utf8)
        spec = spec.replacingOccurrences(of: #""inputs": {"a": "a", "b": "b"}"#, with: #""inputs": {"a": "a", "b": "b", "notes": "notes.txt"}"#)
        try spec.write(toFile: dir + "/spec.json", atomically: true, encoding: .utf8)
        let text = try CLI.run(["dag", "spec.json"], in: dir)
        XCTAssertEqual(text.status, 0, text.stderr)
        XCTAssertEqual(text.stdout, "demo: 3 stages\n  a (command)\n  b (command)\n  c (command): a ← a, b ← b, notes ← file notes.txt\n")
        let dot = try CLI.run(["dag", "spec.json", "--format", "dot"], in: dir)
        XCTAssertTrue(dot.stdout.hasPrefix("digraph \"demo\" {"), dot.stdout)
        for edge in [#""a" -> "c" [label="a"];"#, #""b" -> "c" [label="b"];"#, #""notes.txt" -> "c" [label="notes"];"#] {
            XCTAssertTrue(dot.stdout.contains(edge), dot.stdout)
        }
        let mermaid = try CLI.run(["dag", "spec.json", "--format", "mermaid"], in: dir)
        XCTAssertTrue(mermaid.stdout.hasPrefix("flowchart LR\n"), mermaid.stdout)
        for line in ["  s_a -->|a| s_c\n", "  s_b -->|b| s_c\n", "  f0[/\"notes.txt\"/]\n", "  f0 -->|notes| s_c\n"] {
            XCTAssertTrue(mermaid.stdout.contains(line), mermaid.stdout)
        }
        let bad = try CLI.run(["dag", "spec.json", "--format", "svg"], in: dir)
        XCTAssertNotEqual(bad.status, 0)
        XCTAssertTrue(bad.stderr.contains("text, dot, mermaid") || bad.stderr.contains("'svg'"), bad.stderr)
    }

    /// docs/stages.md is what `types --markdown` prints: the reference cannot drift from the code.
    func testDocsStagesIsTheTypesReference() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
        let r = try CLI.run(["types", "--markdown"], in: dir)
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(r.stdout, readFile(root + "/docs/stages.md"), "regenerate it: haps-pipe types --markdown > docs/stages.md")
        for type in ["synth-data", "train-agent", "train-decoder", "sample", "rl-train", "evaluate"] {
            XCTAssertTrue(r.stdout.contains("\n## \(type)\n"), type)
        }
        let sample = try CLI.run(["types", "sample"], in: dir)
        XCTAssertTrue(sample.stdout.contains("\n  questions (questions): HotpotQA questions\n"), sample.stdout)
        XCTAssertTrue(sample.stdout.contains("\n  model_<name> (model, optional): "), sample.stdout)
        XCTAssertTrue(sample.stdout.contains("\noutput: samples\n"), sample.stdout)
    }

    /// Item mode: 24 items of 0.1 s with 2 workers; kill -9 halfway, rerun, every item once.
    func testKillDashNineMidStageThenRerunYieldsEveryItemExactlyOnce() throws {
        try writeFile((0..<24).map { #"{"q": \#($0)}"# }.joined(separator: "\n") + "\n", dir + "/items.jsonl")
        try writeFile(#"""
        {"name": "items", "stages": {"each": {"type": "command", "inputs": {"items": "items.jsonl"},
          "params": {"foreach": "items", "workers": 2,
                     "run": "sleep 0.1; echo {item_index} >> executed.log; python3 -c 'import json,sys; print(json.dumps({{\"sq\": json.load(open(sys.argv[1]))[\"q\"] ** 2}}))' {item_file}"}}}}
        """#, dir + "/spec.json")
        let (p, out, err) = try CLI.start(["run", "spec.json"], in: dir)
        let deadline = Date().addingTimeInterval(20)
        while lines(dir + "/executed.log").count < 8 && Date() < deadline { usleep(20_000) }
        kill(p.processIdentifier, SIGKILL)
        _ = CLI.finish(p, out, err)
        let before = lines(dir + "/executed.log").count
        XCTAssertGreaterThanOrEqual(before, 8)
        XCTAssertLessThan(before, 24, "killed halfway")

        let r = try CLI.run(["run", "spec.json"], in: dir)
        XCTAssertEqual(r.status, 0, r.stderr)
        let executed = lines(dir + "/executed.log").map { Int($0)! }
        // Items finished before the kill are not redone; at most the two in flight run again.
        XCTAssertLessThanOrEqual(executed.count, 24 + 2)
        XCTAssertEqual(Set(executed), Set(0..<24))

        let show = try CLI.run(["show", "each", "--lines", "100"], in: dir)
        let results = show.stdout.split(separator: "\n").filter { $0.hasPrefix("{\"index\"") }
        XCTAssertEqual(results, (0..<24).map { #"{"index":\#($0),"output":{"sq":\#($0 * $0)}}"#[...] })
    }

    func testTwoProcessesOnOneStoreRunEachStageOnce() throws {
        try writeDiamondSpec(sleep: 0.5)
        let first = try CLI.start(["run", "spec.json"], in: dir)
        let second = try CLI.start(["run", "spec.json"], in: dir)
        let r1 = CLI.finish(first.0, first.1, first.2)
        let r2 = CLI.finish(second.0, second.1, second.2)
        XCTAssertEqual(r1.status, 0, r1.stderr)
        XCTAssertEqual(r2.status, 0, r2.stderr)
        XCTAssertEqual(lines(dir + "/runs.log").sorted(), ["a", "b", "c"], "each stage ran exactly once across both processes")
    }

    func testCtrlCStopsCleanlyAndTheNextRunResumes() throws {
        try writeFile((0..<20).map { "\($0)" }.joined(separator: "\n") + "\n", dir + "/items.jsonl")
        try writeFile(#"""
        {"name": "slow", "stages": {"each": {"type": "command", "inputs": {"items": "items.jsonl"},
          "params": {"foreach": "items", "run": "sleep 0.1; echo {item_index} >> executed.log; cat {item_file}"}}}}
        """#, dir + "/spec.json")
        let r = try CLI.interrupted(["run", "spec.json"], in: dir) { lines(dir + "/executed.log").count >= 5 }
        XCTAssertEqual(r.status, 130, r.stderr)
        XCTAssertTrue(r.stderr.contains("interrupted: stopping running stages and keeping finished work"), r.stderr)
        XCTAssertTrue(r.stderr.contains("■ each             interrupted after"), r.stderr)
        let done = Set(lines(dir + "/executed.log"))
        XCTAssertLessThan(done.count, 20)

        let again = try CLI.run(["run", "spec.json"], in: dir)
        XCTAssertEqual(again.status, 0, again.stderr)
        XCTAssertEqual(Set(lines(dir + "/executed.log")).count, 20)
        XCTAssertLessThanOrEqual(lines(dir + "/executed.log").count, 21, "finished items are not redone")
    }
}

final class StartupTests: XCTestCase {
    /// Orchestration commands must not pay for heavy libraries at start-up: OpenBLAS and
    /// libcurl are loaded with dlopen when a stage first needs them.
    func testTheToolDoesNotLinkHeavyLibrariesAtLoadTime() throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["readelf", "-d", CLI.binary]
        let out = Pipe()
        p.standardOutput = out
        try p.run()
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        let needed = text.split(separator: "\n").filter { $0.contains("(NEEDED)") }
        XCTAssertFalse(needed.isEmpty, text)
        XCTAssertFalse(needed.contains { $0.contains("libcurl") || $0.contains("openblas") }, needed.joined(separator: "\n"))
        // FoundationEssentials only: full Foundation (with ICU) costs every invocation ~1 ms.
        XCTAssertFalse(needed.contains { $0.contains("[libFoundation.so") || $0.contains("FoundationInternationalization") },
                       needed.joined(separator: "\n"))
    }
}
