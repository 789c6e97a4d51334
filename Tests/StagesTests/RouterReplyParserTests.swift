import Foundation
import XCTest
@testable import Pipeline
@testable import Stages

/// The router's reply parser is the reference's `parse_router_output` (joint_rl/utils.py):
/// the text from the last `{` to the last `}`, Python's `json.loads`, `int()` of each role;
/// any failure is action 0 (nil from `parsed`, counted as unparsed).
final class RouterReplyParserTests: XCTestCase {
    let space = ActionSpace()

    func parsed(_ reply: String) -> Int? { DecoderRouter.parsed(reply, space: space) }

    func testTheReferenceEdgeCases() {
        XCTAssertEqual(parsed(#"{"teacher": 1,"student": 0}"#), 2)
        XCTAssertNil(parsed(#"{"teacher":1,"student":0}}"#), "json.loads of the slice to the last } raises Extra data")
        XCTAssertNil(parsed(#"{"teacher":1,"student":0} {"#), "the last { comes after the last }: an empty slice")
        XCTAssertEqual(parsed(#"{"teacher":true,"student":1.0}"#), 3, "int(True) and int(1.0) are 1")
        XCTAssertEqual(parsed(#"{"teacher":1.7,"student":-0.5}"#), 2, "int() truncates toward zero")
        XCTAssertEqual(parsed(#"{"teacher":"1","student":" 0 "}"#), 2, "int(\"1\"), and int() strips whitespace")
        XCTAssertNil(parsed(#"{"teacher":"1.0","student":0}"#), "int(\"1.0\") raises")
        XCTAssertEqual(parsed(#"The answer is {"teacher": 0, "student": 1} as asked."#), 1, "text before and after")
        XCTAssertEqual(parsed(#"first {"teacher": 0, "student": 0} then {"teacher": 1, "student": 1}"#), 3, "the last object")
        XCTAssertNil(parsed(#"{"teacher": 1, "student": 1} then {"teacher": 0"#), "from the last { to the last }: not JSON")
        XCTAssertNil(parsed(#"{"teacher": 1, "student": 0, "why": {"a": 1}}"#), "nested braces: the slice starts at the inner {")
        XCTAssertEqual(parsed(#"{"why": "}", "teacher": 1, "student": 1}"#), 3, "a } inside a string before the last one")
        XCTAssertEqual(parsed("  {\n  \"teacher\" :\t1 ,\r\n\"student\":0\n}  \n"), 2, "JSON whitespace inside, anything outside")
        XCTAssertNil(parsed("{\"teacher\":\u{A0}1,\"student\":0}"), "a no-break space is not JSON whitespace")
        XCTAssertEqual(parsed(#"{"teacher": 0, "teacher": 1, "student": 1}"#), 3, "a repeated key: the last wins")
        XCTAssertNil(parsed(#"{"teacher": NaN, "student": 0}"#), "json.loads reads NaN; int(nan) raises")
        XCTAssertNil(parsed(#"{"teacher": 2, "student": 0}"#), "no candidate 2")
        XCTAssertNil(parsed(#"{"teacher": -1, "student": 0}"#), "candidate_pair is a dict: no -1 either")
        XCTAssertNil(parsed(#"{"teacher": 1}"#), "a role missing")
        XCTAssertNil(parsed("no json here"))
        XCTAssertNil(parsed(""))
        XCTAssertNil(parsed("}"), "txt[-1:1] is \"}\"")
        XCTAssertNil(parsed(#"{"teacher": 1, "student": 1"#), "unclosed")
        XCTAssertNil(parsed(#"{'teacher': 1, 'student': 1}"#), "single quotes are not JSON")
        XCTAssertEqual(parsed("{\"teacher\": 1,\n\"student\": 1}"), 3, "a newline inside is whitespace")
    }

    /// K candidates and other role names: each role read as the reference reads teacher and student.
    func testOtherSpaces() {
        let three = ActionSpace(candidates: 3, roles: ["planner", "solver", "checker"])
        XCTAssertEqual(DecoderRouter.parsed(#"{"planner": 2, "solver": "1", "checker": true}"#, space: three), three.index(of: [2, 1, 1]))
        XCTAssertNil(DecoderRouter.parsed(#"{"planner": 3, "solver": 0, "checker": 0}"#, space: three))
        XCTAssertNil(DecoderRouter.parsed(#"{"teacher": 0, "student": 0}"#, space: three))
    }

    func testPythonLoadsAndInt() throws {
        XCTAssertEqual(try PythonJSONLoads.loads(#"{"a": [1, 2.5, "x", null, true, -Infinity]}"#),
                       .dict(["a": .list([.int(1), .float(2.5), .string("x"), .none, .bool(true), .float(-.infinity)])]))
        XCTAssertEqual(try PythonJSONLoads.loads(#""\ud83d\ude00\u0041""#), .string("😀A"), "a surrogate pair is joined")
        XCTAssertEqual(try PythonJSONLoads.loads(#""\ud800""#), .string(nil), "a lone surrogate is kept (Python) and unreadable here")
        XCTAssertEqual(try PythonJSONLoads.loads("123456789012345678901234567890"), .int(nil))
        XCTAssertEqual(try PythonJSONLoads.loads("1e400"), .float(.infinity))
        for bad in ["{\"a\":1,}", "01", "1.", ".5", "[1 2]", "\"\u{1F}\"", "\"\\x\"", "{1: 2}", "nul", "-", "1e5x", "[" + String(repeating: "[", count: 1000)] {
            XCTAssertThrowsError(try PythonJSONLoads.loads(bad), bad)
        }
        let deep = String(repeating: "[", count: 900) + String(repeating: "]", count: 900)
        XCTAssertNoThrow(try PythonJSONLoads.loads(deep))
        let ints: [(String, Int?)] = [("1_0", 10), ("\u{661}", 1), ("\u{FF11}", 1), ("+1", 1), ("-0", 0), ("\u{A0}1\u{3000}", 1), ("\u{0B}1", 1),
                                      ("\u{1C}1", nil), ("_1", nil), ("1_", nil), ("1__0", nil), ("1.0", nil), ("", nil), ("0x1", nil),
                                      ("\u{B2}", nil), (String(repeating: "0", count: 4300) + "1", nil), ("007", 7)]
        for (s, n) in ints { XCTAssertEqual(PythonJSONLoads.int(.string(s)), n, s.debugDescription) }
        XCTAssertNil(PythonJSONLoads.int(.float(.nan)))
        XCTAssertNil(PythonJSONLoads.int(.float(1e300)), "too large for any candidate")
        XCTAssertEqual(PythonJSONLoads.int(.float(-1.9)), -1)
        XCTAssertNil(PythonJSONLoads.int(.none))
    }

    /// The replies of the tests above and more, against the reference's own function run by
    /// python3: the same action (sft.py's `tuple2index.get((t, s), 0)`), and nil exactly where
    /// the reference fell back or named no pair of candidates.
    func testAgainstTheReferenceInPython() throws {
        let replies = [
            #"{"teacher": 1,"student": 0}"#, #"{"teacher":1,"student":0}}"#, #"{"teacher":1,"student":0} {"#,
            #"{"teacher":true,"student":1.0}"#, #"{"teacher":false,"student":0.99}"#, #"{"teacher":1.7,"student":-0.5}"#,
            #"{"teacher":"1","student":" 0 "}"#, #"{"teacher":"1.0","student":0}"#, #"{"teacher":"+1","student":"-0"}"#,
            #"{"teacher":"1_0","student":0}"#, "{\"teacher\":\"\u{661}\",\"student\":\"\u{FF10}\"}", "{\"teacher\":\"\u{3000}1\u{85}\",\"student\":0}",
            #"{"teacher":"\u000b1","student":0}"#, #"{"teacher":"\u001c1","student":0}"#, #"{"teacher":"\u0031","student":"\u0030"}"#,
            #"{"teacher":NaN,"student":0}"#, #"{"teacher":Infinity,"student":0}"#, #"{"teacher":-Infinity,"student":0}"#,
            #"{"teacher":1e-400,"student":1E0}"#, #"{"teacher":1e400,"student":0}"#, #"{"teacher":-0,"student":-0.0}"#,
            #"{"teacher":01,"student":0}"#, #"{"teacher":1.,"student":0}"#, #"{"teacher":.5,"student":0}"#, #"{"teacher":1e,"student":0}"#,
            #"{"teacher":null,"student":0}"#, #"{"teacher":[1],"student":0}"#, #"{"teacher":{},"student":0}"#, #"{"teacher":"","student":0}"#,
            #"{"teacher":1,"student":0,}"#, #"{"teacher":0,"teacher":1,"student":1}"#, #"{"\ud800":1,"teacher":1,"student":0}"#,
            #"{"teacher":"\ud800","student":0}"#, #"{"te\u0061cher":1,"student":1}"#, #"{"teacher ":1,"student":1}"#, #"{"Teacher":1,"student":1}"#,
            "The answer is {\"teacher\": 0, \"student\": 1} as asked.", #"a {"teacher": 0, "student": 0} b {"teacher": 1, "student": 1} c"#,
            #"{"teacher": 1, "student": 1} then {"teacher": 0"#, #"{"teacher": 1, "student": 0, "why": {"a": 1}}"#,
            #"{"why": "}", "teacher": 1, "student": 1}"#, #"{"why": "{", "teacher": 1, "student": 1}"#,
            "  {\n  \"teacher\" :\t1 ,\r\n\"student\":0\n}  \n", "{\"teacher\":\u{A0}1,\"student\":0}", "{\"teacher\":1,\"student\":0\u{0B}}",
            "{\"teacher\":\"a\u{1F}\",\"student\":0}", "{\"teacher\":\"\u{7F}\",\"student\":0}", #"{"teacher": 2, "student": 0}"#,
            #"{"teacher": -1, "student": 0}"#, #"{"teacher": 1}"#, "no json here", "", "}", "{", "}{", "{}", #"{"teacher": 1, "student": 1"#,
            #"{'teacher': 1, 'student': 1}"#, "{\"teacher\": 1,\n\"student\": 1}", #"{"teacher": 1, "student": 1}}}"#,
            #"{"teacher": 9999999999999999999999, "student": 0}"#, #"{"teacher": 1, "student": "١"}"#, "{\"teacher\": \"1\u{301}\", \"student\": 0}",
            "{\u{301}\"teacher\": 1, \"student\": 0}", "\u{1F600}{\"teacher\": 1, \"student\": 0}\u{1F600}", #"{"teacher":True,"student":1}"#,
            #"{"teacher": "\t1\n", "student": "0_0"}"#, #"{"teacher": "1 1", "student": 0}"#, #"{"teacher": 1.0e0, "student": 1E-0}"#,
        ]
        let python = try runPython(replies)
        guard let python else { throw XCTSkip("python3 is not installed: the reference's parser cannot be run for comparison") }
        XCTAssertEqual(python.count, replies.count)
        for (reply, ref) in zip(replies, python) {
            XCTAssertEqual(DecoderRouter.parse(reply, space: space), ref.action, "action of \(reply.debugDescription)")
            XCTAssertEqual(DecoderRouter.parsed(reply, space: space) == nil, ref.unparsed, "parsed or not: \(reply.debugDescription)")
        }
    }

    /// The reference's `parse_router_output`, verbatim, and sft.py's scoring of its pair; a
    /// fallback is seen through the reference's own `print`.
    static let referenceScript = #"""
    import json, sys
    from typing import Tuple
    failed = []
    def print(*args):
        failed.append(True)

    def parse_router_output(txt: str) -> Tuple[int,int]:
        l, r = txt.rfind("{"), txt.rfind("}") + 1
        try:
            obj = json.loads(txt[l:r])
            return int(obj["teacher"]), int(obj["student"])
        except Exception:
            print("[ERROR!] parse_router_output failed:", txt)
            return 0, 0

    tuple2index = {(0, 0): 0, (0, 1): 1, (1, 0): 2, (1, 1): 3}
    out = []
    for reply in json.load(open(sys.argv[1], encoding="utf-8")):
        failed.clear()
        t, s = parse_router_output(reply)
        out.append({"action": tuple2index.get((t, s), 0), "unparsed": bool(failed) or (t, s) not in tuple2index})
    open(sys.argv[2], "w", encoding="utf-8").write(json.dumps(out))
    """#

    /// Each reply's (action, unparsed) by the reference's code, or nil without python3.
    func runPython(_ replies: [String]) throws -> [(action: Int, unparsed: Bool)]? {
        let dir = try makeTempDir(self, "router-replies")
        try JSONValue.array(replies.map(JSONValue.string)).canonical.write(toFile: dir + "/in.json", atomically: true, encoding: .utf8)
        try RouterReplyParserTests.referenceScript.write(toFile: dir + "/ref.py", atomically: true, encoding: .utf8)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["python3", dir + "/ref.py", dir + "/in.json", dir + "/out.json"]
        let err = Pipe()
        p.standardError = err
        try p.run()
        p.waitUntilExit()
        let stderr = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        if p.terminationStatus == 127 { return nil }  // env: python3 not found
        guard p.terminationStatus == 0 else { XCTFail("python3 failed: \(stderr)"); return [] }
        let out = try JSONParser.parse(try String(contentsOfFile: dir + "/out.json", encoding: .utf8))
        return (out.arrayValue ?? []).map { ($0["action"]?.intValue ?? -1, $0["unparsed"]?.boolValue ?? false) }
    }
}
