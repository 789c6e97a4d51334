import Foundation
import XCTest

/// The store and spec probes of issue 25, reproduced with the real tool and real processes:
/// links out of an input, values run as shell code, a stale cache hit, exports into the store,
/// errors naming the store's copies, store references checked late, and two smaller ones.
final class ProbeTests: XCTestCase {
    var dir = ""

    override func setUpWithError() throws {
        dir = try makeTempDirectory(self)
    }

    func output(_ args: [String]) throws -> (status: Int32, text: String) {
        let r = try CLI.run(args, in: dir)
        return (r.status, r.stdout + r.stderr)
    }

    /// A spec whose one command stage lists its input directory `in`.
    func writeListing() throws {
        try writeFile(#"""
        {"name": "l", "stages": {"s": {"type": "command", "inputs": {"d": "in"},
          "params": {"run": "cd {inputs.d} && find . | sort > {outputs.list}", "outputs": ["list"]}}}}
        """#, dir + "/l.json")
    }

    func testLinksInAnInputStayInsideIt() throws {
        try writeListing()
        let input = dir + "/in"
        try FileManager.default.createDirectory(atPath: input + "/sub", withIntermediateDirectories: true)
        try writeFile("a\n", input + "/a.txt")
        try FileManager.default.createSymbolicLink(atPath: input + "/alias.txt", withDestinationPath: "a.txt")
        try FileManager.default.createSymbolicLink(atPath: input + "/.#lock", withDestinationPath: "user@host.1234")  // dangling: left out
        try FileManager.default.createSymbolicLink(atPath: input + "/sub/deep", withDestinationPath: "..")
        // A link back to a directory it is inside (a loop) is refused at once, by plan and run alike.
        for command in [["plan", "l.json"], ["run", "l.json"]] {
            let r = try output(command)
            XCTAssertEqual(r.status, command[0] == "plan" ? 0 : 1, r.text)
            XCTAssertTrue(r.text.contains("in/sub/deep") && r.text.contains("a loop"), r.text)
        }
        try FileManager.default.removeItem(atPath: input + "/sub/deep")
        // Two links to the directory itself made the old walk exponential.
        try FileManager.default.createSymbolicLink(atPath: input + "/x", withDestinationPath: ".")
        try FileManager.default.createSymbolicLink(atPath: input + "/y", withDestinationPath: ".")
        let (p, out, err) = try CLI.start(["plan", "l.json"], in: dir)
        let deadline = Date().addingTimeInterval(20)
        while p.isRunning && Date() < deadline { usleep(20_000) }
        let hung = p.isRunning
        if hung { p.terminate() }
        let loop = CLI.finish(p, out, err)
        XCTAssertFalse(hung, "plan walked the links for 20 s")
        XCTAssertTrue(loop.stdout.contains("a loop"), loop.stdout + loop.stderr)
        try FileManager.default.removeItem(atPath: input + "/x")
        try FileManager.default.removeItem(atPath: input + "/y")
        // Links out of the input: a file and a directory.
        for (name, target) in [("passwd", "/etc/passwd"), ("etcdir", "/etc")] {
            try FileManager.default.createSymbolicLink(atPath: input + "/" + name, withDestinationPath: target)
            let r = try output(["run", "l.json"])
            XCTAssertNotEqual(r.status, 0)
            XCTAssertTrue(r.text.contains("in/\(name)") && r.text.contains("outside"), r.text)
            try FileManager.default.removeItem(atPath: input + "/" + name)
        }
        let stored = (try? FileManager.default.subpathsOfDirectory(atPath: dir + "/artifacts")) ?? []
        XCTAssertFalse(stored.contains { $0.hasSuffix("passwd") || $0.hasSuffix("shadow") }, "nothing from /etc was stored")
        // A link inside the input is followed: the file is stored under the link's name.
        let ok = try output(["run", "l.json"])
        XCTAssertEqual(ok.status, 0, ok.text)
        XCTAssertEqual(try CLI.run(["show", "s", "--file", "list"], in: dir).stdout, ".\n./a.txt\n./alias.txt\n")
    }

    func testAPrivateInputStaysPrivateInTheStore() throws {
        try writeListing()
        try FileManager.default.createDirectory(atPath: dir + "/in", withIntermediateDirectories: true)
        try writeFile("secret\n", dir + "/in/key.txt")
        try writeFile("public\n", dir + "/in/open.txt")
        chmod(dir + "/in/key.txt", 0o640)  // group-readable, not others: still private
        XCTAssertEqual(try output(["run", "l.json"]).status, 0)
        let stored = try XCTUnwrap(FileManager.default.subpathsOfDirectory(atPath: dir + "/artifacts/trees").first { $0.hasSuffix("/key.txt") })
        func mode(_ path: String) throws -> Int { try (FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as! NSNumber).intValue }
        XCTAssertEqual(try mode(dir + "/artifacts/trees/" + stored), 0o400, "never wider than the user's file")
        XCTAssertEqual(try mode(dir + "/artifacts/trees/" + stored.replacingOccurrences(of: "key.txt", with: "open.txt")), 0o444)
        let objects = try FileManager.default.subpathsOfDirectory(atPath: dir + "/artifacts/objects").filter { $0.count > 10 }
        XCTAssertEqual(try objects.filter { try mode(dir + "/artifacts/objects/" + $0) == 0o400 }.count, 1, "the private file's object")
    }

    /// Every context of the issue's probe: the value is printed, never run.
    func testParameterValuesAreNeverShellCode() throws {
        let marker = dir + "/FILE"
        try writeFile(#"""
        {"name": "q", "stages": {"subst": {"type": "command", "params": {"outputs": ["o.txt"], "params": {"msg": "hi"},
          "run": "exec > {outputs.o.txt}\necho \"$(echo {params.msg})\"\necho `echo {params.msg}`\ncat <<EOF\n{params.msg}\nEOF\necho comment # {params.msg}"}}}}
        """#, dir + "/q.json")
        for value in ["x; touch \(marker)", "$(touch \(marker))", "`touch \(marker)`", "x\ntouch \(marker)", "EOF\ntouch \(marker)\ncat <<EOF"] {
            let r = try output(["run", "q.json", "--set", "subst.msg=\(value)"])
            XCTAssertEqual(r.status, 0, r.text)
            XCTAssertFalse(FileManager.default.fileExists(atPath: marker), "ran \(value.debugDescription)")
            let printed = try CLI.run(["show", "subst", "--file", "o.txt"], in: dir).stdout
            let words = value.split(whereSeparator: \.isWhitespace).joined(separator: " ")
            XCTAssertEqual(printed, "\(value)\n\(words)\n\(value)\ncomment\n", value.debugDescription)
        }
        // Where the shell expands nothing, a placeholder is refused before anything runs.
        try writeFile(#"""
        {"name": "h", "stages": {"s": {"type": "command", "params": {"params": {"msg": "hi"},
          "run": "cat <<'EOF'\n{params.msg}\nEOF"}}}}
        """#, dir + "/h.json")
        let refused = try output(["run", "h.json"])
        XCTAssertEqual(refused.status, 2, refused.text)
        XCTAssertTrue(refused.text.contains("quoted here-document"), refused.text)
    }

    func testAnInputRewrittenWithTheSameSizeAndTimesIsSeen() throws {
        try writeFile(#"""
        {"name": "c", "stages": {"s": {"type": "command", "inputs": {"f": "in.txt"},
          "params": {"run": "cat {inputs.f} > {outputs.o}", "outputs": ["o"]}}}}
        """#, dir + "/c.json")
        try writeFile("AAAA\n", dir + "/A")
        try writeFile("BBBB\n", dir + "/B")
        let when = Date(timeIntervalSince1970: 1_700_000_000)
        for f in ["A", "B"] { try FileManager.default.setAttributes([.modificationDate: when], ofItemAtPath: dir + "/" + f) }
        func copyKeepingTimes(_ from: String) throws {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: "/bin/cp")
            p.arguments = ["-p", dir + "/" + from, dir + "/in.txt"]
            try p.run(); p.waitUntilExit()
        }
        try copyKeepingTimes("A")
        XCTAssertEqual(try output(["run", "c.json"]).status, 0)
        try copyKeepingTimes("B")  // same size, same mtime, same inode: only the ctime differs
        let rerun = try output(["run", "c.json"])
        XCTAssertTrue(rerun.text.contains("input 'f' changed"), rerun.text)
        XCTAssertEqual(try CLI.run(["show", "s", "--file", "o"], in: dir).stdout, "BBBB\n")
        // --verify trusts no recorded stat: with the record of in.txt's stats made to claim A's
        // digest (a file system that keeps no ctime), a verified run rehashes and sees B.
        let record = try XCTUnwrap(FileManager.default.contentsOfDirectory(atPath: dir + "/artifacts/filestat").first)
        let recordPath = dir + "/artifacts/filestat/" + record
        try copyKeepingTimes("A")
        XCTAssertEqual(try output(["run", "c.json"]).status, 0)
        let claimOfA = readFile(recordPath)
        try copyKeepingTimes("B")
        XCTAssertEqual(try output(["run", "c.json"]).status, 0)
        var fields = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: recordPath))) as? [String: Any])
        fields["digest"] = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(claimOfA.utf8)) as? [String: Any])["digest"]
        try JSONSerialization.data(withJSONObject: fields).write(to: URL(fileURLWithPath: recordPath))
        let verified = try output(["run", "c.json", "--verify"])
        XCTAssertEqual(verified.status, 0, verified.text)
        XCTAssertEqual(try CLI.run(["show", "s", "--file", "o"], in: dir).stdout, "BBBB\n", verified.text)
    }

    func testExportNeverWritesIntoTheStore() throws {
        try writeFile(#"{"name": "e", "stages": {"s": {"type": "command", "params": {"run": "echo x > {outputs.y}", "outputs": ["y"]}}}}"#, dir + "/e.json")
        XCTAssertEqual(try output(["run", "e.json"]).status, 0)
        for inside in ["artifacts/objects/zz", "artifacts/trees", "artifacts/refs/new", "artifacts"] {
            let r = try output(["export", "s", inside])
            XCTAssertEqual(r.status, 2, r.text)
            XCTAssertTrue(r.text.contains("is inside the store"), r.text)
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/artifacts/objects/zz"))
        // An export reads objects only: the store is left as it was (a read-only store works).
        removeTree(dir + "/artifacts/trees")
        removeTree(dir + "/artifacts/locks")
        let before = try FileManager.default.subpathsOfDirectory(atPath: dir + "/artifacts").sorted()
        let r = try output(["export", "s", "out"])
        XCTAssertEqual(r.status, 0, r.text)
        XCTAssertEqual(readFile(dir + "/out/y"), "x\n")
        XCTAssertEqual(try FileManager.default.subpathsOfDirectory(atPath: dir + "/artifacts").sorted(), before)
        // Where this machine lets us (root with mount rights), the same on a truly read-only store.
        let readOnly = dir + "/ro-store"
        try FileManager.default.createDirectory(atPath: readOnly, withIntermediateDirectories: true)
        if shell("mount --bind \(dir)/artifacts \(readOnly) && mount -o remount,bind,ro \(readOnly)") {
            defer { _ = shell("umount \(readOnly)") }
            let ro = try output(["export", "s", "out-ro", "--store", "ro-store"])
            XCTAssertEqual(ro.status, 0, ro.text)
            XCTAssertEqual(readFile(dir + "/out-ro/y"), "x\n")
            let fresh = try output(["status", "--store", "ro-store/new"])
            XCTAssertTrue(fresh.text.contains("cannot create directory") && fresh.text.contains("Read-only file system"), fresh.text)
        }
        // A store that cannot be created is named with the system's reason, not a raw error value.
        try writeFile("", dir + "/plain")
        let bad = try output(["status", "--store", "plain/store"])
        XCTAssertTrue(bad.text.contains("cannot create directory") && bad.text.contains("plain/store") && !bad.text.contains("Cocoa"), bad.text)
    }

    func testErrorsNameTheUsersFileAndPortAndScoresAreBounded() throws {
        try FileManager.default.createDirectory(atPath: dir + "/data", withIntermediateDirectories: true)
        let row = #"{"question": "q%d", "teacher": 0, "student": 0, "action": 0, "f1": %@}"#
        func table(_ values: [String]) -> String { values.enumerated().map { String(format: row, $0.offset, $0.element) }.joined(separator: "\n") + "\n" }
        try writeFile(#"{"name": "r", "stages": {"fixed": {"type": "route-table", "inputs": {"scores": "data/scores.jsonl"}, "params": {"method": "best-fixed"}}}}"#, dir + "/r.json")
        try writeFile(table(["0.5", "0.25", "1"]) + "{not json\n", dir + "/data/scores.jsonl")
        let bad = try output(["run", "r.json"])
        XCTAssertNotEqual(bad.status, 0)
        XCTAssertTrue(bad.text.contains(dir + "/data/scores.jsonl:4") && bad.text.contains("input 'scores'"), bad.text)
        XCTAssertFalse(bad.text.contains("trees/"), bad.text)
        try writeFile(table(["0.5", "1e300"]), dir + "/data/scores.jsonl")
        let huge = try output(["run", "r.json"])
        XCTAssertTrue(huge.text.contains("scores.jsonl:2") && huge.text.contains("outside [0, 1]"), huge.text)
        // The score command refuses one too.
        try writeFile(#"{"question": "q", "teacher": "Llama-3.1-8B-Instruct", "student": "Qwen2.5-7B-Instruct", "f1": 1e300}"# + "\n", dir + "/b.jsonl")
        let score = try output(["score", "b.jsonl", "--pair", "llama_qwen"])
        XCTAssertNotEqual(score.status, 0)
        XCTAssertTrue(score.text.contains("b.jsonl:1") && score.text.contains("outside [0, 1]"), score.text)
        // status says a stage that failed failed.
        let status = try output(["status", "r.json"])
        XCTAssertTrue(status.text.contains("failed") && !status.text.contains("never run"), status.text)
    }

    func testStoreReferencesAreCheckedAtValidation() throws {
        try writeFile(#"{"name": "p1", "stages": {"score_valid": {"type": "command", "params": {"run": "echo '{{}}' > {outputs.scores.jsonl}", "outputs": ["scores.jsonl"], "kind": "score-table"}}}}"#, dir + "/p1.json")
        XCTAssertEqual(try output(["run", "p1.json"]).status, 0)
        func check(_ input: String, _ type: String = "command", port: String = "x", expect: String) throws {
            let params = type == "command" ? #"{"run": "true"}"# : "{}"
            try writeFile(#"{"name": "p2", "stages": {"s": {"type": "\#(type)", "inputs": {"\#(port)": "\#(input)"}, "params": \#(params)}}}"#, dir + "/p2.json")
            for command in [["plan", "p2.json"], ["run", "p2.json"]] {
                let r = try output(command)
                XCTAssertEqual(r.status, 2, "\(command) \(input): " + r.text)
                XCTAssertTrue(r.text.contains(expect), "\(command) \(input): " + r.text)
            }
        }
        try check("p1/score_valdi", expect: "did you mean 'p1/score_valid'?")
        try check("p1/nothing_like_it", expect: "pipeline 'p1' has score_valid")
        // A path of the same shape that is not about the store (a model yet to fetch) stays a path.
        try writeFile(#"{"name": "p3", "stages": {"s": {"type": "command", "inputs": {"x": "weights/score_valid"}, "params": {"run": "true"}}}}"#, dir + "/p3.json")
        let later = try output(["plan", "p3.json"])
        XCTAssertEqual(later.status, 0, later.text)
        XCTAssertTrue(later.text.contains("cannot run until its inputs exist"), later.text)
        try check("p1/score_valid", "build-sft", port: "samples", expect: "is a stored result of kind 'score-table' but input 'samples' of 'build-sft' expects 'samples'")
        // Two objects whose digests share a prefix: the prefix is ambiguous, as show says.
        let objects = dir + "/artifacts/objects/ab"
        try FileManager.default.createDirectory(atPath: objects, withIntermediateDirectories: true)
        for tail in ["0", "1"] { try writeFile("", objects + "/cdef" + String(repeating: tail, count: 58)) }
        try check("abcdef", expect: "digest prefix 'abcdef' matches 2 objects; give more digits")
        XCTAssertTrue(try output(["show", "abcdef"]).text.contains("digest prefix 'abcdef' matches 2 objects"))
    }
}

/// Runs a `/bin/sh` command quietly; whether it succeeded.
private func shell(_ command: String) -> Bool {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/bin/sh")
    p.arguments = ["-c", command + " 2>/dev/null"]
    guard (try? p.run()) != nil else { return false }
    p.waitUntilExit()
    return p.terminationStatus == 0
}

/// Removes a directory tree whose directories may be read-only (the store's trees).
private func removeTree(_ path: String) {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/bin/sh")
    p.arguments = ["-c", "chmod -R u+w \"$0\" 2>/dev/null; rm -rf \"$0\"", path]
    try? p.run(); p.waitUntilExit()
}
