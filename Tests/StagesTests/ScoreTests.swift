import Foundation
import XCTest
@testable import Pipeline
@testable import Stages

final class ScoreTests: XCTestCase {
    func row(_ q: String, _ action: Int?, answer: String, truth: String, f1: JSONValue = 0, teacher: String? = nil, student: String? = nil) -> String {
        var o: [String: JSONValue] = ["question": .string(q), "answer": .string(answer), "ground_truth": .string(truth), "f1": f1]
        if let action { o["action_index"] = .number(Double(action)) }
        if let teacher { o["teacher"] = .string(teacher) }
        if let student { o["student"] = .string(student) }
        return JSONValue.object(o).canonical
    }

    func testSummaryFiguresByHand() throws {
        // q1: actions score 1, 0, 0.5, 0 · q2: 0, 1, 0, 0 · q3: only actions 0 and 1 (incomplete).
        let lines = [
            row("q1", 0, answer: "Paris", truth: "Paris", f1: 1), row("q1", 1, answer: "Rome", truth: "Paris"),
            row("q1", 2, answer: "Paris France", truth: "Paris", f1: 0.6666666666666666), row("q1", 3, answer: "", truth: "Paris"),
            row("q2", 0, answer: "no", truth: "yes"), row("q2", 1, answer: "yes", truth: "yes", f1: 1),
            row("q2", 2, answer: "x", truth: "yes"), row("q2", 3, answer: "y", truth: "yes", f1: 0.5),
            row("q3", 0, answer: "a", truth: "b"), row("q3", 1, answer: "b", truth: "b", f1: 1),
            row("q2", 1, answer: "dup", truth: "yes"),
        ]
        let dir = NSTemporaryDirectory() + "score-\(UUID().uuidString)"
        try FileIO.writeAtomically(lines.joined(separator: "\n") + "\n", to: dir + "/b.jsonl")
        let t = try ScoreStage.table(baseline: dir + "/b.jsonl", space: ActionSpace(), names: nil)
        let s = t.summary
        XCTAssertEqual(s.questions, 3)
        XCTAssertEqual(s.completeQuestions, 2)
        XCTAssertEqual(s.duplicateRows, 1)
        XCTAssertEqual(s.recordedF1Disagreements, 1, "q2 action 3 recorded 0.5, recomputed 0")
        XCTAssertEqual(s.perAction.map(\.meanF1), [0.5, 0.5, 1.0 / 3.0, 0])
        XCTAssertEqual(s.bestFixedAction, 0, "ties go to the lowest action")
        XCTAssertEqual(s.oracleF1, 1.0)
        let q1: Double = (1.0 + 2.0 / 3.0) / 4, q2: Double = 1.0 / 4
        XCTAssertEqual(s.randomF1, (q1 + q2) / 2, accuracy: 1e-15)
        XCTAssertEqual(s.questionsWhereActionsDiffer, 2)
        XCTAssertEqual(t.jsonLines.split(separator: "\n").first,
                       #"{"action":0,"em":1,"f1":1,"precision":1,"question":"q1","question_index":0,"recall":1,"student":0,"teacher":0}"#)
    }

    /// The reports name each candidate as the rows do, and fall back to indices when the rows
    /// give ids or name a candidate two ways.
    func testReportsNameTheCandidatesAsTheRowsDo() throws {
        let dir = NSTemporaryDirectory() + "score-\(UUID().uuidString)"
        addTeardownBlock { try? FileManager.default.removeItem(atPath: dir) }
        let names = ["agent_a", "agent_b"]
        func table(_ rename: (Int, String) -> String) throws -> ScoreTable {
            let lines = (0..<4).map { a in row("q", a, answer: "x", truth: "x", f1: 1, teacher: rename(a, names[a / 2]), student: rename(a, names[a % 2])) }
            try FileIO.writeAtomically(lines.joined(separator: "\n") + "\n", to: dir + "/b.jsonl")
            return try ScoreStage.table(baseline: dir + "/b.jsonl", space: ActionSpace(), names: nil)
        }
        let named = try table { $1 }
        XCTAssertEqual(named.candidateNames, names)
        XCTAssertEqual(named.describe(2), "teacher agent_b, student agent_a")
        XCTAssertTrue(named.summaryText.contains("best fixed action: 0 (teacher agent_a, student agent_a)"), named.summaryText)
        XCTAssertEqual(named.summaryJSON["candidates"], .array(names.map { .string($0) }))
        XCTAssertEqual(named.summaryJSON["actions"]?.arrayValue?[1]["assignment"]?.stringValue, "teacher agent_a, student agent_b")
        let twoWays = try table { a, n in a == 3 ? n + "-v2" : n }
        XCTAssertNil(twoWays.candidateNames)
        XCTAssertEqual(twoWays.describe(2), "teacher 1, student 0")
        XCTAssertNil(try table { _, n in n == "agent_a" ? "0" : "1" }.candidateNames, "ids are not names")

        // An evaluation reads them back from the table's summary.json.
        let artifact = dir + "/table"
        try FileIO.writeAtomically(named.jsonLines, to: artifact + "/scores.jsonl")
        try FileIO.writeAtomically(named.summaryJSON.pretty, to: artifact + "/summary.json")
        XCTAssertEqual(try ScoreMatrix(directory: artifact).candidateNames, names)
    }

    /// Which role's candidate changes the outcome, and the breakdown by question type.
    func testRoleEffectsAndTheBreakdownByType() throws {
        // Actions are (teacher, student): 0 = (0, 0), 1 = (0, 1), 2 = (1, 0), 3 = (1, 1).
        // qA: only the teacher matters · qB: only the student · qC: nothing does.
        let f1 = ["qA": [1, 1, 0, 0], "qB": [0, 1, 0, 1], "qC": [1, 1, 1, 1]]
        let lines = f1.keys.sorted().flatMap { q in f1[q]!.enumerated().map { a, v in row(q, a, answer: v == 1 ? "x" : "y", truth: "x", f1: .number(Double(v))) } }
        let dir = NSTemporaryDirectory() + "score-\(UUID().uuidString)"
        addTeardownBlock { try? FileManager.default.removeItem(atPath: dir) }
        try FileIO.writeAtomically(lines.joined(separator: "\n") + "\n", to: dir + "/b.jsonl")
        try FileIO.writeAtomically(["qA": "bridge", "qB": "comparison", "qC": "bridge"].sorted { $0.key < $1.key }.map { q, t in
            #"{"_id": "\#(q)", "question": " \#(q) ", "answer": "x", "type": "\#(t)", "level": "easy", "supporting_facts": [], "context": []}"#
        }.joined(separator: "\n") + "\n", to: dir + "/q.jsonl")
        var t = try ScoreStage.table(baseline: dir + "/b.jsonl", space: ActionSpace(), names: nil)
        XCTAssertEqual(t.summary.questionsWhereRoleMatters, [1, 1], "teacher: qA; student: qB")
        t.breakDown(byType: try ScoreStage.questionTypes(dir + "/q.jsonl"))
        XCTAssertEqual(t.byType.map(\.type), ["bridge", "comparison"])
        XCTAssertEqual(t.byType[0].meanF1, [1, 1, 0.5, 0.5])
        XCTAssertEqual(t.byType[0].bestFixedAction, 0, "ties go to the lowest action")
        XCTAssertEqual(t.byType[1].bestFixedAction, 1)
        XCTAssertEqual(t.byType[1].oracleF1, 1)
        XCTAssertTrue(t.summaryText.contains("questions where the teacher's candidate alone changes the F1: 1 of 3 (33.3%)"), t.summaryText)
        XCTAssertTrue(t.summaryText.contains("  comparison     1 questions  F1 per action: 0.0000 1.0000 0.0000 1.0000  best fixed: 1 (teacher 0, student 1) 1.0000  oracle 1.0000"), t.summaryText)
        XCTAssertEqual(t.summaryJSON["by_type"]?["bridge"]?["best_fixed_f1"]?.doubleValue, 1)
        XCTAssertEqual(t.summaryJSON["questions_where_role_matters"]?["student"]?.intValue, 1)
    }

    func testBadRowsAreCountedNotGuessed() throws {
        let lines = [
            row("q1", 0, answer: "a", truth: "a", f1: 1), row("q1", 7, answer: "a", truth: "a", f1: 1),
            row("q1", nil, answer: "a", truth: "a", f1: "high", teacher: "Llama-3.1-8B-Instruct", student: "Qwen2.5-7B-Instruct"),
            row("q1", nil, answer: "a", truth: "a", f1: 1, teacher: "Llama-3.1-8B-Instruct", student: "Qwen2.5-7B-Instruct"),
            row("q1", nil, answer: "a", truth: "a", f1: 1, teacher: "gpt-9", student: "1"),
        ]
        let dir = NSTemporaryDirectory() + "score-\(UUID().uuidString)"
        try FileIO.writeAtomically(lines.joined(separator: "\n") + "\n", to: dir + "/b.jsonl")
        let t = try ScoreStage.table(baseline: dir + "/b.jsonl", space: ActionSpace(), names: try CandidateNames(preset: "llama_qwen"))
        XCTAssertEqual(t.entries.map(\.action), [0, 1])
        XCTAssertEqual(t.summary.skippedRows, [
            "unknown action_index (not in 0..<4) (b.jsonl:2)": 1, "'f1' is not a number (b.jsonl:3)": 1,
            "roles that do not resolve to a candidate id (pass --pair or --model-name-to-id-json) (b.jsonl:5)": 1,
        ])
    }

    func testEmptyAndMalformedInputsAreClearErrors() throws {
        let dir = NSTemporaryDirectory() + "score-\(UUID().uuidString)"
        try FileIO.writeAtomically("", to: dir + "/empty.jsonl")
        XCTAssertThrowsError(try ScoreStage.table(baseline: dir + "/empty.jsonl", space: ActionSpace(), names: nil)) { e in
            XCTAssertEqual("\(e)", "\(dir)/empty.jsonl: no usable rows (the file is empty)")
        }
        try FileIO.writeAtomically(row("q", 0, answer: "a", truth: "a") + "\n{\"question\": \"q\", \"f1\": 1,}\n", to: dir + "/bad.jsonl")
        XCTAssertThrowsError(try ScoreStage.table(baseline: dir + "/bad.jsonl", space: ActionSpace(), names: nil)) { e in
            XCTAssertEqual("\(e)", "\(dir)/bad.jsonl:2: invalid JSON at column 27: trailing ',' before '}'")
        }
    }

    func testBuildSFTOnATableWithNoUsableRowsIsAnError() throws {
        let dir = NSTemporaryDirectory() + "sft-\(UUID().uuidString)"
        try FileIO.writeAtomically(row("q", 9, answer: "a", truth: "a", f1: 1) + "\n", to: dir + "/b.jsonl")
        XCTAssertThrowsError(try BuildSFT.build(baseline: dir + "/b.jsonl", space: ActionSpace(), names: nil, options: BuildSFTOptions())) { e in
            XCTAssertEqual("\(e)", "\(dir)/b.jsonl: no usable rows: 1 skipped, unknown action_index (not in 0..<4) (b.jsonl:1)")
        }
    }

    func testActionSpaceGeneralisesAndKeepsTheReferenceIndices() {
        let two = ActionSpace()
        XCTAssertEqual(two.indices.map { two.assignment(of: $0) }, [[0, 0], [0, 1], [1, 0], [1, 1]])
        XCTAssertEqual(two.output(for: [0, 1]), #"{"teacher": 0,"student": 1}"#)
        let three = ActionSpace(candidates: 3, roles: ["planner", "teacher", "student"])
        XCTAssertEqual(three.count, 27)
        for i in three.indices { XCTAssertEqual(three.index(of: three.assignment(of: i)), i) }
        XCTAssertEqual(three.assignment(of: 5), [0, 1, 2])
    }

    func testBuildSFTWithThreeCandidatesUsesNineClasses() throws {
        var grouped = BuildSFT.Grouped()
        grouped.add(question: "q1", .init(action: 8, score: 1))
        grouped.add(question: "q1", .init(action: 4, score: 1))
        grouped.add(question: "q2", .init(action: 2, score: 0.5))
        var report = BuildSFTReport()
        var o = BuildSFTOptions()
        o.tiePolicy = .all
        let rows = BuildSFT.run(grouped, space: ActionSpace(candidates: 3), options: o, report: &report)
        XCTAssertEqual(rows.map(\.output), [#"{"teacher": 2,"student": 2}"#, #"{"teacher": 1,"student": 1}"#, #"{"teacher": 0,"student": 2}"#])
        XCTAssertEqual(report.countsAfterTies, [0, 0, 1, 0, 1, 0, 0, 0, 1])
    }

    func testUndersampleQuirkWarns() throws {
        var grouped = BuildSFT.Grouped()
        grouped.add(question: "q1", .init(action: 0, score: 1))
        var report = BuildSFTReport()
        var o = BuildSFTOptions()
        o.balance = .undersample
        let rows = BuildSFT.run(grouped, space: ActionSpace(), options: o, report: &report)
        XCTAssertEqual(rows.count, 0, "the reference's quirk: an empty class makes the target 0")
        XCTAssertEqual(report.warnings.count, 1)
        XCTAssertTrue(report.lines.last!.hasPrefix("warning: undersample target is 0"), report.lines.last!)
    }
}
