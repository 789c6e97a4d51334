import Foundation
import XCTest
import TestSupport

/// The probes of issue 14, reproduced with the real tool and real processes: each of these let
/// a wrong result into the cache, ran someone's text as a command, or changed data silently.
final class ReliabilityTests: XCTestCase {
    var dir = ""

    override func setUpWithError() throws {
        dir = try makeTempDirectory(self)
    }

    /// Runs the tool; what it printed to either stream (progress goes to standard error).
    func output(_ args: [String], in directory: String? = nil) throws -> (status: Int32, text: String) {
        let r = try CLI.run(args, in: directory ?? dir)
        return (r.status, r.stdout + r.stderr)
    }

    /// A command stage that appends 1..4 to its output, one line every 0.3 s.
    func writeSlowCounter() throws {
        try writeFile(#"""
        {"name": "o", "stages": {"s": {"type": "command", "params": {
          "run": "for i in 1 2 3 4; do echo $i >> {outputs.x.txt}; sleep 0.3; done", "outputs": ["x.txt"]}}}}
        """#, dir + "/o.json")
    }

    /// Starts `run o.json`, kills it with SIGKILL while its program runs (with `watchdog`, the
    /// watchdog first), and returns how many of the program's processes are still alive. A
    /// Python parent runs the driver: this test process would reap orphans itself.
    func killDriverHalfway(alsoTheWatchdog watchdog: Bool) throws -> Int {
        let script = #"""
        import os, signal, subprocess, sys, time
        binary, here, watchdog = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
        p = subprocess.Popen([binary, "run", "o.json"], cwd=here, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        def processes():
            for d in filter(str.isdigit, os.listdir("/proc")):
                try:
                    stat = open(f"/proc/{d}/stat").read()
                    yield int(d), int(stat[stat.rindex(")") + 2:].split()[1]), open(f"/proc/{d}/cmdline").read().replace("\0", " ")
                except OSError:
                    pass
        deadline = time.time() + 20
        while time.time() < deadline and not any(ppid == p.pid and "read line" in c for _, ppid, c in processes()):
            time.sleep(0.02)
        time.sleep(0.4)
        if watchdog:  # first: it acts when the driver dies
            for pid, ppid, cmd in processes():
                if ppid == p.pid and "read line" in cmd: os.kill(pid, signal.SIGKILL)
        os.kill(p.pid, signal.SIGKILL)
        p.wait()
        time.sleep(0.1)
        print(sum(1 for _, _, c in processes() if "sleep 0.3" in c))
        """#
        try writeFile(script, dir + "/kill.py")
        let python = try Python.run(script: dir + "/kill.py", arguments: [CLI.binary, dir, watchdog ? "1" : "0"])
        let text = python.stdout
        return try XCTUnwrap(Int(text.trimmingCharacters(in: .whitespacesAndNewlines)), text + python.stderr)
    }

    func testAProgramDiesWithItsDriver() throws {
        try writeSlowCounter()
        XCTAssertEqual(try killDriverHalfway(alsoTheWatchdog: false), 0, "the stage's program outlived its driver")
        let r = try output(["run", "o.json"])
        XCTAssertEqual(r.status, 0, r.text)
        XCTAssertFalse(r.text.contains("stopped"), r.text)
        XCTAssertEqual(try CLI.run(["show", "s", "--file", "x.txt"], in: dir).stdout, "1\n2\n3\n4\n")
    }

    /// The driver and its watchdog both killed (as `kill -9` of a whole session would): the
    /// resumed run stops the survivor recorded in the work area before it starts the stage.
    func testAResumedRunStopsASurvivorOfTheRunBefore() throws {
        try writeSlowCounter()
        XCTAssertGreaterThan(try killDriverHalfway(alsoTheWatchdog: true), 0, "with its watchdog killed too, the program survives its driver")
        let r = try output(["run", "o.json"])
        XCTAssertEqual(r.status, 0, r.text)
        XCTAssertTrue(r.text.contains("stopped 1 process group(s) left running by an earlier, interrupted run"), r.text)
        XCTAssertEqual(try CLI.run(["show", "s", "--file", "x.txt"], in: dir).stdout, "1\n2\n3\n4\n")
    }

    func testAStageCannotChangeItsInputs() throws {
        try writeFile("hello\n", dir + "/data.txt")
        try writeFile(#"""
        {"name": "m", "stages": {
          "a": {"type": "command", "inputs": {"d": "data.txt"}, "params": {"run": "sed -i s/hello/EVIL/ {inputs.d}; cat {inputs.d} > {outputs.y}", "outputs": ["y"]}},
          "b": {"type": "command", "inputs": {"d": "a"}, "params": {"run": "echo more >> {inputs.d}; echo done > {outputs.z}", "outputs": ["z"]}},
          "c": {"type": "command", "inputs": {"d": "a"}, "params": {"run": "cat {inputs.d} > {outputs.w}", "outputs": ["w"]}}}}
        """#, dir + "/m.json")
        let first = try output(["run", "m.json", "--keep-going"])
        XCTAssertNotEqual(first.status, 0)
        XCTAssertTrue(first.text.contains("the stage changed its input 'd' ('data.txt' was changed); inputs are read-only"), first.text)
        XCTAssertEqual(readFile(dir + "/data.txt"), "hello\n", "the user's file is never handed to a stage")
        // Stage a edits its snapshot, not the file: fix it to copy, then b appends to its input.
        try writeFile(readFile(dir + "/m.json").replacingOccurrences(of: "sed -i s/hello/EVIL/ {inputs.d}; ", with: ""), dir + "/m.json")
        let second = try output(["run", "m.json", "--keep-going", "-j", "1"])
        XCTAssertTrue(second.text.contains("the stage changed its input 'd' ('y' was changed)"), second.text)
        XCTAssertEqual(try CLI.run(["show", "c", "--file", "w"], in: dir).stdout, "hello\n", "c read a's output as a wrote it")
        XCTAssertEqual(try CLI.run(["run", "m.json", "--verify", "--until", "c"], in: dir).status, 0)
    }

    func testAnUnpackedTreeThatWasChangedIsUnpackedAgain() throws {
        try writeFile(#"""
        {"name": "t", "stages": {
          "a": {"type": "command", "params": {"run": "echo clean > {outputs.y}", "outputs": ["y"]}},
          "c": {"type": "command", "inputs": {"d": "a"}, "params": {"run": "cat {inputs.d} > {outputs.w}", "outputs": ["w"]}}}}
        """#, dir + "/t.json")
        XCTAssertEqual(try CLI.run(["run", "t.json"], in: dir).status, 0)
        let trees = dir + "/artifacts/trees"
        let tree = try XCTUnwrap(try FileManager.default.contentsOfDirectory(atPath: trees).first { !$0.hasSuffix(".stamp") && !$0.hasPrefix(".") })
        XCTAssertEqual(try FileManager.default.attributesOfItem(atPath: trees + "/" + tree)[.posixPermissions] as? Int, 0o555)
        try writeFile("dirty\n", trees + "/" + tree + "/y")  // root can write it; the stamp tells
        XCTAssertEqual(try CLI.run(["run", "t.json", "--force", "c"], in: dir).status, 0)
        XCTAssertEqual(try CLI.run(["show", "c", "--file", "w"], in: dir).stdout, "clean\n")
    }

    func testAnInputChangedWhileItsStageRunsIsNotCachedUnderTheNewBytes() throws {
        try writeFile("A\n", dir + "/data.txt")
        try writeFile(#"""
        {"name": "t", "stages": {"a": {"type": "command", "inputs": {"d": "data.txt"}, "params": {"run": "sleep 1; cat {inputs.d} > {outputs.y}", "outputs": ["y"]}}}}
        """#, dir + "/t.json")
        let (p, out, err) = try CLI.start(["run", "t.json"], in: dir)
        usleep(500_000)
        try writeFile("B\n", dir + "/data.txt")
        XCTAssertEqual(CLI.finish(p, out, err).status, 0)
        XCTAssertEqual(try CLI.run(["show", "a", "--file", "y"], in: dir).stdout, "A\n", "the stage read the bytes its key was computed from")
        let rerun = try output(["run", "t.json"])
        XCTAssertTrue(rerun.text.contains("input 'd' changed"), rerun.text)
        XCTAssertEqual(try CLI.run(["show", "a", "--file", "y"], in: dir).stdout, "B\n")
    }

    func testPlaceholdersAreQuotedForTheShell() throws {
        let spaced = dir + "/a folder"
        try FileManager.default.createDirectory(atPath: spaced, withIntermediateDirectories: true)
        try writeFile(#"""
        {"name": "q", "stages": {"s": {"type": "command", "params": {
          "run": "echo {params.v} > {outputs.o.txt}; echo 'in quotes: {params.v}' >> {outputs.o.txt}", "outputs": ["o.txt"], "params": {"v": 1}}}}}
        """#, spaced + "/q.json")
        let marker = dir + "/pwned"
        for value in ["1; touch \(marker)", "$(touch \(marker))", "`touch \(marker)`", "it's | true"] {
            let r = try CLI.run(["run", "q.json", "--set", "s.params.v=\(value)"], in: spaced)
            XCTAssertEqual(r.status, 0, r.stdout + r.stderr)
            XCTAssertFalse(FileManager.default.fileExists(atPath: marker), "ran \(value)")
            XCTAssertEqual(try CLI.run(["show", "s", "--file", "o.txt"], in: spaced).stdout, "\(value)\nin quotes: \(value)\n")
        }
        XCTAssertEqual((try FileManager.default.contentsOfDirectory(atPath: spaced)).sorted(), ["artifacts", "q.json"], "no stray file")
    }

    func testALinkOutOfTheOutputIsRefused() throws {
        try writeFile(#"""
        {"name": "l", "stages": {
          "out": {"type": "command", "params": {"run": "ln -s /etc/passwd {out}/p"}},
          "in": {"type": "command", "params": {"run": "echo a > {out}/a; ln -s a {out}/b"}}}}
        """#, dir + "/l.json")
        let r = try output(["run", "l.json", "--keep-going"])
        XCTAssertTrue(r.text.contains("cannot store output") && r.text.contains("it is a symbolic link to /etc/passwd, outside the output directory"), r.text)
        XCTAssertEqual(try CLI.run(["show", "in", "--file", "b"], in: dir).stdout, "a\n")
    }

    func testPlanAndStatusNoticeMissingObjects() throws {
        try writeFile(#"{"name": "g", "stages": {"a": {"type": "command", "params": {"run": "echo x > {outputs.y}", "outputs": ["y"]}}}}"#, dir + "/g.json")
        XCTAssertEqual(try CLI.run(["run", "g.json"], in: dir).status, 0)
        XCTAssertTrue(try CLI.run(["plan", "g.json"], in: dir).stdout.contains("0 of 1 stages to run"))
        let objects = dir + "/artifacts/objects"
        for sub in try FileManager.default.contentsOfDirectory(atPath: objects) {
            for f in try FileManager.default.contentsOfDirectory(atPath: objects + "/" + sub) {
                let path = objects + "/" + sub + "/" + f
                chmod(path, 0o644)
                try Data().write(to: URL(fileURLWithPath: path))  // truncated
            }
        }
        let plan = try CLI.run(["plan", "g.json"], in: dir)
        XCTAssertTrue(plan.stdout.contains("1 of 1 stages to run") && plan.stdout.contains("truncated or changed"), plan.stdout)
        XCTAssertFalse(try CLI.run(["status", "g.json"], in: dir).stdout.contains("up to date"))
    }

    func testClearErrorsForBadSetUps() throws {
        try writeFile(#"{"name": "c", "stages": {"a": {"type": "command", "params": {"run": "true", "cwd": "no/such/dir"}}}}"#, dir + "/c.json")
        XCTAssertTrue(try output(["run", "c.json"]).text.contains("no/such/dir is not an existing directory"))
        try writeFile("", dir + "/file")
        let store = try CLI.run(["status", "--store", "file"], in: dir)
        XCTAssertTrue(store.stderr.contains("it is a file, not a directory"), store.stderr)
        try writeFile("", dir + "/empty.jsonl")
        let row = #"{"question": "q", "teacher": "Llama-3.1-8B-Instruct", "student": "Qwen2.5-7B-Instruct", "f1": 0.5}"#
        try writeFile(row + "\n" + row.replacingOccurrences(of: "0.5", with: "\"x\"") + "\n", dir + "/b.jsonl")
        let empty = try CLI.run(["score", "b.jsonl", "--pair", "llama_qwen", "--questions", "empty.jsonl"], in: dir)
        XCTAssertTrue(empty.stderr.contains("empty.jsonl: no questions (the file is empty)"), empty.stderr)
        let skipped = try CLI.run(["score", "b.jsonl", "--pair", "llama_qwen"], in: dir)
        XCTAssertTrue(skipped.stdout.contains("skipped 1 rows: 'f1' is not a number (b.jsonl:2)"), skipped.stdout + skipped.stderr)
        try writeFile(#"{"name": "r", "stages": {"a": {"type": "command", "params": {"run": "echo x > {outputs.y}", "outputs": ["y"]}}}}"#, dir + "/r.json")
        XCTAssertEqual(try CLI.run(["run", "r.json"], in: dir).status, 0)
        try writeFile("{not json", dir + "/artifacts/refs/r/a.json")
        let show = try CLI.run(["show", "a"], in: dir)
        XCTAssertTrue(show.stderr.contains("its ref file") && show.stderr.contains("is damaged"), show.stderr)
    }

    /// A full disk is named as such (on a 256 KiB tmpfs; skipped where mounting is not allowed).
    func testAFullDiskIsNamed() throws {
        let tiny = dir + "/tiny"
        try FileManager.default.createDirectory(atPath: tiny, withIntermediateDirectories: true)
        let mount = Process()
        mount.executableURL = URL(fileURLWithPath: "/bin/sh")
        mount.arguments = ["-c", "mount -t tmpfs -o size=256k tmpfs '\(tiny)' 2>/dev/null"]
        try mount.run()
        mount.waitUntilExit()
        try XCTSkipIf(mount.terminationStatus != 0, "cannot mount a tmpfs here (needs root in a mount namespace)")
        defer { _ = try? Process.run(URL(fileURLWithPath: "/bin/umount"), arguments: [tiny]).waitUntilExit() }
        try writeFile(#"{"name": "d", "stages": {"s": {"type": "command", "params": {"run": "head -c 1000000 /dev/zero > {outputs.big}", "outputs": ["big"]}}}}"#, tiny + "/d.json")
        let r = try output(["run", "d.json"], in: tiny)
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.text.contains("is full (ENOSPC, no space left on device)"), r.text)
    }

    /// A path the user has yet to fetch (a model directory) does not block the spec: a run
    /// that needs it stops before starting anything and says what is missing; other stages run.
    func testAMissingModelDirectoryStopsOnlyTheRunsThatNeedIt() throws {
        try writeFile(#"""
        {"name": "m", "stages": {
          "a": {"type": "command", "params": {"run": "echo a > {outputs.y}", "outputs": ["y"]}},
          "b": {"type": "command", "inputs": {"model": "models/not-yet-downloaded", "d": "a"}, "params": {"run": "true"}}}}
        """#, dir + "/m.json")
        let all = try output(["run", "m.json"])
        XCTAssertNotEqual(all.status, 0)
        XCTAssertTrue(all.text.contains("nothing was run: stage 'b' reads input 'model' from \(dir)/models/not-yet-downloaded, which does not exist"), all.text)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/artifacts/refs/m/a.json"), "nothing ran")
        // plan and status say which stages wait for it, rather than failing.
        let plan = try output(["plan", "m.json"])
        XCTAssertEqual(plan.status, 0, plan.text)
        XCTAssertTrue(plan.text.contains("m: 1 of 2 stages to run; 1 cannot run until their inputs exist (run --keep-going runs the others)"), plan.text)
        XCTAssertTrue(plan.text.contains("✗ b                cannot run until its inputs exist\n        - input 'model': "), plan.text)
        XCTAssertTrue(plan.text.contains("models/not-yet-downloaded"), plan.text)
        let status = try output(["status", "m.json"])
        XCTAssertTrue(status.text.contains("  b                missing input"), status.text)
        XCTAssertEqual(try output(["run", "m.json", "--until", "a"]).status, 0)
        // --keep-going runs what does not need it and names what it could not run.
        try writeFile(#"""
        {"name": "k", "stages": {
          "a": {"type": "command", "params": {"run": "echo a > {outputs.y}", "outputs": ["y"]}},
          "b": {"type": "command", "inputs": {"model": "models/not-yet-downloaded", "d": "a"}, "params": {"run": "true"}},
          "c": {"type": "command", "inputs": {"b": "b"}, "params": {"run": "true"}}}}
        """#, dir + "/k.json")
        let some = try output(["run", "k.json", "--keep-going", "--plain"])
        XCTAssertEqual(some.status, 1, some.text)
        XCTAssertTrue(FileManager.default.fileExists(atPath: dir + "/artifacts/refs/k/a.json"), some.text)
        XCTAssertTrue(some.text.contains("- b                skipped: missing input: stage 'b' reads input 'model' from \(dir)/models/not-yet-downloaded, which does not exist"), some.text)
        XCTAssertTrue(some.text.contains("- c                skipped: input stage 'b' skipped"), some.text)
        XCTAssertTrue(some.text.contains("k: 1 cached, 2 skipped in "), "a is m's a, cached: \(some.text)")
        XCTAssertTrue(some.text.contains("not run (missing inputs): b, c\n"), some.text)
        // A stage name mistyped is still an error of the spec.
        try writeFile(#"{"name": "t", "stages": {"a": {"type": "command", "params": {"run": "true"}}, "b": {"type": "command", "inputs": {"d": "aa"}, "params": {"run": "true"}}}}"#, dir + "/t.json")
        XCTAssertTrue(try output(["plan", "t.json"]).text.contains("'aa' is neither a stage of this pipeline nor an existing file"))
    }

    func testCRLFAndInvalidUTF8InData() throws {
        try writeFile("{\"prediction\": \"Paris\", \"ground_truth\": \"Paris\"}\r\n{\"prediction\": \"a\", \"ground_truth\": \"b\"}\r\n", dir + "/m.jsonl")
        let m = try CLI.run(["metrics", "m.jsonl"], in: dir)
        XCTAssertEqual(m.status, 0, m.stderr)
        XCTAssertEqual(m.stdout.split(separator: "\n").count, 2)
        var bad = Data(#"{"prediction": "Par"#.utf8); bad.append(0xFF); bad.append(contentsOf: Array(#"is", "ground_truth": "Paris"}"#.utf8) + [0x0A])
        try bad.write(to: URL(fileURLWithPath: dir + "/bad.jsonl"))
        let b = try CLI.run(["metrics", "bad.jsonl"], in: dir)
        XCTAssertNotEqual(b.status, 0)
        XCTAssertTrue(b.stderr.contains("bad.jsonl:1: invalid UTF-8 (byte 0xff at byte 20 of the line)"), b.stderr)
        try writeFile("\"a\"\r\n\"b\"\r\n\"c\"\r\n", dir + "/items.jsonl")
        try writeFile(#"{"name": "f", "stages": {"s": {"type": "command", "inputs": {"items": "items.jsonl"}, "params": {"foreach": "items", "run": "cat {item_file}"}}}}"#, dir + "/f.json")
        XCTAssertEqual(try CLI.run(["run", "f.json"], in: dir).status, 0)
        XCTAssertEqual(try CLI.run(["show", "s", "--file", "results.jsonl"], in: dir).stdout,
                       "{\"index\":0,\"output\":\"a\"}\n{\"index\":1,\"output\":\"b\"}\n{\"index\":2,\"output\":\"c\"}\n")
    }

    func testNumbersADoubleCannotHoldAreErrors() throws {
        try writeFile(#"{"name": "n", "stages": {"a": {"type": "command", "params": {"run": "echo {params.x} > {outputs.y}", "outputs": ["y"], "params": {"x": 1}}}}}"#, dir + "/n.json")
        let inf = try CLI.run(["plan", "n.json", "--set", "a.params.x=1e400"], in: dir)
        XCTAssertTrue(inf.stderr.contains("--set 'a.params.x=1e400': number 1e400 is out of range"), inf.stderr)
        try writeFile(#"{"name": "n", "seed": 9007199254740993, "stages": {}}"#, dir + "/big.json")
        let big = try CLI.run(["plan", "big.json"], in: dir)
        XCTAssertTrue(big.stderr.contains("big.json:1:23: invalid JSON: integer 9007199254740993 cannot be held exactly"), big.stderr)
    }
}
