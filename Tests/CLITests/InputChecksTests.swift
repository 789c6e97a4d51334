import Foundation
import XCTest
import TestSupport

/// A user's own input file with a missing field stops the run before any stage runs, and the
/// error names the user's file and line (not the store's snapshot of it, after upstream work).
final class InputChecksTests: XCTestCase {
    var dir = ""
    static let routing = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("dataset/routing").path

    override func setUpWithError() throws { dir = try makeTempDirectory(self) }

    func write(_ text: String, _ name: String) throws { try text.write(toFile: dir + "/" + name, atomically: true, encoding: .utf8) }

    func ranStages(_ store: String) -> [String] {
        let r = try? CLI.run(["status", "p.json", "--store", store], in: dir)
        return (r?.stdout ?? "").split(separator: "\n").filter { $0.contains("up to date") }.map { String($0.split(separator: " ")[0]) }
    }

    func testAQuestionsFileLackingAFieldStopsTheRunBeforeAnythingRuns() throws {
        try write(#"{"question": "What is 17 * 23?", "type": "math"}"# + "\n" + #"{"id": "p2", "type": "math"}"# + "\n", "q.jsonl")
        try write("""
        {"name": "p", "stages": {
          "train": {"type": "import", "inputs": {"data": "\(Self.routing)/long.csv"}},
          "router": {"type": "route-table", "inputs": {"scores": "train", "questions": "q.jsonl"}, "params": {"method": "per-type"}}
        }}
        """, "p.json")
        let r = try CLI.run(["run", "p.json", "--store", "s", "--plain"], in: dir)
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.stderr.contains("nothing was run"), r.stderr)
        XCTAssertTrue(r.stderr.contains("stage 'router' reads input 'questions' from "), r.stderr)
        XCTAssertTrue(r.stderr.contains("q.jsonl:2: question 1: missing or non-string 'question'"), "the user's file and line: \(r.stderr)")
        XCTAssertFalse(r.stderr.contains("/store/") || r.stderr.contains("s/objects"), "not the store's copy: \(r.stderr)")
        XCTAssertEqual(ranStages("s"), [], "train did not run either")

        // Plain questions (no HotpotQA context) are what a router needs: mended, it runs, and the
        // check that passed is remembered for this content.
        try write(#"{"question": "What is 17 * 23?", "type": "math"}"# + "\n", "q.jsonl")
        let ok = try CLI.run(["run", "p.json", "--store", "s", "--plain"], in: dir)
        XCTAssertEqual(ok.status, 0, ok.stderr)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir + "/s/checked").count, 2, "the questions file's and the table's checks")
    }

    func testStagesThatRunDialoguesCheckHotpotQAsFields() throws {
        try write(#"{"_id": "a1", "question": "Who wrote it?", "answer": "Tolstoy"}"# + "\n", "plain.jsonl")
        try write(#"{"name": "p", "stages": {"qs": {"type": "questions", "inputs": {"file": "plain.jsonl"}}}}"#, "p.json")
        let r = try CLI.run(["run", "p.json", "--store", "s", "--plain"], in: dir)
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.stderr.contains("nothing was run"), r.stderr)
        XCTAssertTrue(r.stderr.contains("plain.jsonl:1: missing field 'context'"), r.stderr)
    }

    func testABadRoutingTableIsReportedBeforeAnythingRuns() throws {
        try write("id,prompt,model,score,cost\np1,hi,m0,1,0.1\np1,hi,m1,abc,0.2\np2,yo,m0,0,-2\np2,yo,m1,1,0.1\n", "bad.csv")
        try write("""
        {"name": "p", "stages": {
          "good": {"type": "import", "inputs": {"data": "\(Self.routing)/long.csv"}},
          "bad": {"type": "import", "inputs": {"data": "bad.csv"}}
        }}
        """, "p.json")
        let r = try CLI.run(["run", "p.json", "--store", "s", "--plain"], in: dir)
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.stderr.contains("nothing was run"), r.stderr)
        XCTAssertTrue(r.stderr.contains("bad.csv:3: column 'score': 'abc' is not a number"), r.stderr)
        XCTAssertTrue(r.stderr.contains("bad.csv:4: column 'cost': '-2' is not a cost"), r.stderr)
        XCTAssertEqual(ranStages("s"), [])
        let rest = try CLI.run(["run", "p.json", "--store", "s", "--plain", "--keep-going"], in: dir)
        XCTAssertTrue(rest.stderr.contains("good"), rest.stderr)
        XCTAssertEqual(ranStages("s"), ["good"], "--keep-going runs what does not need the bad file")
    }
}
