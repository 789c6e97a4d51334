import Foundation
import XCTest
import TestSupport

/// `haps-pipe metrics`, `score` and `build-sft` as users run them, against the reference fixtures.
final class DataCommandTests: XCTestCase {
    let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/reference").path
    var dir = ""

    override func setUpWithError() throws { dir = try makeTempDirectory(self) }

    func testBuildSFTReproducesEveryReferenceCaseWithKebabCaseFlags() throws {
        let cases = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: fixtures + "/build-sft/cases.json"))) as! [[String: Any]]
        for (i, c) in cases.enumerated() {
            // The reference's --tie_policy is our --tie-policy, and so on.
            let args = (c["args"] as! [String]).map { $0.hasPrefix("--") ? $0.replacingOccurrences(of: "_", with: "-") : $0 }
            let out = "\(dir)/sft-\(i).json"
            let r = try CLI.run(["build-sft", "--baseline", fixtures + "/build-sft/baseline.jsonl", "--output", out] + args, in: dir)
            XCTAssertEqual(r.status, 0, r.stderr)
            XCTAssertTrue(r.stdout.contains("rows written: \(c["rows"] as! Int)\n"), r.stdout)
            XCTAssertEqual(readFile(out), readFile(fixtures + "/build-sft/" + (c["expected"] as! String)), "\(args)")
        }
    }

    /// The reference's own invocation: --model_name_to_id_json takes JSON text (rows without
    /// action_index resolve their roles through it); a file holding the JSON works too.
    func testModelNameToIDTakesJSONTextAsTheReference() throws {
        // The fixture table without action_index: roles resolve by name.
        let rows = try String(contentsOfFile: fixtures + "/build-sft/baseline.jsonl", encoding: .utf8).split(separator: "\n").map { line in
            line.replacingOccurrences(of: #""action_index": \d+, "#, with: "", options: .regularExpression)
        }
        XCTAssertFalse(rows[0].contains("action_index"))
        try writeFile(rows.joined(separator: "\n") + "\n", dir + "/named.jsonl")
        let mapping = #"{"Llama-3.1-8B-Instruct": 0, "Qwen2.5-7B-Instruct": 1}"#
        let text = try CLI.run(["build-sft", "--baseline", "named.jsonl", "--output", "a.json", "--model-name-to-id-json", mapping], in: dir)
        XCTAssertEqual(text.status, 0, text.stderr)
        XCTAssertEqual(readFile(dir + "/a.json"), readFile(fixtures + "/build-sft/expected_1.json"), "the same rows as with action_index")
        try writeFile(mapping, dir + "/ids.json")
        let file = try CLI.run(["build-sft", "--baseline", "named.jsonl", "--output", "b.json", "--model-name-to-id-json", "ids.json"], in: dir)
        XCTAssertEqual(file.status, 0, file.stderr)
        XCTAssertEqual(readFile(dir + "/b.json"), readFile(dir + "/a.json"))
        let bad = try CLI.run(["build-sft", "--baseline", "named.jsonl", "--output", "c.json", "--model-name-to-id-json", #"{"Llama": "zero"}"#], in: dir)
        XCTAssertNotEqual(bad.status, 0)
        XCTAssertTrue(bad.stderr.contains("--model-name-to-id-json: 'Llama' maps to \"zero\", not a candidate id"), bad.stderr)
    }

    func testBuildSFTRejectsUnknownModes() throws {
        let r = try CLI.run(["build-sft", "--baseline", fixtures + "/build-sft/baseline.jsonl", "--output", "x.json", "--balance", "oversampel"], in: dir)
        XCTAssertEqual(r.status, 2)
        XCTAssertEqual(r.stderr, "error: unknown --balance 'oversampel'; did you mean 'oversample'?\n")
    }

    func testMetricsPrintsEachLineBackWithItsScores() throws {
        try writeFile("""
            {"id": 1, "prediction": "The Las Vegas.", "ground_truth": "Las Vegas"}
            {"id": 2, "prediction": "not sure", "ground_truth": "no", "f1": 0.3}
            {"id": 3, "prediction": "Reginald", "ground_truth": "Reginald Martinez \\"Reggie\\" Jackson"}

            """, dir + "/a.jsonl")
        let r = try CLI.run(["metrics", "a.jsonl"], in: dir)
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(r.stdout, """
            {"id": 1, "prediction": "The Las Vegas.", "ground_truth": "Las Vegas", "f1": 1.0, "precision": 1.0, "recall": 1.0, "em": 1}
            {"id": 2, "prediction": "not sure", "ground_truth": "no", "f1": 0.0, "precision": 0.0, "recall": 0.0, "em": 1}
            {"id": 3, "prediction": "Reginald", "ground_truth": "Reginald Martinez \\"Reggie\\" Jackson", "f1": 0.4, "precision": 1.0, "recall": 0.25, "em": 0}

            """)
        try writeFile("{\"prediction\": \"x\"}\n", dir + "/b.jsonl")
        let bad = try CLI.run(["metrics", "b.jsonl"], in: dir)
        XCTAssertEqual(bad.status, 1)
        XCTAssertEqual(bad.stderr, "error: b.jsonl:1: missing or non-string 'ground_truth'\n")
    }

    func testScoreSummarisesABaselineTable() throws {
        let r = try CLI.run(["score", fixtures + "/build-sft/baseline.jsonl", "--use-recorded", "--scores", "s.jsonl"], in: dir)
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.hasPrefix("questions: 100 (59 with every action; means below are over those), rows: 354\n"), r.stdout)
        XCTAssertTrue(r.stdout.contains("best fixed action: 0 (teacher Llama-3.1-8B-Instruct, student Llama-3.1-8B-Instruct), mean F1 0.5000\n"), r.stdout)
        XCTAssertTrue(r.stdout.contains("oracle (best action per question): mean F1 0.8220 (gap over best fixed: 0.3220)\n"), r.stdout)
        XCTAssertEqual(lines(dir + "/s.jsonl").count, 354)
        let json = try CLI.run(["score", fixtures + "/build-sft/baseline.jsonl", "--json"], in: dir)
        let s = try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as! [String: Any]
        XCTAssertEqual(s["recorded_f1_disagreements"] as? Int, 250, "the fixture's answers are empty; its f1 values are made up")
    }

    /// Single-role routing data (one model answers; 3 candidates): `--roles model` makes 3
    /// actions, not 9 teacher × student ones; rows are grouped by their question id, so two
    /// prompts with the same text stay two questions, and the table keeps the ids.
    func testScoreTakesRolesAndKeysRowsByQuestionID() throws {
        var rows: [String] = []
        for (id, text, f1s) in [("p1", "What is 2+2?", [1.0, 0.0, 0.5]), ("p2", "What is 2+2?", [0.0, 1.0, 0.5]), ("p3", "Name a prime.", [1.0, 1.0, 0.0])] {
            for (model, f1) in zip(["small", "medium", "large"], f1s) {
                rows.append(#"{"id": "\#(id)", "question": "\#(text)", "model": "\#(model)", "f1": \#(f1)}"#)
            }
        }
        try writeFile(rows.joined(separator: "\n") + "\n", dir + "/routing.jsonl")
        try writeFile(#"{"small": 0, "medium": 1, "large": 2}"#, dir + "/ids.json")
        let r = try CLI.run(["score", "routing.jsonl", "--candidates", "3", "--roles", "model", "--model-name-to-id-json", "ids.json",
                             "--scores", "s.jsonl", "--json"], in: dir)
        XCTAssertEqual(r.status, 0, r.stderr)
        let s = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
        XCTAssertEqual((s["actions"] as? [[String: Any]])?.map { $0["assignment"] as? String }, ["model small", "model medium", "model large"])
        XCTAssertEqual(s["questions"] as? Int, 3, "p1 and p2 share a text but are two questions")
        XCTAssertEqual(s["oracle_f1"] as! Double, 1, accuracy: 1e-12)
        XCTAssertEqual(s["duplicate_rows"] as? Int, 0)
        let table = lines(dir + "/s.jsonl").map { try! JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any] }
        XCTAssertEqual(table.count, 9)
        XCTAssertEqual(Set(table.compactMap { $0["id"] as? String }), ["p1", "p2", "p3"])
        XCTAssertEqual(Set(table.map { $0["model"] as? Int }), [0, 1, 2])
        // Without ids, the same text is one question: its second rows are duplicates, as before.
        try writeFile(rows.map { $0.replacingOccurrences(of: #""id": "p1", "#, with: "").replacingOccurrences(of: #""id": "p2", "#, with: "")
            .replacingOccurrences(of: #""id": "p3", "#, with: "") }.joined(separator: "\n") + "\n", dir + "/noid.jsonl")
        let merged = try CLI.run(["score", "noid.jsonl", "--candidates", "3", "--roles", "model", "--model-name-to-id-json", "ids.json"], in: dir)
        XCTAssertTrue(merged.stdout.contains("questions: 2 "), merged.stdout)
        XCTAssertTrue(merged.stdout.contains("warning: 3 duplicate question × action rows ignored"), merged.stdout)
        let bad = try CLI.run(["score", "routing.jsonl", "--roles", "model,,x"], in: dir)
        XCTAssertEqual(bad.status, 2)
        XCTAssertTrue(bad.stderr.contains("--roles takes distinct role names"), bad.stderr)
    }
}

/// `haps-pipe sample` against the loopback server of the client tests.
final class SampleCommandTests: XCTestCase {
    func testSamplesAPresetAndWritesTheReferenceTable() throws {
        let dir = try makeTempDirectory(self)
        let server = try FaultServer()
        defer { server.stop() }
        let url = server.base + "/v1"
        let q = #"{"_id": "1", "answer": "Paris", "question": "Capital of France?", "supporting_facts": [["France", 0]], "context": [["France", ["France's capital is Paris."]]]}"#
        try writeFile(q + "\n", dir + "/q.jsonl")
        let args = ["sample", "--questions", "q.jsonl", "--preset", "llama_qwen", "--model-url", "llama=\(url)", "--model-url", "qwen=\(url)",
                    "--retriever", "lexical", "--budget", "1", "--workers", "2", "--output", "b.jsonl"]
        let r = try CLI.run(args, in: dir)
        XCTAssertEqual(r.status, 0, r.stderr)
        let rows = lines(dir + "/b.jsonl")
        XCTAssertEqual(rows.count, 4)
        XCTAssertTrue(rows[1].hasPrefix(#"{"qid": 0, "action_index": 1, "question": "Capital of France?", "teacher": "Llama-3.1-8B-Instruct", "student": "Qwen2.5-7B-Instruct", "answer": "Paris", "ground_truth": "Paris", "f1": 1.0"#), rows[1])
        let again = try CLI.run(args, in: dir)
        XCTAssertTrue(again.stdout.hasPrefix("wrote b.jsonl (cached;"), again.stdout)
        let show = try CLI.run(["show", "sample-llama_qwen/sample", "--question", "0", "--action", "1"], in: dir)
        XCTAssertEqual(show.status, 0, show.stderr)
        XCTAssertTrue(show.stdout.hasPrefix("""
            ═══ question 0, action 1: teacher Llama-3.1-8B-Instruct, student Qwen2.5-7B-Instruct ═══
            Q: Capital of France?
            final answer "Paris" · gold "Paris" · F1 1.000

            ── step 0 · student · think ──
            PROMPT:
            You are a student
            """), show.stdout)
        XCTAssertTrue(show.stdout.contains("REPLY:\nThought: look it up\nAction: Search[France]"), show.stdout)
        let missing = try CLI.run(["show", "sample-llama_qwen/sample", "--question", "7"], in: dir)
        XCTAssertEqual(missing.stderr, "error: no dialogue for question 7 in this artifact\n")

        // The reference's own servers and prompt files: qwen over its protocol (POST /), every
        // template from DIR/prompt/{student,teacher}/prompt{1,2}.txt, a fixed sentence from
        // DIR/sentences.json.
        let templates = ["student/prompt1.txt": "REF student think {question} | {context} | {observation} | {budget}",
                         "student/prompt2.txt": "REF student summarize {question} {context} {observation} {thought} {action}",
                         "teacher/prompt1.txt": "REF teacher think {question} {context} {observation}",
                         "teacher/prompt2.txt": "REF teacher summarize {question} {context} {observation} {thought} {action}"]
        for (file, text) in templates { try writeFile(text, dir + "/ref/prompt/" + file) }
        try writeFile(#"{"start_observation": "REF START"}"#, dir + "/ref/sentences.json")
        let haps = url.replacingOccurrences(of: "/v1", with: "/")
        let ref = try CLI.run(["sample", "--questions", "q.jsonl", "--model-url", "llama=\(url)", "--model-url", "qwen=\(haps)", "--protocol", "qwen=haps",
                               "--prompts", "ref", "--retriever", "lexical", "--budget", "1", "--output", "r.jsonl"], in: dir)
        XCTAssertEqual(ref.status, 0, ref.stderr)
        XCTAssertEqual(lines(dir + "/r.jsonl").count, 4)
        let dialogue = try CLI.run(["show", "sample-llama_qwen/sample", "--question", "0", "--action", "3"], in: dir)
        XCTAssertTrue(dialogue.stdout.contains("PROMPT:\nREF student think Capital of France? | "), dialogue.stdout)
        XCTAssertTrue(dialogue.stdout.contains("| REF START | "), dialogue.stdout)
        XCTAssertTrue(dialogue.stdout.contains("REPLY:\nhaps says: REF student think"), "qwen answered over the reference's protocol: \(dialogue.stdout)")
        let bad = try CLI.run(["sample", "--questions", "q.jsonl", "--protocol", "hapz", "--output", "x.jsonl"], in: dir)
        XCTAssertEqual(bad.stderr, "error: unknown --protocol 'hapz'; did you mean 'haps'?\n")
    }
}

/// `haps-pipe import` (issue 31): the shipped fixtures of both layouts (the same data) give the
/// same score table, checked against Python's csv module; every bad row is reported with
/// file:line and its column.
final class ImportCommandTests: XCTestCase {
    var dir = ""
    static let routing = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("dataset/routing").path

    override func setUpWithError() throws { dir = try makeTempDirectory(self) }

    func testBothLayoutsOfTheShippedFixtureGiveOneTable() throws {
        let long = try CLI.run(["import", ImportCommandTests.routing + "/long.csv", "--output", "long", "--json"], in: dir)
        XCTAssertEqual(long.status, 0, long.stderr)
        let wide = try CLI.run(["import", ImportCommandTests.routing + "/routerbench.csv", "--layout", "routerbench", "--output", "wide"], in: dir)
        XCTAssertEqual(wide.status, 0, wide.stderr)
        XCTAssertEqual(readFile(dir + "/long/scores.jsonl"), readFile(dir + "/wide/scores.jsonl"))
        XCTAssertEqual(readFile(dir + "/long/questions.jsonl"), readFile(dir + "/wide/questions.jsonl"))
        // Each model's mean score and cost, as Python's csv module reads the file.
        let oracle = try Python.run("""
            import csv, json, sys
            rows = list(csv.DictReader(open(sys.argv[1], newline="")))
            models = list(dict.fromkeys(r["model"] for r in rows))
            out = {m: [sum(float(r["score"]) for r in rows if r["model"] == m) / 12, sum(float(r["cost"]) for r in rows if r["model"] == m) / 12] for m in models}
            print(json.dumps({"models": models, "means": out, "prompts": len(set(r["id"] for r in rows)), "texts": len(set(r["prompt"] for r in rows))}))
            """, arguments: [ImportCommandTests.routing + "/long.csv"])
        let expected = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(oracle.stdout.utf8)) as? [String: Any])
        let summary = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(long.stdout.utf8)) as? [String: Any])
        XCTAssertEqual(summary["questions"] as? Int, expected["prompts"] as? Int)
        XCTAssertEqual(expected["texts"] as? Int, 11, "p07 and p08 share a text: two prompts all the same")
        XCTAssertEqual(summary["candidates"] as? [String], expected["models"] as? [String])
        let means = try XCTUnwrap(expected["means"] as? [String: [Double]])
        for (i, a) in try XCTUnwrap(summary["actions"] as? [[String: Any]]).enumerated() {
            let model = (expected["models"] as! [String])[i]
            XCTAssertEqual(a["assignment"] as? String, "model \(model)")
            XCTAssertEqual(a["f1_mean"] as! Double, means[model]![0], accuracy: 1e-12)
            XCTAssertEqual(a["cost_mean"] as! Double, means[model]![1], accuracy: 1e-12)
        }
        let questions = lines(dir + "/long/questions.jsonl")
        XCTAssertEqual(questions.first, #"{"_id":"p01","question":"What is 17 * 23?","type":"math"}"#)
        XCTAssertTrue(questions.contains(#"{"_id":"p05","question":"Write a Python function that reverses a list.\nKeep it short.","type":"code"}"#),
                      "a quoted field with a line break inside")
        // `score` reads the imported table's rows back as the same table.
        let again = try CLI.run(["score", "long/scores.jsonl", "--candidates", "3", "--roles", "model", "--use-recorded", "--json"], in: dir)
        XCTAssertEqual(again.status, 0, again.stderr)
        let s2 = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(again.stdout.utf8)) as? [String: Any])
        XCTAssertEqual(s2["oracle_f1"] as? Double, summary["oracle_f1"] as? Double)
        XCTAssertEqual(s2["questions"] as? Int, 12)

        // The `import` stage in a pipeline: the same files, and the score table's figures.
        try writeFile(#"{"name": "imp", "stages": {"data": {"type": "import", "inputs": {"data": "\#(ImportCommandTests.routing)/routerbench.csv"}, "params": {"layout": "routerbench"}}}}"#,
                      dir + "/imp.json")
        let run = try CLI.run(["run", "imp.json", "--plain"], in: dir)
        XCTAssertEqual(run.status, 0, run.stderr)
        XCTAssertEqual(try CLI.run(["show", "imp/data", "--file", "scores.jsonl"], in: dir).stdout, readFile(dir + "/long/scores.jsonl"))
        XCTAssertEqual(try CLI.run(["show", "imp/data", "--file", "questions.jsonl"], in: dir).stdout, readFile(dir + "/long/questions.jsonl"))
        let exp = try CLI.run(["exp", "show", "imp.json"], in: dir).stdout
        XCTAssertTrue(exp.contains("data.oracle_f1"), exp)
    }

    func testEveryBadRowIsReportedWithItsLineAndColumn() throws {
        try writeFile("""
            id,prompt,model,score,cost
            a,"Two
            lines",m1,0.5,0.1
            a,"Two
            lines",m2,abc,0.1
            b,Three,m1,1.5,0.1
            b,Three,m2,1,-2
            a,Two lines again,m1,1,0.2
            c,,m1,1,0.1
            """, dir + "/bad.csv")
        let r = try CLI.run(["import", "bad.csv", "--output", "out"], in: dir)
        XCTAssertEqual(r.status, 1)
        for expected in ["5 bad rows", "bad.csv:4: column 'score': 'abc' is not a number", "bad.csv:6: column 'score': 1.5 is outside [0, 1]",
                         "bad.csv:7: column 'cost': '-2' is not a cost", "bad.csv:8: column 'model': prompt 'a' has model 'm1' already (line 2)",
                         "bad.csv:9: column 'prompt': empty prompt"] {
            XCTAssertTrue(r.stderr.contains(expected), "\(expected)\n\(r.stderr)")
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/out/scores.jsonl"), "nothing is written from a bad table")
        let column = try CLI.run(["import", ImportCommandTests.routing + "/long.csv", "--score-column", "correct", "--output", "o"], in: dir)
        XCTAssertEqual(column.status, 1)
        XCTAssertTrue(column.stderr.contains("long.csv:1: no column 'correct' (the columns: id, prompt, model, score, cost, type); --score-column names another"), column.stderr)
        try writeFile("id,prompt,model,score\na,x,m,1,extra\n", dir + "/wide.csv")
        let fields = try CLI.run(["import", "wide.csv", "--output", "o"], in: dir)
        XCTAssertTrue(fields.stderr.contains("wide.csv:2: 5 fields, where the header (line 1) has 4"), fields.stderr)
        let layout = try CLI.run(["import", ImportCommandTests.routing + "/long.csv", "--layout", "routerbench", "--output", "o"], in: dir)
        XCTAssertTrue(layout.stderr.contains("no model columns: RouterBench's layout has, per model, a score column MODEL and a cost column MODEL|total_cost"), layout.stderr)
        try writeFile("id,prompt,model,score\na,\"never closed,m,1\n", dir + "/open.csv")
        let open = try CLI.run(["import", "open.csv", "--output", "o"], in: dir)
        XCTAssertTrue(open.stderr.contains("open.csv:2: a quoted field is never closed"), open.stderr)
    }

    /// docs/data.md's worked example, as shipped: import both layouts, learn table routers,
    /// evaluate them with the cost trade-off.
    func testTheWorkedExampleRuns() throws {
        let root = URL(fileURLWithPath: ImportCommandTests.routing).deletingLastPathComponent().deletingLastPathComponent().path
        let r = try CLI.run(["run", "pipelines/routing_import.json", "--store", dir + "/artifacts", "--plain"], in: root)
        XCTAssertEqual(r.status, 0, r.stderr)
        let results = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(try CLI.run(["show", "routing_import/evaluate", "--store", dir + "/artifacts",
                                                                                                    "--file", "results.json"], in: root).stdout.utf8)) as? [String: Any])
        let curves = try XCTUnwrap(results["curves"] as? [[String: Any]])
        XCTAssertEqual(curves.compactMap { $0["row"] as? String }, ["router_knn", "router_logistic", "router_per_type"])
        for c in curves {
            let aiq = try XCTUnwrap(c["aiq"] as? Double, "\(c["row"] ?? "")")
            XCTAssertTrue((0...1).contains(aiq))
            XCTAssertTrue(c["apgr"] is NSNull, "three models: APGR is a two-model figure")
            let points = try XCTUnwrap(c["points"] as? [[String: Any]])
            XCTAssertEqual(points.first?["lambda"] as? Double, 0)
            XCTAssertEqual(points.last?["lambda"] as? String, "inf")
            XCTAssertEqual(points.last?["cost"] as! Double, 0.000143, accuracy: 1e-6, "λ ∞: the cheapest model, small, on every prompt")
        }
        let files = try CLI.run(["show", "routing_import/evaluate", "--store", dir + "/artifacts"], in: root).stdout
        XCTAssertTrue(files.contains("cost_curves.svg"), files)
        XCTAssertTrue(files.contains("mean F1 by question type: code (3), math (4), qa (5)"), "types from the imported prompts: \(files)")
    }
}

