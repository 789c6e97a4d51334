import Foundation
import XCTest
import TestSupport
@testable import Stages

/// `CSVReader` against Python's csv module on the cases RFC 4180 allows: quoted commas, doubled
/// quotes, line breaks inside quotes, CRLF, a byte-order mark, empty fields, a last line without
/// its end; and each record's first line.
final class CSVReaderTests: XCTestCase {
    func testRecordsMatchPythonsCSVModule() throws {
        let text = "\u{FEFF}a,b,c\r\n1,\"x, y\",\"he said \"\"hi\"\"\"\r\n2,\"two\nlines\",\r\n\r\n3,,\"\"\n4,last,\"\u{00e9}t\u{00e9}\""
        let ours = try CSVReader.records(text, file: "t.csv")
        let python = try Python.run("""
            import csv, io, json, sys
            text = sys.stdin.read()
            if text.startswith("\\ufeff"): text = text[1:]
            print(json.dumps([r for r in csv.reader(io.StringIO(text, newline="")) if r]))
            """, stdin: Data(text.utf8))
        let expected = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(python.stdout.utf8)) as? [[String]])
        XCTAssertEqual(ours.map(\.fields), expected)
        XCTAssertEqual(ours.map(\.line), [1, 2, 3, 6, 7], "each record's first line (the blank line 5 is no record)")
        XCTAssertThrowsError(try CSVReader.records("a,b\n1,\"open\n2,3\n", file: "o.csv")) { e in
            XCTAssertEqual("\(e)", "o.csv:2: a quoted field is never closed (a '\"' is missing)")
        }
    }
}
