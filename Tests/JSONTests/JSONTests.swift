import XCTest
@testable import JSON
import TestSupport

final class JSONTests: XCTestCase {
    func testParsesAllValueKindsAndRecordsLocations() throws {
        let doc = try JSONParser.parseDocument("{\n  \"a\": [1, -2.5e3, true, null],\n  \"b\": {\"c\": \"x\\u00e9\\n\"}\n}")
        XCTAssertEqual(doc.value["a"], [1, -2500.0, true, nil])
        XCTAssertEqual(doc.value["b"]?["c"], "xé\n")
        XCTAssertEqual(doc.locations[JSONPath.root.appending("a")], SourceLocation(line: 2, column: 3), "members are located at their key")
        XCTAssertEqual(doc.locations[JSONPath.root.appending("a").appending(index: 2)], SourceLocation(line: 2, column: 20))
        XCTAssertEqual(doc.locations[JSONPath.root.appending("b").appending("c")], SourceLocation(line: 3, column: 9))
    }

    func testSurrogatePairsAndUnicodeColumns() throws {
        XCTAssertEqual(try JSONParser.parse("\"\\ud83d\\ude00\""), "😀")
        // Columns count characters, not bytes.
        XCTAssertThrowsError(try JSONParser.parse("[\"ééé\" 1]")) { e in
            XCTAssertEqual((e as! JSONParser.SyntaxError).description, "1:8: unexpected '1', expected ',' or ']'")
        }
    }

    func testSyntaxErrorsCarryLineAndColumn() {
        let cases: [(String, String)] = [
            ("{\"a\": 1,}", "1:9: trailing ',' before '}'"),
            ("{\n  \"a\" 1\n}", "2:7: unexpected '1', expected ':' after member name"),
            ("{\"a\": tru}", "1:7: unexpected 't', expected a value"),
            ("[1, 2", "1:6: unexpected end of input, expected ',' or ']'"),
            ("{\"a\": \"x\n\"}", "1:9: unterminated string (newline inside a string)"),
            ("{\"a\": 01}", "1:8: invalid number (leading zero)"),
            ("{} x", "1:4: unexpected 'x' after the end of the document"),
            ("{a: 1}", "1:2: unexpected 'a', expected a member name in double quotes"),
            ("", "1:1: unexpected end of input, expected a value"),
        ]
        for (text, message) in cases {
            XCTAssertThrowsError(try JSONParser.parse(text), text) { e in
                XCTAssertEqual((e as? JSONParser.SyntaxError)?.description, message, text)
            }
        }
    }

    /// What a double cannot hold is an error naming where, never a silent change (Python keeps
    /// big integers exact, so rounding one would change the data).
    func testNumbersADoubleCannotHoldAreErrors() throws {
        XCTAssertEqual(try JSONParser.parse("9007199254740992"), .number(9_007_199_254_740_992))
        XCTAssertEqual(try JSONParser.parse("1152921504606846976"), .number(1_152_921_504_606_846_976), "2^60 is exact")
        XCTAssertEqual(try JSONParser.parse("1e300"), .number(1e300))
        for (text, message) in [("9007199254740993", "integer 9007199254740993 cannot be held exactly"),
                                ("123456789012345678901234567890", "integer 123456789012345678901234567890 cannot be held exactly"),
                                ("-1e400", "number -1e400 is out of range")] {
            XCTAssertThrowsError(try JSONParser.parse("{\"a\": [1, \(text)]}")) { e in
                let e = e as! JSONParser.SyntaxError
                XCTAssertTrue(e.message.hasPrefix(message), e.message)
                XCTAssertEqual(e.location.column, 11, "at the number's first character")
                XCTAssertTrue(e.isNumberOutOfRange)
            }
        }
        XCTAssertFalse((try? JSONParser.parse("[1,]")) != nil)
    }

    func testCanonicalFormIsSortedAndStable() throws {
        let v = try JSONParser.parse(#"{"b": 1.0, "a": [0.1, 1e21, -0.0, "q\"\u0001"], "é": false, "Z": null}"#)
        XCTAssertEqual(v.canonical, #"{"Z":null,"a":[0.1,1e+21,0,"q\"\u0001"],"b":1,"é":false}"#)
        XCTAssertEqual(try JSONParser.parse(v.canonical), v)
        // Member order does not change equality or the canonical form.
        XCTAssertEqual(try JSONParser.parse(#"{"x":1,"y":2}"#), try JSONParser.parse(#"{"y":2,"x":1}"#))
    }

    func testCanonicalMatchesPythonSortedDumpsForPlainValues() throws {
        let text = #"{"z": [1, 2, {"b": "x", "a": 3}], "k": "v", "n": 12345}"#
        let py = try Python.output("import json,sys; print(json.dumps(json.loads(sys.argv[1]), sort_keys=True, separators=(',',':')))", arguments: [text])
        XCTAssertEqual(try JSONParser.parse(text).canonical, py.trimmingCharacters(in: .newlines))
    }

    func testSettingNestedMembers() throws {
        let v = try JSONParser.parse(#"{"stages": {"a": {"params": {"x": 1}}}}"#)
        let w = v.setting(["stages", "a", "params", "y", "z"], to: 2)
        XCTAssertEqual(w.canonical, #"{"stages":{"a":{"params":{"x":1,"y":{"z":2}}}}}"#)
    }

    func testJSONPathRendering() {
        XCTAssertEqual(JSONPath.root.appending("stages").appending("a b").appending(index: 3).description, #"$.stages["a b"][3]"#)
    }
}
