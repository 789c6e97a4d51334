import XCTest
@testable import Pipeline

/// Every validation error, with its exact text (file:line:col: $.path: message).
final class SpecValidationTests: XCTestCase {
    var dir = ""

    override func setUpWithError() throws {
        dir = try makeTempDir(self)
        try write("hello world", to: dir + "/data.txt")
    }

    func errors(_ json: String, overrides: [String] = []) -> [String] {
        do {
            _ = try load(json, dir: dir, overrides: overrides)
            return []
        } catch let e as SpecError {
            return e.lines
        } catch {
            return ["unexpected: \(error)"]
        }
    }

    func testSyntaxErrorHasLineAndColumn() {
        XCTAssertEqual(errors("{\n  \"name\": \"p\",\n  \"stages\": {,}\n}"),
                       ["spec.json:3:14: invalid JSON: unexpected ',', expected a member name in double quotes"])
    }

    func testTopLevelProblems() {
        XCTAssertEqual(errors("[]"), ["spec.json:1:1: $: expected an object with 'name' and 'stages', found an array"])
        XCTAssertEqual(errors(#"{"name": "p"}"#), ["spec.json:1:1: $: missing field 'stages'"])
        XCTAssertEqual(errors(#"{"name": "p", "stagse": {}, "stages": {"a": {"type": "text-source", "params": {"text": "x"}}}}"#),
                       ["spec.json:1:15: $.stagse: unknown field 'stagse'; did you mean 'stages'?"])
        XCTAssertEqual(errors(#"{"name": "a b", "stages": {"a": {"type": "text-source", "params": {"text": "x"}}}}"#),
                       ["spec.json:1:2: $.name: 'a b' is not a valid name (use letters, digits, '_' and '-')"])
        XCTAssertEqual(errors(#"{"name": "p", "seed": "x", "stages": {"a": {"type": "text-source", "params": {"text": "x"}}}}"#),
                       ["spec.json:1:15: $.seed: expected an integer, found a string"])
    }

    func testUnknownStageTypeSuggestsTheNearest() {
        XCTAssertEqual(errors(#"{"name": "p", "stages": {"a": {"type": "comand", "params": {}}}}"#),
                       ["spec.json:1:32: $.stages.a.type: unknown stage type 'comand'; did you mean 'command'?"])
        XCTAssertEqual(errors(#"{"name": "p", "stages": {"a": {"type": "zzzzzz"}}}"#),
                       ["spec.json:1:32: $.stages.a.type: unknown stage type 'zzzzzz'; known types: command, slow-items, text-source, upper, word-count"])
        XCTAssertEqual(errors(#"{"name": "p", "stages": {"a": {"params": {}}}}"#),
                       ["spec.json:1:26: $.stages.a: missing field 'type'"])
    }

    func testUnknownAndMistypedParameters() {
        XCTAssertEqual(errors(#"{"name": "p", "stages": {"a": {"type": "text-source", "params": {"txet": "x"}}}}"#),
                       ["spec.json:1:66: $.stages.a.params.txet: unknown parameter 'txet' for stage type 'text-source'; did you mean 'text'?",
                        "spec.json:1:55: $.stages.a.params: missing parameter 'text'"])
        XCTAssertEqual(errors(#"{"name": "p", "stages": {"a": {"type": "text-source", "params": {"text": 3}}}}"#),
                       ["spec.json:1:66: $.stages.a.params.text: expected a string, found 3"])
        XCTAssertEqual(errors(#"{"name": "p", "stages": {"a": {"type": "text-source"}}}"#),
                       ["spec.json:1:26: $.stages.a.params: missing parameter 'text'"])
        XCTAssertEqual(errors(#"{"name": "p", "stages": {"a": {"type": "text-source", "params": {"text": "x"}, "parms": 1}}}"#),
                       ["spec.json:1:80: $.stages.a.parms: unknown field 'parms'; did you mean 'params'?"])
    }

    func testInputProblems() {
        let base = #"{"name": "p", "stages": {"src": {"type": "text-source", "params": {"text": "x"}}, "up": {"type": "upper", "inputs": INPUTS}}}"#
        func with(_ inputs: String) -> String { base.replacingOccurrences(of: "INPUTS", with: inputs) }
        XCTAssertEqual(errors(with(#"{"txt": "src"}"#)), [
            "spec.json:1:118: $.stages.up.inputs.txt: unknown input 'txt' for stage type 'upper'; did you mean 'text'?",
            "spec.json:1:107: $.stages.up.inputs: missing input 'text' (kind 'text')",
        ])
        XCTAssertEqual(errors(with(#"{"text": "scr"}"#)),
                       ["spec.json:1:118: $.stages.up.inputs.text: 'scr' is neither a stage of this pipeline nor an existing file; did you mean stage 'src'?"])
        XCTAssertEqual(errors(with(#"{"text": "data.txt"}"#)), [], "an existing file is an input")
        XCTAssertEqual(errors(with(#"{"text": 3}"#)),
                       ["spec.json:1:118: $.stages.up.inputs.text: expected a stage name or a file path, found a number"])
    }

    func testPortKindMismatch() {
        XCTAssertEqual(errors(#"{"name": "p", "stages": {"src": {"type": "text-source", "params": {"text": "x"}}, "wc": {"type": "word-count", "inputs": {"text": "src"}}, "up": {"type": "upper", "inputs": {"text": "wc"}}}}"#),
                       ["spec.json:1:175: $.stages.up.inputs.text: stage 'wc' outputs 'counts' but input 'text' of 'upper' expects 'text'"])
    }

    func testCyclesAreShownAsAPath() {
        XCTAssertEqual(errors(#"{"name": "p", "stages": {"a": {"type": "upper", "inputs": {"text": "c"}}, "b": {"type": "upper", "inputs": {"text": "a"}}, "c": {"type": "upper", "inputs": {"text": "b"}}}}"#),
                       ["spec.json:1:15: $.stages: dependency cycle: a -> b -> c -> a"])
        XCTAssertEqual(errors(#"{"name": "p", "stages": {"a": {"type": "upper", "inputs": {"text": "a"}}}}"#),
                       ["spec.json:1:60: $.stages.a.inputs.text: stage 'a' cannot take its own output as input"])
    }

    func testRepeatedNamesAreReported() {
        XCTAssertEqual(errors(#"{"name": "p", "stages": {"a": {"type": "text-source", "params": {"text": "x"}}, "a": {"type": "text-source", "params": {"text": "y", "text": "z"}}}}"#), [
            "spec.json:1:81: $.stages.a: 'a' appears more than once in this object",
            "spec.json:1:134: $.stages.a.params.text: 'text' appears more than once in this object",
        ])
    }

    /// Any damage to a spec gives errors, never a crash: seeded random edits of a valid spec
    /// (delete, duplicate or swap a character, or copy a line elsewhere).
    func testDamagedSpecsNeverCrashTheValidator() {
        let valid = #"{"name": "p", "pools": {"gpu": 1}, "stages": {"src": {"type": "text-source", "params": {"text": "x"}}, "up": {"type": "upper", "inputs": {"text": "src"}, "pool": "gpu"}, "wc": {"type": "word-count", "inputs": {"text": "up"}}}}"#
        XCTAssertEqual(errors(valid), [])
        var rng = SeededRandom(seed: 7)
        var failures = 0
        for _ in 0..<3000 {
            var chars = Array(valid)
            let i = Int(rng.next() % UInt64(chars.count)), j = Int(rng.next() % UInt64(chars.count))
            switch rng.next() % 4 {
            case 0: chars.remove(at: i)
            case 1: chars.insert(chars[i], at: j)
            case 2: chars.swapAt(i, j)
            default: chars.insert(contentsOf: chars[min(i, j)..<max(i, j)], at: max(i, j))
            }
            let e = errors(String(chars))
            XCTAssertFalse(e.contains { $0.hasPrefix("unexpected") }, "\(e)")
            if !e.isEmpty { failures += 1 }
        }
        XCTAssertGreaterThan(failures, 1000, "most edits break the spec, and each is reported")
    }

    func testAllProblemsAreReportedAtOnce() {
        let e = errors(#"{"name": "p", "stages": {"a": {"type": "comand"}, "b": {"type": "text-source", "params": {"text": 1}}, "c": {"type": "upper", "inputs": {"text": "nope"}}}}"#)
        XCTAssertEqual(e.count, 3, "\(e)")
    }

    func testOverrides() throws {
        let json = #"{"name": "p", "stages": {"src": {"type": "text-source", "params": {"text": "x"}}}}"#
        let spec = try load(json, dir: dir, overrides: ["src.text=hello"])
        XCTAssertEqual(spec.stages["src"]!.paramsJSON["text"], "hello")
        XCTAssertEqual(try load(json, dir: dir, overrides: ["src.text=\"42\""]).stages["src"]!.paramsJSON["text"], "42")
        XCTAssertEqual(errors(json, overrides: ["scr.text=1"]),
                       ["--set 'scr.text': unknown stage 'scr'; did you mean 'src'?"])
        XCTAssertEqual(errors(json, overrides: ["src.text"]),
                       ["--set 'src.text' is not of the form stage.param=value"])
        XCTAssertEqual(errors(json, overrides: ["src.txet=1"]),
                       ["--set 'src.txet': unknown parameter 'txet' for stage type 'text-source'; did you mean 'text'?"])
    }

    /// Seeds by --set (replicates): `seed=N` is the spec's (every stage without its own),
    /// `STAGE.seed=N` that stage's alone; a seed is an integer; an unknown stage is named.
    func testSeedOverrides() throws {
        let json = #"{"name": "p", "seed": 5, "stages": {"src": {"type": "text-source", "params": {"text": "x"}}, "pinned": {"type": "text-source", "params": {"text": "y"}, "seed": 9}}}"#
        let spec = try load(json, dir: dir, overrides: ["seed=7"])
        XCTAssertEqual([spec.seed, spec.stages["src"]!.seed, spec.stages["pinned"]!.seed], [7, 7, 9])
        let one = try load(json, dir: dir, overrides: ["src.seed=3"])
        XCTAssertEqual([one.seed, one.stages["src"]!.seed, one.stages["pinned"]!.seed], [5, 3, 9])
        XCTAssertEqual(try load(json, dir: dir, overrides: ["pinned.seed=4"]).stages["pinned"]!.seed, 4)
        XCTAssertEqual(errors(json, overrides: ["src.seed=two"]), ["--set 'src.seed=two': a seed is an integer"])
        XCTAssertEqual(errors(json, overrides: ["scr.seed=2"]), ["--set 'scr.seed': unknown stage 'scr'; did you mean 'src'?"])
    }

    /// One path syntax for every stage type (issue 18): STAGE.PARAM reaches a typed stage's
    /// parameter and a command stage's own; STAGE.params.PARAM works for both; a name the stage
    /// lacks is an error naming the --set argument; a string parameter takes `true` as text;
    /// a bad value is the --set argument's problem, not the file's.
    func testOneOverrideSyntaxForEveryStageType() throws {
        let json = #"{"name": "p", "stages": {"src": {"type": "text-source", "params": {"text": "x"}}, "#
            + #""c": {"type": "command", "params": {"run": "echo {params.k}", "outputs": ["o"], "params": {"k": 1}}}}}"#
        XCTAssertEqual(try load(json, dir: dir, overrides: ["src.params.text=y"]).stages["src"]!.paramsJSON["text"], "y")
        XCTAssertEqual(try load(json, dir: dir, overrides: ["src.text=true"]).stages["src"]!.paramsJSON["text"], "true")
        for o in ["c.k=2", "c.params.k=2"] {
            XCTAssertEqual(try load(json, dir: dir, overrides: [o]).stages["c"]!.paramsJSON["params"]?["k"], 2, o)
        }
        XCTAssertEqual(try load(json, dir: dir, overrides: ["c.run=true"]).stages["c"]!.paramsJSON["run"], "true")
        XCTAssertEqual(errors(json, overrides: ["c.kk=2"]), ["--set 'c.kk': command stage 'c' has no parameter 'kk'; did you mean 'k'?"])
        XCTAssertEqual(errors(json, overrides: ["c.params.z=2"]), ["--set 'c.params.z': command stage 'c' has no parameter 'z'; did you mean 'k'?"])
        XCTAssertEqual(errors(json, overrides: ["c.outputs=3"]), ["--set 'c.outputs=3': expected an array, found 3"])
    }

    /// One pass reports everything: a bad stage type or a bad parameter value does not hide a
    /// cycle, a misspelled input or a kind mismatch elsewhere in the spec.
    func testEveryProblemOfASpecInOnePass() {
        let e = errors(#"{"name": "p", "stages": {"a": {"type": "comand"}, "b": {"type": "upper", "inputs": {"text": "c"}}, "c": {"type": "upper", "inputs": {"text": "b"}}, "d": {"type": "command", "params": {"run": "x", "outputs": "o"}}, "e": {"type": "word-count", "inputs": {"txt": "d"}}, "f": {"type": "word-count", "inputs": {"text": "d"}}}}"#)
        XCTAssertEqual(e, [
            "spec.json:1:32: $.stages.a.type: unknown stage type 'comand'; did you mean 'command'?",
            "spec.json:1:197: $.stages.d.params.outputs: expected an array, found the string \"o\"",
            "spec.json:1:254: $.stages.e.inputs.txt: unknown input 'txt' for stage type 'word-count'; did you mean 'text'?",
            "spec.json:1:243: $.stages.e.inputs: missing input 'text' (kind 'text')",
            "spec.json:1:307: $.stages.f.inputs.text: stage 'd' outputs 'files' but input 'text' of 'word-count' expects 'text'",
            "spec.json:1:15: $.stages: dependency cycle: b -> c -> b",
        ])
    }

    func testPoolsAndCPUs() {
        XCTAssertEqual(errors(#"{"name": "p", "pools": {"gpu": 1}, "stages": {"a": {"type": "text-source", "params": {"text": "x"}, "pool": "gup", "cpus": 0}}}"#), [
            "spec.json:1:101: $.stages.a.pool: unknown pool 'gup'; did you mean 'gpu'?",
            "spec.json:1:116: $.stages.a.cpus: expected a positive integer, found a number",
        ])
    }

    func testCommandStagePlaceholdersAreChecked() {
        XCTAssertEqual(errors(#"{"name": "p", "stages": {"a": {"type": "command", "params": {"run": "echo {params.lr} {outputs.modle} {bogus}", "outputs": ["model"], "params": {"rl": 1}}}}}"#), [
            "spec.json:1:62: $.stages.a.params.run: placeholder {params.lr} names an undefined parameter; did you mean 'rl'?",
            "spec.json:1:62: $.stages.a.params.run: placeholder {outputs.modle} names an undeclared output; did you mean 'model'? (declare it in 'outputs')",
            "spec.json:1:62: $.stages.a.params.run: unknown placeholder {bogus}; use {inputs.PORT}, {outputs.NAME}, {params.NAME}, {out}, {work} or {seed} (write {{ and }} for literal braces)",
        ])
    }

    func testSpecErrorSummary() {
        do {
            _ = try load(#"{"name": "p", "stages": {"a": {"type": "comand"}}}"#, dir: dir)
            XCTFail("expected an error")
        } catch {
            XCTAssertEqual("\(error)", """
                spec.json is not a valid pipeline spec (1 problem):
                  spec.json:1:32: $.stages.a.type: unknown stage type 'comand'; did you mean 'command'?
                """)
        }
    }
}
