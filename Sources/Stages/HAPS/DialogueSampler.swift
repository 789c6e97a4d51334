public import LLM
public import Pipeline

/// One question under one role assignment, end to end: the dialogue, the answer's metrics,
/// each role's token usage and cost, and the output lines (`samples.jsonl`, the reference's
/// `baseline.jsonl`, `transcripts.jsonl`). `sample` runs it for every question × action;
/// `evaluate` and `rl-train` run it for the actions a router picks, with any `ChatModel`
/// (a memoised backend, or a local model under a LoRA update).
///
///     let sampler = DialogueSampler(dialogue: Dialogue(budget: 3), retriever: bm25, names: ["llama", "qwen"])
///     let s = try sampler.run(q, qid: 7, action: 2, models: [llama, qwen])
///     s.metrics.f1; s.row["teacher_completion_tokens"]
public struct DialogueSampler: Sendable {
    /// USD per million tokens.
    public struct Price: Sendable, Equatable {
        public var prompt: Double, completion: Double
        public init(prompt: Double, completion: Double) { self.prompt = prompt; self.completion = completion }
    }

    public var dialogue: Dialogue
    public var retriever: any Retriever
    /// The name written in the rows' `teacher`/`student` fields, per candidate.
    public var names: [String]
    /// Per candidate; the cost is left out of a row when either role's candidate has none.
    public var prices: [Price?]
    public var space: ActionSpace

    public init(dialogue: Dialogue, retriever: any Retriever, names: [String], prices: [Price?]? = nil) {
        self.dialogue = dialogue; self.retriever = retriever; self.names = names
        self.prices = prices ?? Array(repeating: nil, count: names.count)
        self.space = ActionSpace(candidates: names.count)
    }

    /// What one dialogue gave.
    public struct Sample: Sendable {
        public var result: DialogueResult
        public var metrics: AnswerMetrics
        /// The `samples.jsonl` row: the reference's fields plus tokens, calls and cost.
        public var row: JSONValue
        /// Every call's prompt and reply, for `transcripts.jsonl`.
        public var turns: JSONValue

        /// The row, its `baseline.jsonl` line (the reference's fields, order and float
        /// formatting) and its `transcripts.jsonl` line, joined by newlines (JSON text has none).
        public var outputLines: [UInt8] {
            let ref: [(String, JSONValue)] = ["qid", "action_index", "question", "teacher", "student", "answer", "ground_truth",
                                               "f1", "precision", "recall", "em"].map { ($0, row[$0]!) }
            // The metrics are Python floats, except a zero one: the reference returns its
            // ZERO_METRIC, (0, 0, 0) as ints, so it is written `0`, not `0.0`.
            let baseline = PythonJSON.dumps(.object(ref.map { name, value in
                let isMetric = name == "f1" || name == "precision" || name == "recall"
                return (name, isMetric && value.doubleValue != 0 ? .float(value.doubleValue!) : PythonJSON.value(value))
            }), indent: nil)
            let transcript = JSONValue.object(["qid": row["qid"]!, "action_index": row["action_index"]!, "turns": turns]).canonical
            return Array((row.canonical + "\n" + baseline + "\n" + transcript).utf8)
        }
    }

    /// Runs question `q` (number `qid` of its file) with the candidates of `action`
    /// (`models[i]` is candidate i).
    public func run(_ q: HotpotQuestion, qid: Int, action: Int, models: [any ChatModel]) throws -> Sample {
        precondition(models.count == names.count, "\(models.count) models for \(names.count) candidates")
        let roles = space.assignment(of: action)  // [teacher, student]
        let r = try dialogue.run(question: q.question, paragraphs: q.paragraphs, student: models[roles[1]],
                                 teacher: models[roles[0]], retriever: retriever)
        let m = AnswerMetrics(prediction: r.answer, groundTruth: q.answer ?? "")
        var usage: [String: JSONValue] = [:]
        var cost: Double? = 0
        for (ri, role) in [DialogueTurn.Role.teacher, .student].enumerated() {
            let turns = r.turns.filter { $0.role == role }
            let pt = turns.reduce(0) { $0 + $1.promptTokens }, ct = turns.reduce(0) { $0 + $1.completionTokens }
            usage["\(role.rawValue)_prompt_tokens"] = .number(Double(pt))
            usage["\(role.rawValue)_completion_tokens"] = .number(Double(ct))
            if let price = prices[roles[ri]], let c = cost { cost = c + (Double(pt) * price.prompt + Double(ct) * price.completion) / 1e6 } else { cost = nil }
        }
        if let cost { usage["cost"] = .number(cost) }
        let row: JSONValue = .object(usage.merging([
            "qid": .number(Double(qid)), "action_index": .number(Double(action)), "question": .string(q.question),
            "teacher": .string(names[roles[0]]), "student": .string(names[roles[1]]), "answer": .string(r.answer),
            "ground_truth": .string(q.answer ?? ""), "f1": .number(m.f1), "precision": .number(m.precision),
            "recall": .number(m.recall), "em": .number(Double(m.em)), "finished": .bool(r.finished),
            "calls": .number(Double(r.turns.count)), "tokens": .number(Double(r.promptTokens + r.completionTokens)),
            "prompt_tokens": .number(Double(r.promptTokens)), "completion_tokens": .number(Double(r.completionTokens)),
        ]) { a, _ in a })
        let turns: JSONValue = .array(r.turns.map { t in
            .object(["step": .number(Double(t.step)), "role": .string(t.role.rawValue), "call": .string(t.call.rawValue),
                     "prompt": .string(t.prompt), "reply": .string(t.reply)])
        })
        return Sample(result: r, metrics: m, row: row, turns: turns)
    }
}
