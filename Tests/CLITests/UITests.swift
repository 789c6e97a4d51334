import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import XCTest
import TestSupport

/// `haps-pipe ui` on the micro quickstart's store (two experiments) beside a small sweep with
/// replicates: each JSON endpoint against what the store holds (as `show`, `dag` and the
/// artifacts' files say), the errors a request gets, and then every page in a real browser
/// (Debian's chromium driven by Playwright, ui_browser.py): no console error, no failed
/// request, the right rows, sorting, a question's dialogues, the graph's stages, the report file.
final class UITests: XCTestCase {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/reference").path
    static let browserScript = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("ui_browser.py").path

    /// `haps-pipe ui` on any free port in `directory`.
    static func server(_ args: [String], in directory: String) throws -> CLIServer {
        try CLIServer(["ui", "--port", "0"] + args, in: directory)
    }

    /// GET `path` from `server`: a JSON object, status 200 checked.
    func json(_ server: CLIServer, _ path: String) throws -> [String: Any] {
        let r = try server.get(path)
        XCTAssertEqual(r.status, 200, "\(path): \(String(decoding: r.body, as: UTF8.self))")
        return try XCTUnwrap(try JSONSerialization.jsonObject(with: r.body) as? [String: Any], path)
    }

    func object(_ text: String) throws -> [String: Any] {
        try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any], text)
    }

    /// The micro quickstart, then an experiment that changes router_knn's k, and a sweep of a
    /// small spec (score and build-sft on the reference's fixture) over a parameter and seeds.
    func makeStore() throws -> String {
        let dir = try QuickstartTests.directory(self)
        var r = try CLI.run(["run", QuickstartTests.spec, "--plain", "--exp", "micro"] + QuickstartTests.micro, in: dir)
        XCTAssertEqual(r.status, 0, r.stderr)
        r = try CLI.run(["run", QuickstartTests.spec, "--plain"] + QuickstartTests.micro + ["--set", "router_knn.k=2", "--exp", "knn2"], in: dir)
        XCTAssertEqual(r.status, 0, r.stderr)
        let baseline = UITests.fixtures + "/build-sft/baseline.jsonl"
        try """
            {"name": "t", "stages": {
              "score": {"type": "score", "inputs": {"samples": "\(baseline)"}, "params": {"use_recorded": true}},
              "sft": {"type": "build-sft", "inputs": {"samples": "\(baseline)"}, "params": {"tie_policy": "all", "balance": "smart_oversample", "smart_target": 40}}}}
            """.write(toFile: dir + "/t.json", atomically: true, encoding: .utf8)
        r = try CLI.run(["sweep", "t.json", "--grid", "sft.smart_target=40,60", "--seeds", "1,2", "--name", "targets", "--plain"], in: dir)
        XCTAssertEqual(r.status, 0, r.stderr)
        return dir
    }

    func testTheInterfaceOnTheMicroQuickstartsStore() throws {
        try Python.require(["playwright"])
        let dir = try makeStore()
        let shown = { (args: [String]) in try CLI.run(args, in: dir).stdout }
        let stages = try shown(["dag", QuickstartTests.spec]).split(separator: "\n").dropFirst()
            .map { String($0.trimmingCharacters(in: .whitespaces).prefix { $0 != " " }) }
        XCTAssertEqual(stages.count, 23)
        let report = dir + "/report.html"
        let written = try CLI.run(["report", "quickstart/evaluate", "--html", report], in: dir)
        XCTAssertEqual(written.status, 0, written.stderr)

        let server = try UITests.server([], in: dir)
        defer { server.stop() }

        // Experiments: both of quickstart, the sweep, and figures that differ (k moves only the kNN router's).
        let overview = try json(server, "/api/overview")
        let pipelines = try XCTUnwrap(overview["pipelines"] as? [[String: Any]])
        XCTAssertEqual(pipelines.map { $0["name"] as? String }, ["quickstart"], "the sweep's merged runs are not experiments")
        let exps = try XCTUnwrap(pipelines[0]["experiments"] as? [[String: Any]])
        XCTAssertEqual(exps.map { $0["name"] as? String }, ["knn2", "micro"])
        XCTAssertEqual(exps.map { $0["status"] as? String }, ["done", "done"])
        XCTAssertEqual(exps[0]["ran"] as? Int, 2, "knn2 reran router_knn and evaluate only: \(exps[0])")
        for f in try XCTUnwrap(pipelines[0]["differing"] as? [String]) {
            XCTAssertTrue(f.hasPrefix("evaluate.router_knn") || f.hasPrefix("router_knn."), "only the kNN router's figures may differ: \(f)")
        }
        let results = try object(try shown(["show", "quickstart/evaluate", "--file", "results.json"]))
        let oracle = try XCTUnwrap((results["rows"] as? [[String: Any]])?.first { $0["name"] as? String == "oracle" }?["f1_mean"] as? Double)
        XCTAssertEqual((exps[1]["figures"] as? [String: Double])?["evaluate.oracle_f1"] ?? -1, oracle, accuracy: 1e-12)
        XCTAssertEqual((overview["sweeps"] as? [[String: Any]])?.map { $0["name"] as? String }, ["targets"])
        let diff = try json(server, "/api/diff?pipeline=quickstart&a=micro&b=knn2")
        let changed = try XCTUnwrap(diff["stages"] as? [[String: Any]])
        XCTAssertEqual(changed.map { $0["stage"] as? String }, ["router_knn", "evaluate"])
        XCTAssertTrue((changed[0]["changes"] as? [String])?.joined().contains("k") == true, "\(changed)")

        // The run: every stage of the spec, in the graph too.
        let run = try json(server, "/api/run?pipeline=quickstart&experiment=micro")
        let list = try XCTUnwrap(run["stage_list"] as? [[String: Any]])
        XCTAssertEqual(Set(list.compactMap { $0["stage"] as? String }), Set(stages))
        XCTAssertTrue(list.allSatisfy { $0["outcome"] as? String == "ran" })
        let svg = try XCTUnwrap(run["svg"] as? String)
        for s in stages { XCTAssertTrue(svg.contains("data-stage=\"\(s)\""), s) }
        let evaluateRow = try XCTUnwrap(list.first { $0["stage"] as? String == "evaluate" })
        XCTAssertEqual(((evaluateRow["inputs"] as? [[String: Any]])?.first { $0["port"] as? String == "scores" })?["from"] as? String, "score_test")

        // A result: the same artifact, files and parameters `show` gives.
        let shownJSON = try object(try shown(["show", "quickstart/evaluate", "--json"]))
        let result = try json(server, "/api/result?target=quickstart/evaluate")
        XCTAssertEqual(result["digest"] as? String, shownJSON["digest"] as? String)
        let manifestFiles = try XCTUnwrap((shownJSON["manifest"] as? [String: Any])?["files"] as? [String: Any])
        XCTAssertEqual((result["files"] as? [[String: Any]])?.compactMap { $0["name"] as? String }, manifestFiles.keys.sorted())
        let params = try XCTUnwrap(result["params"] as? [[String: Any]])
        let resamples = try XCTUnwrap(params.first { $0["name"] as? String == "resamples" })
        XCTAssertEqual(resamples["is_default"] as? Bool, true, "\(resamples)")
        let maxTokens = try XCTUnwrap(params.first { $0["name"] as? String == "max_tokens" })
        XCTAssertEqual(maxTokens["value"] as? Int, 24)
        XCTAssertEqual(maxTokens["is_default"] as? Bool, false, "the micro run sets max_tokens 24: \(maxTokens)")
        for p in params where p["is_default"] as? Bool == true {
            XCTAssertEqual(p["value"] as? NSObject, p["default"] as? NSObject, "\(p)")
        }
        let digest = try XCTUnwrap(result["digest"] as? String)
        let file = try server.get("/api/file?digest=\(digest)&name=cost_quality.svg")
        XCTAssertEqual(file.body, Data(try shown(["show", digest, "--file", "cost_quality.svg"]).utf8))

        // The evaluation, a question, a live dialogue and a sampled one.
        let evaluation = try json(server, "/api/evaluation?digest=\(digest)")
        let questions = try XCTUnwrap(evaluation["questions"] as? [[String: Any]])
        XCTAssertEqual(questions.count, 5)
        let questionsFile = try shown(["show", "quickstart/world_test", "--path"]).trimmingCharacters(in: .whitespacesAndNewlines) + "/questions.jsonl"
        let first = try object(String(lines(questionsFile)[0]))
        let q0 = try json(server, "/api/question?digest=\(digest)&index=0")
        XCTAssertEqual(q0["question"] as? String, first["question"] as? String)
        XCTAssertEqual(q0["gold"] as? String, first["answer"] as? String)
        XCTAssertEqual(q0["id"] as? String, first["_id"] as? String)
        let rows = try XCTUnwrap(q0["rows"] as? [[String: Any]])
        XCTAssertEqual(rows.map { $0["name"] as? String }, (results["rows"] as? [[String: Any]])?.map { $0["name"] as? String })
        let live = try XCTUnwrap(lines(try writeTemp(shown(["show", digest, "--file", "live_transcripts.jsonl"]), dir))
            .map { try object(String($0)) }.first { $0["row"] as? String == "rl_train" && $0["question_index"] as? Int == 0 })
        let dialogue = try json(server, "/api/dialogue?digest=\(digest)&index=0&row=rl_train")
        XCTAssertEqual(dialogue["source"] as? String, "live")
        XCTAssertEqual((dialogue["turns"] as? [[String: Any]])?.compactMap { $0["reply"] as? String },
                       (live["turns"] as? [[String: Any]])?.compactMap { $0["reply"] as? String })
        let sampled = try json(server, "/api/dialogue?digest=\(digest)&index=0&row=oracle")
        XCTAssertEqual(sampled["source"] as? String, "samples")
        XCTAssertFalse((sampled["turns"] as? [Any] ?? []).isEmpty)
        let oracleRow = try XCTUnwrap(rows.first { $0["name"] as? String == "oracle" })
        XCTAssertEqual(sampled["action"] as? Int, oracleRow["action"] as? Int)

        // The sweep: 2 points × 2 seeds, pooled per point, plotted with bands.
        let sweep = try json(server, "/api/sweep?name=targets")
        XCTAssertEqual(((sweep["table"] as? [String: Any])?["rows"] as? [Any])?.count, 4)
        XCTAssertEqual(((sweep["replicates"] as? [String: Any])?["rows"] as? [Any])?.count, 2)
        let plot = try server.get("/api/sweep/plot?name=targets&x=smart_target&figures=sft.sft_rows")
        let plotted = String(decoding: plot.body, as: UTF8.self)
        XCTAssertEqual(plot.status, 200, plotted)
        XCTAssertEqual(plotted.components(separatedBy: "<polyline").count - 1, 1)
        XCTAssertEqual(plotted.components(separatedBy: "class=\"band\"").count - 1, 1, plotted)

        // What a wrong request gets.
        for (path, status, message) in [("/api/result?target=nosuchstage", 404, "neither a stage"), ("/api/question?digest=\(digest)&index=99", 404, "has 5"),
                                        ("/api/run?pipeline=quickstart", 400, "needs 'experiment'"), ("/api/sweep?name=targetz", 404, "did you mean"),
                                        ("/api/file?digest=\(digest)&name=nope.txt", 404, "no file 'nope.txt'"), ("/api/evaluation?digest=quickstart/world_test", 400, "not an evaluation")] {
            let r = try server.get(path)
            XCTAssertEqual(r.status, status, path)
            XCTAssertTrue(String(decoding: r.body, as: UTF8.self).contains(message), "\(path): \(String(decoding: r.body, as: UTF8.self))")
        }

        // Every page in a real browser.
        let shots = ProcessInfo.processInfo.environment["HAPS_UI_SCREENSHOTS"] ?? (dir + "/screenshots")
        let browser = try Python.run(script: UITests.browserScript, arguments: [server.base, shots, report, "micro"], requiring: ["playwright"])
        XCTAssertEqual(browser.status, 0, browser.stderr + "\nserver log:\n" + readFile(server.log))
        let seen = try object(browser.stdout)
        XCTAssertEqual(seen["errors"] as? [String], [], "console errors")
        XCTAssertEqual(seen["failed"] as? [String], [], "failed requests")
        XCTAssertEqual(seen["experiments"] as? [String], ["knn2", "micro"])
        XCTAssertEqual(seen["sorted_asc"] as? [String], ["knn2", "micro"])
        XCTAssertEqual(seen["sorted_desc"] as? [String], ["micro", "knn2"])
        XCTAssertEqual(seen["filtered"] as? [String], ["micro"])
        XCTAssertEqual(seen["diff_stages"] as? [String], ["router_knn", "evaluate"], "ticked: micro, then knn2")
        XCTAssertEqual(Set((seen["dag"] as? [[String]] ?? []).map { $0[0] }), Set(stages), "the graph lists every stage")
        XCTAssertEqual(Set(seen["stage_rows"] as? [String] ?? []), Set(stages))
        XCTAssertTrue((seen["params"] as? [String] ?? []).contains("resamples"))
        XCTAssertGreaterThan(seen["defaults"] as? Int ?? 0, 0, "defaults are marked")
        XCTAssertEqual((seen["images"] as? [[Any]])?.first?.last as? Int, 640, "cost_quality.svg shows inline")
        XCTAssertEqual(seen["rows"] as? [String], rows.compactMap { $0["name"] as? String })
        XCTAssertEqual(seen["questions"] as? [String], questions.compactMap { $0["question"] as? String })
        XCTAssertEqual(seen["intervals"] as? [String], rows.compactMap { $0["name"] as? String })
        XCTAssertEqual(seen["gold"] as? String, first["answer"] as? String)
        let dialogues = try XCTUnwrap(seen["dialogues"] as? [String: [String]])
        XCTAssertEqual(dialogues["rl_train"], (live["turns"] as? [[String: Any]])?.compactMap { $0["reply"] as? String }, "clicking shows the live dialogue")
        XCTAssertNil(dialogues["random"], "random chose no single action")
        XCTAssertEqual(Set(dialogues.keys), Set(rows.compactMap { $0["name"] as? String }).subtracting(["random"]))
        XCTAssertEqual(seen["sweeps"] as? [String], ["targets"])
        XCTAssertEqual(seen["sweep_rows"] as? Int, 2, "the pooled table")
        XCTAssertGreaterThan(seen["sweep_bands"] as? Int ?? 0, 0)
        XCTAssertEqual(seen["report_rows"] as? [String], rows.compactMap { $0["name"] as? String })
        XCTAssertFalse(((seen["report_dialogue"] as? [Any])?.last as? [String] ?? []).isEmpty, "the report file holds the dialogues")
        for page in ["experiments", "run", "result", "evaluation", "pictures", "question", "dialogue", "sweep"] {
            let size = (try? FileManager.default.attributesOfItem(atPath: "\(shots)/\(page).png")[.size] as? Int) ?? 0
            XCTAssertGreaterThan(size, 10_000, "screenshot of \(page)")
        }
    }

    /// With --api-key-env: nothing without the key; the bearer header, or the cookie /?key= sets.
    func testTheKeyGuardsEveryPath() throws {
        let dir = try makeTempDirectory(self)
        try FileManager.default.createDirectory(atPath: dir + "/artifacts", withIntermediateDirectories: true)
        let server = try CLIServer(["ui", "--port", "0", "--api-key-env", "HAPS_UI_TEST_KEY"], in: dir, environment: ["HAPS_UI_TEST_KEY": "k3y"])
        defer { server.stop() }
        XCTAssertEqual(try server.get("/api/overview").status, 401)
        XCTAssertEqual(try server.get("/").status, 401)
        XCTAssertEqual(try server.get("/api/overview", headers: ["Authorization": "Bearer wrong"]).status, 401)
        XCTAssertEqual(try server.get("/api/overview", headers: ["Authorization": "Bearer k3y"]).status, 200)
        XCTAssertEqual(try server.get("/api/overview", headers: ["Cookie": "haps_ui_key=k3y"]).status, 200)
        XCTAssertEqual(try server.get("/api/overview", headers: ["Cookie": "haps_ui_key=k3"]).status, 401)
        let opened = try server.get("/?key=k3y")
        XCTAssertEqual(opened.status, 200, "/?key= sets the cookie and the page follows")
        XCTAssertTrue(String(decoding: opened.body, as: UTF8.self).contains("<title>haps-pipe</title>"))
        XCTAssertEqual(try server.get("/api/overview").status, 200, "the session's cookie now opens the rest")
        let missing = try CLI.run(["ui", "--store", dir + "/nowhere", "--port", "0"], in: dir)
        XCTAssertNotEqual(missing.status, 0)
        XCTAssertTrue(missing.stderr.contains("no store at"), missing.stderr)
    }

    func writeTemp(_ text: String, _ dir: String) throws -> String {
        let path = dir + "/tmp-\(UUID().uuidString.prefix(6)).jsonl"
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }
}
