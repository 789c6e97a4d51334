import Foundation
import XCTest
@testable import Pipeline
import TestSupport

final class SupportTests: XCTestCase {
    func testDigestMatchesPythonHashlib() throws {
        for n in [0, 1, 55, 56, 64, 1000, 100_000] {
            let bytes = (0..<n).map { UInt8(($0 * 31 + 7) % 251) }
            let py = try Python.output("import hashlib,sys; print(hashlib.sha256(bytes((i*31+7)%251 for i in range(int(sys.argv[1])))).hexdigest())", arguments: ["\(n)"])
            XCTAssertEqual(Digest.of(bytes).hex, py.trimmingCharacters(in: .newlines), "n=\(n)")
        }
    }

    func testNearestNameSuggestsPlausibleTypos() {
        XCTAssertEqual(NearestName.suggest("comand", among: ["command", "score"]), "command")
        XCTAssertEqual(NearestName.suggest("budgte", among: ["budget", "workers"]), "budget")
        XCTAssertEqual(NearestName.suggest("zzz", among: ["budget", "workers"]), nil)
        XCTAssertEqual(NearestName.distance("ab", "ba"), 1)
    }

    func testTemplatesFollowPythonFormatBraces() throws {
        XCTAssertEqual(try Template.render("a {x} {{y}} }}", ["x": "1"]), "a 1 {y} }")
        XCTAssertEqual(try Template.placeholders(in: "{a} {{b}} {c.d}").get(), ["a", "c.d"])
        XCTAssertThrowsError(try Template.placeholders(in: "x } y").get())
        XCTAssertThrowsError(try Template.placeholders(in: "x { y").get())
    }

    /// What `/bin/sh` prints running a filled-in command with its variables.
    func printed(_ command: ShellCommand) throws -> String {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/sh")
        p.arguments = ["-c", command.script]
        p.environment = command.environment
        let out = Pipe()
        p.standardOutput = out
        try p.run()
        p.waitUntilExit()
        return String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    }

    /// A value substituted into a shell command is data wherever it stands (plain text, '…',
    /// "…", `$( )` inside "…", backquotes, an unquoted here-document, a comment): the shell
    /// itself prints each value back exactly, and nothing else runs.
    func testShellPlaceholdersAreDataInEveryContext() throws {
        let dir = try makeTempDir(self)
        let hostile = ["plain", "", "two words", "it's", "a\"b", "$(touch \(dir)/x)", "`touch \(dir)/x`", "; touch \(dir)/x",
                       "back\\slash", "$HOME", "\n", "x\ntouch \(dir)/x", "EOF\ntouch \(dir)/x\ncat <<EOF", ")\"; touch \(dir)/x; echo \"("]
        let script = """
            printf '%s|' {v} 'in single {v} quotes' "in double {v} quotes" "$(printf '%s' {v})" "`printf '%s' {v}`"
            cat <<EOF
            here {v}
            EOF
            cat <<-EOF
            \there too {v}
            \tEOF
            echo "# not a comment {v}" # a comment {v}
            echo "$(( {n} + 1 ))"
            """
        for v in hostile {
            let command = try Template.shellCommand(script, ["v": v, "n": "41"])
            XCTAssertFalse(command.script.contains("touch"), "no value is written into the script")
            let printed = try printed(command)
            let inner = v.hasSuffix("\n") ? String(v.dropLast()) : v  // $( ) drops trailing newlines
            XCTAssertEqual(printed, "\(v)|in single \(v) quotes|in double \(v) quotes|\(inner)|\(inner)|here \(v)\nhere too \(v)\n# not a comment \(v)\n42\n",
                           "value \(v.debugDescription) as \(command.script)")
            XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/x"), "ran \(v)")
        }
        // Where the shell expands nothing, a placeholder is refused (at validation, too).
        XCTAssertThrowsError(try Template.shellCommand("cat <<'EOF'\n{v}\nEOF", ["v": "1"]))
        XCTAssertThrowsError(try Template.shellCommand("cat <<\"END\"\n{v}\nEND", ["v": "1"]))
        XCTAssertNoThrow(try Template.shellCommand("cat <<'EOF'\nliteral\nEOF\necho {v}", ["v": "1"]))
        XCTAssertThrowsError(try Template.shellCommand("python3 - <<'EOF'\nopen('{inputs.data}')\nEOF", ["inputs.data": "x"])) {
            XCTAssertTrue("\($0)".contains("os.environ[\"HAPS_INPUT_DATA\"]"), "\($0)")
        }
        XCTAssertThrowsError(try Template.shellCommand("printf %s \\{v}", ["v": "1"]), "a backslash before a placeholder")
        // bash's here-string (<<<) starts no here-document; nested parentheses in $(( )).
        XCTAssertEqual(try Template.shellCommand("read x <<< \"$HOME\"; printf '[%s]' '{v}' {v}", ["v": "a"]).script,
                       #"read x <<< "$HOME"; printf '[%s]' ''"${HAPS_V_1}"'' "${HAPS_V_1}""#)
        XCTAssertEqual(try printed(Template.shellCommand("printf '%s|' \"$(echo $((2*(1+1))) {v})\"", ["v": "a  b"])), "4 a  b|")
        XCTAssertEqual(Template.shellQuoted("a-b_c.d/e:f=1,2@%+"), "a-b_c.d/e:f=1,2@%+")
        XCTAssertEqual(Template.shellQuoted("it's"), #"'it'"'"'s'"#)
        XCTAssertEqual(try Template.render("{v}", ["v": "a b"]), "a b", "outside a shell nothing is quoted")
    }

    func testTextFilesAreUTF8AndLinesEndAsInPython() throws {
        XCTAssertEqual(FileIO.lines("a\r\nb\rc\nd\n"), ["a", "b", "c", "d"])
        XCTAssertEqual(FileIO.lines("a\n\nb"), ["a", "", "b"])
        XCTAssertEqual(FileIO.lines(""), [])
        let dir = try makeTempDir(self)
        try FileIO.writeAtomically([0x61, 0x0A, 0x62, 0xC3, 0xA9, 0x0A, 0x63, 0xC3, 0x28, 0x0A], to: dir + "/t")
        XCTAssertThrowsError(try FileIO.readString(dir + "/t")) { e in
            XCTAssertEqual("\(e)", "\(dir)/t:3: invalid UTF-8 (byte 0xc3 at byte 2 of the line); the file must be UTF-8 text")
        }
        XCTAssertEqual(try FileIO.read("/proc/self/stat").isEmpty, false, "files that report no size are read to their end")
    }

    func testFileLockExcludesOtherHolders() throws {
        let dir = try makeTempDir(self)
        let a = try FileLock(path: dir + "/l")
        // flock locks belong to open file descriptions, so a second open in this process conflicts too.
        XCTAssertNil(try FileLock.tryLock(path: dir + "/l"))
        a.unlock()
        XCTAssertNotNil(try FileLock.tryLock(path: dir + "/l"))
    }
}

final class FormatTests: XCTestCase {
    func testFixedPointMatchesPrintf() {
        for (x, d) in [(1.25, 1), (0.0, 2), (-0.004, 2), (12.3456, 2), (1e6 + 0.5, 0), (0.05, 1), (99.999, 2), (-3.14159, 3)] {
            XCTAssertEqual(Format.fixed(x, d), String(format: "%.\(d)f", x), "\(x) \(d)")
        }
    }

    func testTimestamps() {
        let d = Date(timeIntervalSince1970: 1_795_844_598) // 2026-11-28T05:43:18Z
        XCTAssertEqual(Format.iso8601(d), "2026-11-28T05:43:18Z")
        XCTAssertEqual(Format.compactTimestamp(d), "20261128T054318")
        XCTAssertEqual(Format.duration(42.4), "42s")
        XCTAssertEqual(Format.duration(187), "3m07s")
        XCTAssertEqual(Format.duration(7500), "2h05m")
    }
}

final class SubprocessTests: XCTestCase {
    func testRunsInTheGivenDirectoryWithTheGivenEnvironment() throws {
        let dir = try makeTempDir(self)
        let r = try Subprocess.run(arguments: ["/bin/sh", "-c", "pwd; echo $FOO; exit 4"], environment: ["FOO": "bar"],
                                   directory: dir, logPath: dir + "/log", cancellation: CancellationToken())
        XCTAssertEqual(r.exitCode, 4)
        XCTAssertNil(r.signal)
        XCTAssertEqual(try read(dir + "/log"), "\(URL(fileURLWithPath: dir).resolvingSymlinksInPath().path)\nbar\n")
    }

    func testCancellationStopsTheWholeProcessGroup() throws {
        let dir = try makeTempDir(self)
        let token = CancellationToken()
        DispatchQueue.global().asyncAfter(deadline: .now() + 0.3) { token.cancel() }
        let t0 = Date()
        let r = try Subprocess.run(arguments: ["/bin/sh", "-c", "sleep 30 & sleep 30; wait"], environment: [:], directory: dir,
                                   logPath: dir + "/log", cancellation: token)
        XCTAssertLessThan(Date().timeIntervalSince(t0), 5)
        XCTAssertEqual(r.signal, SIGTERM)
    }
}

final class SHA256Tests: XCTestCase {
    func testFIPSVectors() {
        XCTAssertEqual(Digest.of(string: "").hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        XCTAssertEqual(Digest.of(string: "abc").hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        XCTAssertEqual(Digest.of(string: "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq").hex,
                       "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
        XCTAssertEqual(Digest.of([UInt8](repeating: 0x61, count: 1_000_000)).hex,
                       "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
    }

    func testStreamingInAnyChunkingMatchesOneShot() throws {
        let bytes = (0..<10_000).map { UInt8(truncatingIfNeeded: ($0 &* 7919) >> 3) }
        let whole = Digest.of(bytes)
        for chunk in [1, 3, 63, 64, 65, 127, 1000] {
            var b = DigestBuilder()
            var i = 0
            while i < bytes.count { b.update(Array(bytes[i..<min(i + chunk, bytes.count)])); i += chunk }
            XCTAssertEqual(b.finalize(), whole, "chunk \(chunk)")
        }
        let py = try Python.output("import hashlib; print(hashlib.sha256(bytes(((i*7919)>>3)&255 for i in range(10000))).hexdigest())")
        XCTAssertEqual(whole.hex, py.trimmingCharacters(in: .newlines))
    }
}
