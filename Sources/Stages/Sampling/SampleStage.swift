#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
public import LLM
public import Pipeline

/// The `sample` stage (REFERENCE.md §4): the teacher/student dialogue for every question ×
/// role assignment, against the spec's model and retriever resources. Each finished item is
/// journaled (a killed run resumes; a failed item is recorded with its error and retried by the
/// next run); every model call is memoised in the store, so a rerun asks no server anything it
/// was asked before. Output kind `samples`: `samples.jsonl` (rows with token counts),
/// `baseline.jsonl` (the reference's format), `transcripts.jsonl` (every prompt and reply).
public struct SampleStage: StageType {
    public struct Params: Decodable, Sendable {
        var candidates: [String]
        var budget: Int?
        var retriever: String?
        var workers: Int?
        var temperature: Double?
        var top_p: Double?
        var max_tokens: Int?
        var prompts: String?
    }

    public static let name = "sample"
    public static let version = 2
    public static let summary = "Run the teacher/student dialogue for every question and role assignment."
    public static let parameters = [
        ParameterInfo("candidates", "model resources (under resources.models), candidate 0 first"),
        ParameterInfo("budget", "search steps per question (default 3)"),
        ParameterInfo("retriever", "retriever resource (default 'retriever')"),
        ParameterInfo("workers", "dialogues in flight (default 128); requests in flight are each model's 'concurrency'"),
        ParameterInfo("temperature", "default 0 (greedy), as the reference"),
        ParameterInfo("top_p", "default 1"),
        ParameterInfo("max_tokens", "default 256"),
        ParameterInfo("prompts", "standard (default) or embedded: the built-in prompt set, when no prompts input is given"),
    ]

    public static func ports(_ p: Params) -> StagePorts {
        StagePorts(inputs: [InputPort("questions", kind: HotpotQA.kind, help: "HotpotQA questions"),
                            InputPort("prompts", kind: .any, optional: true, help: "a prompt-set directory (default: the standard set)")] +
                       p.candidates.map { InputPort("model_\($0)", kind: "model", optional: true,
                                                    help: "a model directory from the pipeline (train-agent) for candidate \($0): its resource is then local") },
                   output: Samples.kind)
    }

    public static func resources(_ p: Params) -> [String] { p.candidates.map { "models.\($0)" } + [p.retriever ?? "retriever"] }

    public static func validate(_ p: Params, at path: JSONPath) -> [SpecProblem] {
        var problems: [SpecProblem] = []
        if p.candidates.isEmpty { problems.append(SpecProblem(path.appending("candidates"), "needs at least one candidate")) }
        if let b = p.budget, b < 0 { problems.append(SpecProblem(path.appending("budget"), "expected a non-negative integer")) }
        if let w = p.workers, w < 1 { problems.append(SpecProblem(path.appending("workers"), "expected a positive integer")) }
        if let s = p.prompts, s != "standard" && s != "embedded" {
            problems.append(SpecProblem(path.appending("prompts"), "expected standard or embedded" + NearestName.hint(s, among: ["standard", "embedded"])))
        }
        return problems
    }

    /// The name written in the reference's `teacher`/`student` fields: the resource's `name`, or
    /// the last part of its `model` ("meta-llama/Llama-3.1-8B-Instruct" → "Llama-3.1-8B-Instruct").
    static func displayName(_ r: JSONValue?, _ key: String) -> String {
        if let n = r?["name"]?.stringValue { return n }
        if let m = r?["model"]?.stringValue { return m.split(separator: "/").last.map(String.init) ?? m }
        return key
    }

    /// An item's lines of `samples.jsonl`, `baseline.jsonl` (the reference's fields, order and
    /// float formatting) and `transcripts.jsonl`, joined by newlines (JSON text has none).
    static func outputLines(row: JSONValue, turns: JSONValue) -> [UInt8] {
        let ref: [(String, JSONValue)] = ["qid", "action_index", "question", "teacher", "student", "answer", "ground_truth",
                                           "f1", "precision", "recall", "em"].map { ($0, row[$0]!) }
        let baseline = PythonJSON.dumps(.object(ref.map { ($0.0, $0.0 == "f1" || $0.0 == "precision" || $0.0 == "recall"
                                                          ? .float($0.1.doubleValue!) : PythonJSON.value($0.1)) }), indent: nil)
        let transcript = JSONValue.object(["qid": row["qid"]!, "action_index": row["action_index"]!, "turns": turns]).canonical
        return Array((row.canonical + "\n" + baseline + "\n" + transcript).utf8)
    }

    public static func run(_ p: Params, _ context: StageContext) throws {
        let questionsInput = context.inputs["questions"]!
        let questionsPath = questionsInput.manifest.files["questions.jsonl"] != nil ? questionsInput.path(of: "questions.jsonl") : questionsInput.path
        let questions = try HotpotQA.load(questionsPath)
        let prompts: PromptSet = try context.inputs["prompts"].map { try PromptSet.load(directory: $0.directory) } ??
            (p.prompts.map { $0 == "embedded" ? PromptSet.embedded : PromptSet.standard } ?? .standard)
        let resources = context.resources
        let unreachable = Backends.unreachable(resources)
        if !unreachable.isEmpty {
            throw Backends.ConfigError(resource: "servers", message: "\(unreachable.count) endpoint\(unreachable.count == 1 ? " does" : "s do") not answer:\n  " + unreachable.joined(separator: "\n  "))
        }
        let counter = CallCounter()
        let limits = EndpointLimits()
        let models = try p.candidates.map { c in
            var resource = resources["models.\(c)"]!
            if let input = context.inputs["model_\(c)"] {
                // A model trained by the pipeline: local, named with its content digest so that the
                // memo never replays another version's calls.
                resource = .object((resource.objectMembers ?? []).filter { $0.key != "path" && $0.key != "backend" && $0.key != "model" } +
                                   [("backend", "local"), ("path", .string(input.directory)),
                                    ("model", .string("\(displayName(resources["models.\(c)"], c))@\(input.digest.hex.prefix(16))"))])
            }
            return MemoizedChatModel(try Backends.model(resource, name: "models.\(c)", limits: limits, baseDirectory: context.baseDirectory),
                                     store: context.store, counter: counter)
        }
        let retrieverName = p.retriever ?? "retriever"
        let retriever = try Backends.retriever(resources[retrieverName]!, name: retrieverName, baseDirectory: context.baseDirectory)
        let names = p.candidates.map { displayName(resources["models.\($0)"], $0) }
        // USD per million tokens, from each model resource's optional "price": {"prompt", "completion"}.
        let prices: [(prompt: Double, completion: Double)?] = p.candidates.map { c in
            guard let pr = resources["models.\(c)"]?["price"], let a = pr["prompt"]?.doubleValue, let b = pr["completion"]?.doubleValue else { return nil }
            return (a, b)
        }
        let space = ActionSpace(candidates: p.candidates.count)
        let dialogue = Dialogue(prompts: prompts, budget: p.budget ?? 3,
                                settings: GenerationSettings(temperature: p.temperature ?? 0, topP: p.top_p ?? 1, maxTokens: p.max_tokens ?? 256, seed: 43))

        let journal = try context.journal("items")
        let failures = try context.journal("failures")
        let itemCount = questions.count * space.count
        @Sendable func key(_ i: Int) -> String { "q\(i / space.count)a\(i % space.count)" }
        let pending = (0..<itemCount).filter { !journal.contains(key($0)) }
        context.progress.setTotal(itemCount, unit: "dialogues")
        context.progress.resume(completed: itemCount - pending.count)
        if pending.count < itemCount { context.log("resuming: \(itemCount - pending.count) of \(itemCount) dialogues already done") }
        let started = Date()
        let failed = ItemWorkers.run(pending, workers: p.workers ?? 128, cancellation: context.cancellation) { i in
            let q = questions[i / space.count], action = i % space.count
            let roles = space.assignment(of: action)  // [teacher, student]
            do {
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
                    "qid": .number(Double(i / space.count)), "action_index": .number(Double(action)), "question": .string(q.question),
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
                try journal.append(key: key(i), value: outputLines(row: row, turns: turns))
            } catch {
                try? failures.append(key: key(i), json: .string(String(describing: error)))
                throw error
            }
            context.progress.advance()
            let elapsed = Date().timeIntervalSince(started)
            context.progress.setStatus("\(counter.made) calls made, \(counter.replayed) replayed" +
                                       (elapsed > 1 ? ", \(Format.fixed(Double(counter.made) / elapsed, 1)) calls/s" : ""))
        }
        if context.cancellation.isCancelled { throw CancellationError() }
        if let first = failed.first {
            throw Backends.ConfigError(resource: "sample", message: "\(failed.count) of \(itemCount) dialogues failed (the rest are kept; a rerun retries only the failed ones). First, \(key(first.item)): \(first.error)")
        }
        // Each journal record holds the item's three output lines, written when it finished:
        // putting the tables together is concatenation, in canonical (question, action) order.
        var samples: [UInt8] = [], baseline: [UInt8] = [], transcripts: [UInt8] = []
        for i in 0..<itemCount {
            guard let record = journal.value(key(i)) else { continue }
            let lines = record.split(separator: 0x0A, maxSplits: 2, omittingEmptySubsequences: false)
            guard lines.count == 3 else { throw Backends.ConfigError(resource: "sample", message: "journal record \(key(i)) in \(context.workDirectory) does not hold three lines (written by another version?); delete that directory to sample again") }
            samples += lines[0]; samples.append(0x0A)
            baseline += lines[1]; baseline.append(0x0A)
            transcripts += lines[2]; transcripts.append(0x0A)
        }
        try FileIO.writeAtomically(samples, to: context.outputDirectory + "/samples.jsonl")
        try FileIO.writeAtomically(baseline, to: context.outputDirectory + "/baseline.jsonl")
        try FileIO.writeAtomically(transcripts, to: context.outputDirectory + "/transcripts.jsonl")
        let tokens = counter.tokens
        context.log("\(itemCount) dialogues; \(counter.made) model calls made, \(counter.replayed) replayed; \(tokens.prompt) prompt + \(tokens.completion) completion tokens")
    }
}
