public import JSON
public import Pipeline

/// The evaluation page's data: the report, the rows' intervals drawn, the cost–quality plane,
/// the questions; and for one question each row's action, answer and F1, and the dialogue of
/// the action a row chose (the live run's for rows run live, else the sampled one).
extension StoreBrowser {
    /// What an evaluation's page needs: `results.json`, the assignments of its actions, the
    /// questions (id, text, type, gold, each row's action and F1), and the two pictures.
    public func evaluation(_ target: String) throws -> JSONValue {
        let digest = try self.digest(target)
        let m = try manifest(digest)
        guard m.kind.name == "evaluation" else { throw Failure.bad("\(digest.short) is a '\(m.kind.name)' artifact, not an evaluation") }
        let results = try json(digest, "results.json")
        let perQuestion = try lines(digest, "per_question.jsonl")
        let svg = (try? file(digest.hex, name: "cost_quality.svg")).map { String(decoding: $0.bytes, as: UTF8.self) }
        let curves = (try? file(digest.hex, name: "cost_curves.svg")).map { String(decoding: $0.bytes, as: UTF8.self) }
        let share = (try? file(digest.hex, name: "strong_share.svg")).map { String(decoding: $0.bytes, as: UTF8.self) }
        return .object([
            ("digest", .string(digest.hex)), ("name", store.resultNames()[digest].map(JSONValue.string) ?? .null),
            ("results", results), ("actions", .array(assignments(of: digest).map(JSONValue.string))),
            ("questions", .array(perQuestion)), ("intervals_svg", .string(IntervalPicture(results: results).svg)),
            ("cost_quality_svg", svg.map(JSONValue.string) ?? .null), ("cost_curves_svg", curves.map(JSONValue.string) ?? .null),
            ("strong_share_svg", share.map(JSONValue.string) ?? .null),
            ("live", .bool(m.files["live_transcripts.jsonl"] != nil)),
        ])
    }

    /// One question of an evaluation: its line of `per_question.jsonl`, the gold answer, and per
    /// row its action, who played each role, F1 and answer (a live row's own; otherwise the
    /// sampled dialogue's of that action).
    public func question(_ target: String, index: Int) throws -> JSONValue {
        let digest = try self.digest(target)
        let perQuestion = try lines(digest, "per_question.jsonl")
        guard perQuestion.indices.contains(index) else {
            throw Failure.notFound("question \(index) is not in this evaluation (it has \(perQuestion.count), from 0)")
        }
        let line = perQuestion[index]
        let actions = assignments(of: digest)
        let samples = sampled(digest, question: index)
        let results = try json(digest, "results.json")
        var rows: [JSONValue] = []
        for r in results["rows"]?.arrayValue ?? [] {
            guard let name = r["name"]?.stringValue, let cell = line[name] else { continue }
            let action = cell["action"]?.intValue
            let answer = cell["answer"]?.stringValue ?? action.flatMap { samples.baseline[$0]?["answer"]?.stringValue }
            rows.append(.object([("name", .string(name)), ("label", r["label"] ?? .null), ("action", action.map { .number(Double($0)) } ?? .null),
                                 ("assignment", action.flatMap { actions.indices.contains($0) ? .string(actions[$0]) : nil } ?? .null),
                                 ("f1", cell["f1"] ?? .null), ("answer", answer.map(JSONValue.string) ?? .null),
                                 ("live", .bool(cell["answer"] != nil)),
                                 ("dialogue", .bool(cell["answer"] != nil || (action.map { samples.transcripts[$0] != nil } ?? false)))]))
        }
        let gold = line["gold"]?.stringValue ?? samples.baseline.values.first?["ground_truth"]?.stringValue
        return .object([("index", .number(Double(index))), ("id", line["id"] ?? .null), ("question", line["question"] ?? .null),
                        ("type", line["type"] ?? .null), ("gold", gold.map(JSONValue.string) ?? .null), ("rows", .array(rows))])
    }

    /// The dialogue `row` ran for question `index`: from `live_transcripts.jsonl` for a row run
    /// live, else the sampled transcript of the action the row chose.
    public func dialogue(_ target: String, index: Int, row: String) throws -> JSONValue {
        let digest = try self.digest(target)
        let perQuestion = try lines(digest, "per_question.jsonl")
        guard perQuestion.indices.contains(index), let cell = perQuestion[index][row] else {
            throw Failure.notFound("no row '\(row)' for question \(index) in this evaluation")
        }
        let actions = assignments(of: digest)
        func assignment(_ a: Int?) -> JSONValue { a.flatMap { actions.indices.contains($0) ? .string(actions[$0]) : nil } ?? .null }
        if cell["answer"] != nil, let live = try? lines(digest, "live_transcripts.jsonl"),
           let d = live.first(where: { $0["row"]?.stringValue == row && $0["question_index"]?.intValue == index }) {
            return .object([("source", "live"), ("row", .string(row)), ("action", d["action"] ?? .null), ("assignment", assignment(d["action"]?.intValue)),
                            ("answer", d["answer"] ?? .null), ("turns", d["turns"] ?? .array([]))])
        }
        guard let action = cell["action"]?.intValue else { throw Failure.notFound("row '\(row)' chose no single action (an expectation over actions)") }
        let samples = sampled(digest, question: index)
        guard let t = samples.transcripts[action] else {
            throw Failure.notFound("the sampled dialogues of this evaluation's questions are not in the store (its scores' samples artifact is missing or has no transcripts)")
        }
        return .object([("source", "samples"), ("row", .string(row)), ("action", .number(Double(action))), ("assignment", assignment(action)),
                        ("answer", samples.baseline[action]?["answer"] ?? .null), ("samples", samples.digest.map { .string($0.hex) } ?? .null),
                        ("turns", t["turns"] ?? .array([]))])
    }

    /// The evaluation page as one file (`haps-pipe report --html`): the page with the
    /// evaluation, every question and every dialogue a row chose inside it (sampled turns
    /// without their prompts, to keep it small), opening on the evaluation.
    public func reportPage(_ target: String) throws -> String {
        let digest = try self.digest(target)
        let ev = try evaluation(digest.hex)
        var data: [(path: String, value: JSONValue)] = [("/api/evaluation?digest=\(digest.hex)", ev)]
        let count = ev["questions"]?.arrayValue?.count ?? 0
        for i in 0..<count {
            let q = try question(digest.hex, index: i)
            data.append(("/api/question?digest=\(digest.hex)&index=\(i)", q))
            for r in q["rows"]?.arrayValue ?? [] where r["dialogue"]?.boolValue == true {
                guard let row = r["name"]?.stringValue, var d = try? dialogue(digest.hex, index: i, row: row) else { continue }
                let turns = (d["turns"]?.arrayValue ?? []).map { $0.removing("prompt") }
                d = d.setting(["turns"], to: .array(turns))
                data.append(("/api/dialogue?digest=\(digest.hex)&index=\(i)&row=\(StoreBrowser.queryEscaped(row))", d))
            }
        }
        return BrowserAssets.page(data: data, start: "#/eval/\(digest.hex)")
    }

    /// `s` as JavaScript's encodeURIComponent writes it (the page's script builds its paths so).
    static func queryEscaped(_ s: String) -> String {
        var out = ""
        for b in s.utf8 {
            let c = Character(Unicode.Scalar(b))
            if b < 128 && (c.isLetter || c.isNumber || "-_.!~*'()".contains(c)) { out.append(c) } else { out += "%" + (b < 16 ? "0" : "") + String(b, radix: 16, uppercase: true) }
        }
        return out
    }

    // MARK: reading an evaluation's neighbours

    func manifest(_ d: Digest) throws -> ArtifactManifest {
        do { return try store.manifest(d) } catch { throw Failure.notFound(error.description) }
    }

    func json(_ d: Digest, _ name: String) throws -> JSONValue {
        let bytes = try file(d.hex, name: name).bytes
        do { return try JSONParser.parse(bytes: bytes) } catch { throw Failure.bad("\(d.short)/\(name) is not valid JSON: \(error)") }
    }

    func lines(_ d: Digest, _ name: String) throws -> [JSONValue] {
        let text = String(decoding: try file(d.hex, name: name).bytes, as: UTF8.self)
        return try FileIO.lines(text).enumerated().compactMap { i, l in
            guard !l.isEmpty else { return nil }
            do { return try JSONParser.parse(String(l)) } catch { throw Failure.bad("\(d.short)/\(name):\(i + 1) is not valid JSON: \(error)") }
        }
    }

    /// The input `port` of the action that made `d`.
    func input(_ port: String, of d: Digest) -> Digest? {
        producer(of: d)?.payload["inputs"]?[port]?.stringValue.flatMap(Digest.init(hex:))
    }

    /// "teacher agent_a, student agent_b" per action, from the evaluation's score table.
    func assignments(of evaluation: Digest) -> [String] {
        guard let scores = input("scores", of: evaluation), let summary = try? json(scores, "summary.json") else { return [] }
        return (summary["actions"]?.arrayValue ?? []).map { $0["assignment"]?.stringValue ?? "" }
    }

    /// The sampled dialogues of question `q` behind an evaluation's score table (evaluation →
    /// scores → samples): its baseline rows and transcripts by action.
    func sampled(_ evaluation: Digest, question q: Int) -> (digest: Digest?, baseline: [Int: JSONValue], transcripts: [Int: JSONValue]) {
        guard let scores = input("scores", of: evaluation), let samples = input("samples", of: scores) else { return (nil, [:], [:]) }
        func byAction(_ name: String) -> [Int: JSONValue] {
            var out: [Int: JSONValue] = [:]
            guard let text = (try? file(samples.hex, name: name)).map({ String(decoding: $0.bytes, as: UTF8.self) }) else { return out }
            let prefix = "\"qid\": \(q),", compact = "\"qid\":\(q),"
            for l in FileIO.lines(text) where l.contains(prefix) || l.contains(compact) {
                guard let v = try? JSONParser.parse(String(l)), v["qid"]?.intValue == q, let a = v["action_index"]?.intValue else { continue }
                out[a] = v
            }
            return out
        }
        return (samples, byAction("baseline.jsonl"), byAction("transcripts.jsonl"))
    }
}
