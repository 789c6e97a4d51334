public import LLM
public import Pipeline
import Threading

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
    /// (`models[i]` is candidate i), each behind its own `CandidateStream`: sampled calls of
    /// different candidates draw different streams, from the dialogue settings' seed.
    public func run(_ q: HotpotQuestion, qid: Int, action: Int, models: [any ChatModel]) throws -> Sample {
        precondition(models.count == names.count, "\(models.count) models for \(names.count) candidates")
        let roles = space.assignment(of: action)  // [teacher, student]
        // Both roles of one candidate share its stream (one counter).
        var streams: [Int: CandidateStream] = [:]
        for c in roles where streams[c] == nil { streams[c] = CandidateStream(models[c], candidate: c) }
        let r = try dialogue.run(question: q.question, paragraphs: q.paragraphs, student: streams[roles[1]]!,
                                 teacher: streams[roles[0]]!, retriever: retriever)
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

extension DialogueSampler {
    /// The dialogue seed of question `qid` for a stage whose calls are sampled with `seed`
    /// (`sample` with temperature > 0): each question its own streams, and every role
    /// assignment of one question the same ones, so that a candidate's first calls (the
    /// student's first turns, which do not depend on the teacher) are one call, made once.
    public static func questionSeed(_ seed: Int, qid: Int) -> Int { CandidateStream.derivedSeed(seed, stream: qid) }
}

/// One candidate's calls within one dialogue, both of its roles counted together (the
/// dialogue sampler makes one per chosen candidate). A sampled call (temperature > 0) numbered
/// n draws its uniforms from `callSeed(dialogue seed, candidate, n)`: two different candidates
/// of a dialogue never share a stream (the same seed would make them draw the same uniforms
/// call for call), no two calls of one candidate reuse one, and every stream is fixed by the
/// dialogue's seed. A greedy call, or one without a seed, is passed on unchanged.
public final class CandidateStream: ChatModel, @unchecked Sendable {
    public let base: any ChatModel
    public let candidate: Int
    private let lock = Lock()
    private var calls = 0

    public var identity: String { base.identity }
    public var adapter: String? { base.adapter }

    public init(_ base: any ChatModel, candidate: Int) { self.base = base; self.candidate = candidate }

    public func chat(_ messages: [ChatMessage], settings: GenerationSettings) throws -> ChatReply {
        var settings = settings
        let number = lock.withLock { defer { calls += 1 }; return calls }
        if settings.temperature > 0, let seed = settings.seed { settings.seed = CandidateStream.callSeed(seed, candidate: candidate, call: number) }
        return try base.chat(messages, settings: settings)
    }

    /// The seed of call `call` of candidate `candidate` in a dialogue seeded `seed`: the
    /// candidate's stream drawn from the dialogue's, then the call's from the candidate's.
    public static func callSeed(_ seed: Int, candidate: Int, call: Int) -> Int {
        derivedSeed(derivedSeed(seed, stream: candidate), stream: call)
    }

    /// The first draw of SplitMix64 stream `stream` of `seed` (`SeededRandom(seed:stream:)`,
    /// which mixes the stream number first, so that nearby numbers give unrelated seeds), kept
    /// below 2^53 so that a JSON request body carries it exactly.
    static func derivedSeed(_ seed: Int, stream: Int) -> Int {
        var r = SeededRandom(seed: UInt64(bitPattern: Int64(seed)), stream: UInt64(bitPattern: Int64(stream)))
        return Int(r.next() >> 11)
    }
}
