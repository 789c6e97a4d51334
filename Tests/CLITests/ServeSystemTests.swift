import Foundation
import XCTest
import TestSupport

/// `haps-pipe serve --system` on the micro quickstart's trained system, with the official
/// `openai` Python client: answers equal to `evaluate`'s live HAPS row, the `haps` object,
/// streaming, route-only, concurrency, /metrics, and the errors a user meets.
final class ServeSystemTests: XCTestCase {
    /// `haps-pipe serve` in `directory` (one BLAS thread); its address read from its first line.
    static func server(_ args: [String], in directory: String, environment: [String: String] = [:]) throws -> CLIServer {
        try CLIServer(["serve"] + args + ["--port", "0", "--threads", "1"], in: directory, environment: environment)
    }

    static func object(_ text: String) throws -> [String: Any] {
        try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any], text)
    }

    /// The micro quickstart, trained in a new directory. alpha 4: the micro candidates' updates
    /// then change their replies (at the quickstart's 0.01 they barely move them), so that
    /// answers with and without updates tell apart.
    func trainedMicroQuickstart() throws -> String {
        let dir = try QuickstartTests.directory(self)
        let r = try CLI.run(["run", QuickstartTests.spec, "--plain"] + QuickstartTests.micro + ["--set", "rl_train.alpha=4"], in: dir)
        XCTAssertEqual(r.status, 0, r.stderr)
        return dir
    }

    func testServingTheMicroQuickstartsTrainedSystem() throws {
        try Python.require(["openai"])
        let dir = try trainedMicroQuickstart()
        let questionsFile = try CLI.run(["show", "quickstart/world_test", "--path"], in: dir).stdout.trimmingCharacters(in: .whitespacesAndNewlines) + "/questions.jsonl"
        let perQuestion = try CLI.run(["show", "quickstart/evaluate", "--file", "per_question.jsonl"], in: dir).stdout
            .split(separator: "\n").map { try ServeSystemTests.object(String($0)) }
        XCTAssertEqual(perQuestion.count, 5)
        let liveTurns = try CLI.run(["show", "quickstart/evaluate", "--file", "live_transcripts.jsonl"], in: dir).stdout
            .split(separator: "\n").map { try ServeSystemTests.object(String($0)) }.filter { $0["row"] as? String == "rl_train" }
        XCTAssertEqual(liveTurns.count, 5)

        let server = try ServeSystemTests.server(["--system", "quickstart/rl_train", "--questions", "quickstart/world_test"], in: dir)
        defer { server.stop() }
        let script = """
            import json, sys, threading, urllib.error, urllib.request, openai
            base, questions = sys.argv[1], [json.loads(l) for l in open(sys.argv[2])]
            client = openai.OpenAI(base_url=base + "/v1", api_key="none", max_retries=0)
            out = {"models": [m.id for m in client.models.list()], "answers": [], "errors": {}}
            def ask(q, **kw):
                r = client.chat.completions.create(model="haps", messages=[{"role": "user", "content": q}], **kw)
                return {"content": r.choices[0].message.content, "finish": r.choices[0].finish_reason,
                        "usage": r.usage.total_tokens, "haps": r.model_extra["haps"]}
            for q in questions:
                out["answers"].append(ask(q["question"], extra_body={"haps": {"transcript": True}}))
            out["plain"] = [ask(q["question"], extra_body={"haps": {"transcript": True, "lora": False}}) for q in questions]
            # Concurrent questions: each gets what it gets alone.
            together = [None] * len(questions)
            def one(i): together[i] = ask(questions[i]["question"])["content"]
            threads = [threading.Thread(target=one, args=(i,)) for i in range(len(questions))]
            for t in threads: t.start()
            for t in threads: t.join()
            out["together"] = together
            # Streaming: a chunk per turn, the final answer as the content, the haps object and usage at the end.
            chunks = list(client.chat.completions.create(model="haps", messages=[{"role": "user", "content": questions[0]["question"]}],
                                                         stream=True, stream_options={"include_usage": True}))
            out["stream"] = {"content": "".join(c.choices[0].delta.content or "" for c in chunks if c.choices),
                             "turns": [c.model_extra["haps"]["turn"] for c in chunks if c.model_extra.get("haps", {}).get("turn")],
                             "final": [c.model_extra["haps"] for c in chunks if c.choices and c.choices[0].finish_reason],
                             "usage": [c.usage.total_tokens for c in chunks if c.usage]}
            r = client.chat.completions.create(model="haps-route", messages=[{"role": "user", "content": "Which city is older, Aldwick or Brenmoor?"}])
            out["route"] = {"content": r.choices[0].message.content, "haps": r.model_extra["haps"], "usage": r.usage.total_tokens}
            chunks = list(client.chat.completions.create(model="haps-route", messages=[{"role": "user", "content": "Which city is older, Aldwick or Brenmoor?"}], stream=True))
            out["route"]["streamed"] = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
            # A question the server does not know, with its own paragraphs.
            q = questions[1]
            out["with_context"] = ask(q["question"], extra_body={"haps": {"context": q["context"]}})["content"]
            out["new_question"] = ask("Where was Tomas Hale born?", extra_body={"haps": {"context": ["Tomas Hale was born in Brenmoor.", "Brenmoor is a city."]}})["finish"]
            for name, call in [("unknown_model", lambda: client.chat.completions.create(model="gpt-9", messages=[{"role": "user", "content": "x"}])),
                               ("unknown_question", lambda: ask("Who wrote a book nobody has heard of?")),
                               ("bad_field", lambda: ask("x", extra_body={"haps": {"lorra": False}})),
                               ("temperature", lambda: ask(questions[0]["question"], temperature=0.7))]:
                try:
                    call()
                    out["errors"][name] = "no error"
                except openai.APIStatusError as e:
                    out["errors"][name] = [e.status_code, e.body["message"]]
            try:
                urllib.request.urlopen(base + "/no/such/path")
            except urllib.error.HTTPError:
                pass
            out["metrics"] = urllib.request.urlopen(base + "/metrics").read().decode()
            print(json.dumps(out))
            """
        let p = try Python.run(script, arguments: [server.base, questionsFile], requiring: ["openai"])
        XCTAssertEqual(p.status, 0, p.stderr + "\nserver log:\n" + readFile(server.log))
        let out = try ServeSystemTests.object(p.stdout)
        XCTAssertEqual(out["models"] as? [String], ["haps", "haps-route"])

        // Each answer is evaluate's live rl_train row: the same action, the same answer.
        let questions = lines(questionsFile).map { try! ServeSystemTests.object($0) }
        let answers = try XCTUnwrap(out["answers"] as? [[String: Any]])
        XCTAssertEqual(answers.count, questions.count)
        for (i, (q, a)) in zip(questions, answers).enumerated() {
            let row = try XCTUnwrap(perQuestion.first { $0["question"] as? String == q["question"] as? String }, "question \(i) in per_question.jsonl")
            let live = try XCTUnwrap(row["rl_train"] as? [String: Any])
            XCTAssertEqual(row["id"] as? String, q["_id"] as? String)
            XCTAssertEqual(row["gold"] as? String, q["answer"] as? String)
            let haps = try XCTUnwrap(a["haps"] as? [String: Any])
            XCTAssertEqual(haps["action"] as? Int, live["action"] as? Int, "question \(i)")
            XCTAssertEqual(a["content"] as? String, live["answer"] as? String, "question \(i)")
            XCTAssertEqual(haps["lora"] as? Bool, true)
            let distribution = try XCTUnwrap(haps["distribution"] as? [Double])
            XCTAssertEqual(distribution.count, 4)
            XCTAssertEqual(distribution.reduce(0, +), 1, accuracy: 1e-9)
            let transcript = try XCTUnwrap(haps["transcript"] as? [[String: Any]])
            XCTAssertEqual(transcript.count, haps["calls"] as? Int)
            // Every turn is evaluate's, reply for reply.
            let evaluated = try XCTUnwrap(liveTurns.first { $0["question_index"] as? Int == row["question_index"] as? Int }?["turns"] as? [[String: Any]])
            XCTAssertEqual(transcript.map { $0["reply"] as! String }, evaluated.map { $0["reply"] as! String }, "question \(i)")
            XCTAssertEqual(transcript.map { "\($0["step"]!) \($0["role"]!) \($0["call"]!)" }, evaluated.map { "\($0["step"]!) \($0["role"]!) \($0["call"]!)" })
            XCTAssertNotNil(transcript.first?["prompt"] as? String)
            // Without the updates the candidates reply otherwise: the served updates are applied.
            let plain = try XCTUnwrap(((out["plain"] as? [[String: Any]])?[i]["haps"] as? [String: Any])?["transcript"] as? [[String: Any]])
            XCTAssertNotEqual(plain.map { $0["reply"] as! String }, transcript.map { $0["reply"] as! String }, "question \(i)")
            XCTAssertEqual(((out["plain"] as? [[String: Any]])?[i]["haps"] as? [String: Any])?["lora"] as? Bool, false)
            let tokens = try XCTUnwrap(haps["tokens"] as? [String: [String: Int]])
            XCTAssertEqual(tokens.values.reduce(0) { $0 + $1["prompt"]! + $1["completion"]! }, a["usage"] as? Int)
            XCTAssertEqual(Set(tokens.keys), Set([haps["teacher"] as! String, haps["student"] as! String]))
        }
        XCTAssertEqual(out["together"] as? [String], answers.map { $0["content"] as! String })

        let stream = try XCTUnwrap(out["stream"] as? [String: Any])
        XCTAssertEqual(stream["content"] as? String, answers[0]["content"] as? String)
        XCTAssertEqual((stream["turns"] as? [Any])?.count, (answers[0]["haps"] as? [String: Any])?["calls"] as? Int)
        XCTAssertEqual(((stream["final"] as? [[String: Any]])?.first)?["action"] as? Int, (answers[0]["haps"] as? [String: Any])?["action"] as? Int)
        XCTAssertEqual(stream["usage"] as? [Int], [answers[0]["usage"] as! Int])

        let route = try XCTUnwrap(out["route"] as? [String: Any]), routeHaps = try XCTUnwrap(route["haps"] as? [String: Any])
        let routed = try ServeSystemTests.object(route["content"] as! String)
        XCTAssertEqual(routed["teacher"] as? String, routeHaps["teacher"] as? String)
        XCTAssertEqual(routed["student"] as? String, routeHaps["student"] as? String)
        XCTAssertNil(routeHaps["calls"], "route-only runs no dialogue")
        XCTAssertEqual(route["streamed"] as? String, route["content"] as? String)
        XCTAssertEqual(route["usage"] as? Int, 0)
        XCTAssertEqual(out["with_context"] as? String, answers[1]["content"] as? String)
        XCTAssertNotNil(out["new_question"] as? String, "a question of the request's own, with its paragraphs, is answered")

        let errors = try XCTUnwrap(out["errors"] as? [String: [Any]])
        XCTAssertEqual(errors["unknown_model"]?.first as? Int, 404)
        XCTAssertTrue((errors["unknown_model"]?.last as? String)?.contains("this server has 'haps', 'haps-route'") == true, "\(errors)")
        XCTAssertEqual(errors["unknown_question"]?.first as? Int, 400)
        XCTAssertTrue((errors["unknown_question"]?.last as? String)?.contains("\"haps\": {\"context\"") == true, "\(errors)")
        XCTAssertTrue((errors["bad_field"]?.last as? String)?.contains("unknown haps field 'lorra'") == true, "\(errors)")
        XCTAssertTrue((errors["temperature"]?.last as? String)?.contains("answers greedily") == true, "\(errors)")

        let metrics = try XCTUnwrap(out["metrics"] as? String)
        let decisions = metrics.split(separator: "\n").filter { $0.hasPrefix("haps_routing_decisions_total{") }
            .map { Int($0.split(separator: " ").last!)! }.reduce(0, +)
        XCTAssertEqual(decisions, 3 * questions.count + 5, metrics)  // answers, plain, together, stream, route (twice), with_context, new_question
        XCTAssertTrue(metrics.contains("haps_request_duration_seconds_bucket{path=\"/v1/chat/completions\",le=\"+Inf\"}"), metrics)
        XCTAssertTrue(metrics.contains("haps_tokens_total{candidate=\""), metrics)
        XCTAssertTrue(metrics.contains("haps_requests_total{path=\"other\",status=\"404\"} 1") && !metrics.contains("/no/such/path"), metrics)
        server.stop()
        XCTAssertEqual(server.process.terminationStatus, 0, readFile(server.log))

        try checkOtherResults(dir)
        try checkExportedSystem(dir, evaluated: liveTurns)
    }

    /// A system exported out of the store (what a deployment ships), served from its directory
    /// with its candidates and the dialogue's settings given by flags: evaluate's replies again.
    func checkExportedSystem(_ dir: String, evaluated: [[String: Any]]) throws {
        for (stage, to) in [("quickstart/rl_train", "deploy/haps"), ("quickstart/agent_a", "deploy/agent_a"), ("quickstart/agent_b", "deploy/agent_b"),
                            ("quickstart/world_test", "deploy/questions")] {
            let e = try CLI.run(["export", stage, to], in: dir)
            XCTAssertEqual(e.status, 0, e.stderr)
        }
        let server = try ServeSystemTests.server(["--system", "deploy/haps", "--model", "agent_a=deploy/agent_a", "--model", "agent_b=deploy/agent_b", "--retriever", "lexical",
                                 "--prompts", "embedded", "--reply-tokens", "24", "--questions", "deploy/questions", "--store", "no-store-here"], in: dir)
        defer { server.stop() }
        let script = """
            import json, sys, openai
            client = openai.OpenAI(base_url=sys.argv[1] + "/v1", api_key="none", max_retries=0)
            out = []
            for l in open(sys.argv[2]):
                r = client.chat.completions.create(model="haps", messages=[{"role": "user", "content": json.loads(l)["question"]}],
                                                   extra_body={"haps": {"transcript": True}})
                out.append([t["reply"] for t in r.model_extra["haps"]["transcript"]])
            print(json.dumps(out))
            """
        let p = try Python.run(script, arguments: [server.base, dir + "/deploy/questions/questions.jsonl"], requiring: ["openai"])
        XCTAssertEqual(p.status, 0, p.stderr + "\nserver log:\n" + readFile(server.log))
        let served = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(p.stdout.utf8)) as? [[String]])
        XCTAssertEqual(served, evaluated.map { ($0["turns"] as! [[String: Any]]).map { $0["reply"] as! String } })
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/no-store-here"), "a directory system opens no store")
    }

    /// `--engine torch` (CPU torch, float32, as CI has it): the router, generators and
    /// candidates in the torch worker answer every question with evaluate's replies.
    func testTheTorchEngineServesEvaluatesAnswers() throws {
        let python = try TorchPython.require()
        try Python.require(["openai"])
        let dir = try trainedMicroQuickstart()
        let server = try ServeSystemTests.server(["--system", "quickstart/rl_train", "--questions", "quickstart/world_test", "--engine", "torch", "--device", "cpu",
                                 "--dtype", "float32"], in: dir, environment: ["HAPS_TORCH_PYTHON": python, "HAPS_TORCH_WORKER": TorchPython.worker])
        defer { server.stop() }
        let questionsFile = try CLI.run(["show", "quickstart/world_test", "--path"], in: dir).stdout.trimmingCharacters(in: .whitespacesAndNewlines) + "/questions.jsonl"
        let script = """
            import json, sys, openai
            client = openai.OpenAI(base_url=sys.argv[1] + "/v1", api_key="none", max_retries=0)
            out = []
            for l in open(sys.argv[2]):
                r = client.chat.completions.create(model="haps", messages=[{"role": "user", "content": json.loads(l)["question"]}],
                                                   extra_body={"haps": {"transcript": True}})
                out.append({"action": r.model_extra["haps"]["action"], "replies": [t["reply"] for t in r.model_extra["haps"]["transcript"]]})
            print(json.dumps(out))
            """
        let p = try Python.run(script, arguments: [server.base, questionsFile], requiring: ["openai"])
        XCTAssertEqual(p.status, 0, p.stderr + "\nserver log:\n" + readFile(server.log))
        let served = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(p.stdout.utf8)) as? [[String: Any]])
        let live = try CLI.run(["show", "quickstart/evaluate", "--file", "live_transcripts.jsonl"], in: dir).stdout
            .split(separator: "\n").map { try ServeSystemTests.object(String($0)) }.filter { $0["row"] as? String == "rl_train" }
        XCTAssertEqual(served.count, live.count)
        for (i, (s, l)) in zip(served, live).enumerated() {
            XCTAssertEqual(s["action"] as? Int, l["action"] as? Int, "question \(i)")
            XCTAssertEqual(s["replies"] as? [String], (l["turns"] as? [[String: Any]])?.map { $0["reply"] as! String }, "question \(i)")
        }
    }

    /// What a user meets with other results: an sft-train result routes, and answers once its
    /// candidates and a retriever are given (no updates); a result of another kind and an
    /// unknown name stop the server at start, naming them.
    func checkOtherResults(_ dir: String) throws {
        let other = try CLI.run(["serve", "--system", "quickstart/score_test", "--port", "0"], in: dir)
        XCTAssertNotEqual(other.status, 0)
        XCTAssertTrue(other.stderr.contains("quickstart/score_test is a 'score-table' artifact (from score): serve --system takes an rl-train result"), other.stderr)
        let unknown = try CLI.run(["serve", "--system", "quickstart/rl_trian", "--port", "0"], in: dir)
        XCTAssertNotEqual(unknown.status, 0)
        XCTAssertTrue(unknown.stderr.contains("'quickstart/rl_trian' is neither a stage with a stored result nor an artifact digest"), unknown.stderr)

        let routeOnly = try ServeSystemTests.server(["--system", "quickstart/sft_train"], in: dir)
        let agentA = try CLI.run(["show", "quickstart/agent_a", "--path"], in: dir).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        let agentB = try CLI.run(["show", "quickstart/agent_b", "--path"], in: dir).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        let dialogue = ["--retriever", "lexical", "--prompts", "embedded", "--questions", "quickstart/world_test"]
        let answering = try ServeSystemTests.server(["--system", "quickstart/sft_train", "--model", "agent_a=\(agentA)", "--model", "agent_b=\(agentB)", "--max-queue", "1"] + dialogue,
                                   in: dir)
        // The candidates as servers of their own (what vLLM would be): the same answers, no updates.
        let serverA = try ServeSystemTests.server(["--model", agentA, "--name", "agent_a"], in: dir), serverB = try ServeSystemTests.server(["--model", agentB, "--name", "agent_b"], in: dir)
        let remote = try ServeSystemTests.server(["--system", "quickstart/sft_train", "--model", "agent_a=\(serverA.base)/v1", "--model", "agent_b=\(serverB.base)/v1"] + dialogue,
                                in: dir)
        defer { for s in [routeOnly, answering, remote, serverA, serverB] { s.stop() } }
        let script = """
            import json, sys, threading, openai
            questions = [json.loads(l)["question"] for l in open(sys.argv[4])]
            q = questions[0]
            out = {}
            for name, base in [("route_only", sys.argv[1]), ("answering", sys.argv[2])]:
                client = openai.OpenAI(base_url=base + "/v1", api_key="none", max_retries=0)
                r = client.chat.completions.create(model="haps-route", messages=[{"role": "user", "content": q}])
                out[name] = {"route": r.model_extra["haps"]["action"]}
                for lora in [None, True]:
                    try:
                        extra = {} if lora is None else {"extra_body": {"haps": {"lora": lora}}}
                        r = client.chat.completions.create(model="haps", messages=[{"role": "user", "content": q}], **extra)
                        out[name][str(lora)] = [200, r.model_extra["haps"]["lora"], r.model_extra["haps"]["action"]]
                    except openai.APIStatusError as e:
                        out[name][str(lora)] = [e.status_code, e.body["message"]]
            def replies(base, q):
                client = openai.OpenAI(base_url=base + "/v1", api_key="none", max_retries=0)
                r = client.chat.completions.create(model="haps", messages=[{"role": "user", "content": q}], extra_body={"haps": {"transcript": True}})
                return [r.choices[0].message.content] + [t["reply"] for t in r.model_extra["haps"]["transcript"]]
            out["local"] = [replies(sys.argv[2], q) for q in questions[:3]]
            out["remote"] = [replies(sys.argv[3], q) for q in questions[:3]]
            # --max-queue 1: questions beyond the one being answered get 429.
            statuses, lock = [], threading.Lock()
            def busy():
                client = openai.OpenAI(base_url=sys.argv[2] + "/v1", api_key="none", max_retries=0)
                try:
                    client.chat.completions.create(model="haps", messages=[{"role": "user", "content": q}])
                    s = 200
                except openai.APIStatusError as e:
                    s = e.status_code
                with lock: statuses.append(s)
            threads = [threading.Thread(target=busy) for _ in range(8)]
            for t in threads: t.start()
            for t in threads: t.join()
            out["busy"] = statuses
            print(json.dumps(out))
            """
        let questionsFile = try CLI.run(["show", "quickstart/world_test", "--path"], in: dir).stdout.trimmingCharacters(in: .whitespacesAndNewlines) + "/questions.jsonl"
        let p = try Python.run(script, arguments: [routeOnly.base, answering.base, remote.base, questionsFile], requiring: ["openai"])
        XCTAssertEqual(p.status, 0, p.stderr)
        let out = try ServeSystemTests.object(p.stdout)
        let ro = try XCTUnwrap(out["route_only"] as? [String: Any]), an = try XCTUnwrap(out["answering"] as? [String: Any])
        XCTAssertEqual(ro["route"] as? Int, an["route"] as? Int)
        XCTAssertEqual((ro["None"] as? [Any])?.first as? Int, 400)
        XCTAssertTrue(((ro["None"] as? [Any])?.last as? String)?.contains("no model for candidates agent_a, agent_b") == true, "\(ro)")
        XCTAssertEqual((an["None"] as? [Any])?.first as? Int, 200)
        XCTAssertEqual((an["None"] as? [Any])?[1] as? Bool, false, "an sft-train result answers without updates")
        XCTAssertEqual((an["None"] as? [Any])?[2] as? Int, an["route"] as? Int)
        XCTAssertTrue(((an["True"] as? [Any])?.last as? String)?.contains("is an sft-train result (a router, no generators)") == true, "\(an)")
        XCTAssertEqual(out["remote"] as? [[String]], out["local"] as? [[String]], "candidates behind servers answer as local ones")
        let busy = try XCTUnwrap(out["busy"] as? [Int])
        XCTAssertTrue(busy.contains(200) && busy.contains(429) && busy.allSatisfy { $0 == 200 || $0 == 429 }, "\(busy)")
    }
}
