import Foundation
import XCTest
@testable import Pipeline
@testable import Stages
import TestSupport

final class HotpotQATests: XCTestCase {
    let shared = Fixtures.hotpotQA

    func testLoadsTheSharedSplits() throws {
        let counts = try ["train", "valid", "test"].map { try HotpotQA.load("\(shared)/\($0).jsonl").count }
        XCTAssertEqual(counts, [300, 100, 100])
        let valid = try HotpotQA.load("\(shared)/valid.jsonl")
        let q = valid[0]
        XCTAssertEqual(q.id, "5a7f113d55429934daa2fcbe")
        XCTAssertEqual(q.answer, "Reginald Martinez \"Reggie\" Jackson")
        XCTAssertEqual(q.goldTitles, ["Greatest Sports Legends", "Reggie Jackson"])
        XCTAssertEqual(q.context.count, 10)
        XCTAssertEqual(q.type, "bridge")
        // Every gold title is one of the question's paragraphs.
        for q in valid { XCTAssertTrue(q.goldTitles.allSatisfy { t in q.context.contains { $0.title == t } }, q.id) }
    }

    func testParagraphStringsMatchThePythonJoin() throws {
        let expected = try Python.output("""
            import json, sys
            for line in list(open(sys.argv[1]))[:20]:
                q = json.loads(line)
                for title, sentences in q["context"]: print(json.dumps("".join(sentences)))
            """, arguments: ["\(shared)/test.jsonl"]).split(separator: "\n")
        let ours = try HotpotQA.load("\(shared)/test.jsonl").prefix(20).flatMap(\.paragraphs)
        XCTAssertEqual(ours.count, expected.count)
        for (a, b) in zip(ours, expected) { XCTAssertEqual(a, try JSONParser.parse(String(b)).stringValue) }
    }

    func testTheOfficialJSONArrayLayoutLoadsTheSame() throws {
        let jsonl = try HotpotQA.load("\(shared)/valid.jsonl")
        let array = "[\n" + jsonl.prefix(5).map { $0.json.pretty }.joined(separator: ",\n") + "\n]\n"
        XCTAssertEqual(try HotpotQA.parse(array, file: "dev.json"), Array(jsonl.prefix(5)))
        // Round trip through our own JSON Lines output.
        XCTAssertEqual(try HotpotQA.parse(HotpotQA.jsonLines(jsonl), file: "x.jsonl"), jsonl)
    }

    func testEveryBadQuestionIsReportedWithItsLine() {
        let good = #"{"_id": "a", "answer": "x", "question": "q?", "supporting_facts": [["T", 0]], "context": [["T", ["s1", " s2"]]], "type": "bridge", "level": "easy"}"#
        let text = [
            good,
            #"{"_id": "b", "question": "q?", "supporting_facts": [], "context": []}"#,
            #"{"_id": "c", "answer": 3, "question": "q?", "supporting_facts": [], "context": []}"#,
            #"{"_id": "d", "answer": "x", "question": "q?", "supporting_facts": [["T"]], "context": []}"#,
            #"{"_id": "e", "answer": "x", "question": "q?", "supporting_facts": [], "context": [["T", "not a list"]]}"#,
            good,
        ].joined(separator: "\n")
        XCTAssertThrowsError(try HotpotQA.parse(text, file: "bad.jsonl")) { e in
            XCTAssertEqual("\(e)", """
                bad.jsonl: 5 invalid questions:
                  bad.jsonl:2: missing field 'answer'
                  bad.jsonl:3: 'answer' must be a string, found a number
                  bad.jsonl:4: 'supporting_facts[0]' must be [title, sentence index]
                  bad.jsonl:5: 'context[0]' must be [title, [sentence, ...]] of strings
                  bad.jsonl:6: '_id' a repeats the question at line 1
                """)
        }
        XCTAssertThrowsError(try HotpotQA.parse(good + "\n{\"_id\": ", file: "torn.jsonl")) { e in
            XCTAssertEqual("\(e)", "torn.jsonl:2: invalid JSON at column 9: unexpected end of input, expected a value")
        }
        XCTAssertNoThrow(try HotpotQA.parse(#"{"_id": "t", "question": "q?", "context": []}"#, file: "test.jsonl", requireAnswers: false))
    }
}
