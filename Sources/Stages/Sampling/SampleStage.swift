#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
public import LLM
public import Pipeline

/// The `sample` stage (the reference's generate_baselines.py; docs/sampling.md): the teacher/student dialogue for every question ×
/// role assignment, against the spec's model and retriever resources. Each finished item is
/// journaled (a killed run resumes; a failed item is recorded with its error and retried by the
/// next run); every model call is memoised in the store, so a rerun asks no server anything it
/// was asked before. Output kind `samples`: `samples.jsonl` (rows with token counts),
/// `baseline.jsonl` (the reference's format), `transcripts.jsonl` (every prompt and reply).
public struct SampleStage: StageType {
    public struct Params: StageParameters {
        /// The candidates (any backend), retriever, budget, prompts and reply length.
        var dialogue = DialogueParams()
        @Param("dialogues in flight; requests in flight are each model's 'concurrency'") var workers = 128
        @Param("0 is greedy, as the reference; above 0, calls are sampled, each candidate of a question drawing its own stream from the stage's seed") var temperature = 0.0
        @Param("nucleus sampling's mass") var top_p = 1.0
        public init() {}
    }

    public static let name = "sample"
    public static let version = 4
    public static let summary = "Run the teacher/student dialogue for every question and role assignment."

    public static func ports(_ p: Params) -> StagePorts {
        StagePorts(inputs: [InputPort("questions", kind: .questions, help: "HotpotQA questions", check: HotpotQA.inputCheck()),
                            InputPort("prompts", kind: .any, optional: true, help: "a prompt-set directory (default: the standard set)")] +
                       p.dialogue.candidates.map { InputPort("model_\($0)", kind: .model, optional: true,
                                                    help: "a model directory from the pipeline (train-agent) for candidate \($0): its resource is then local") },
                   output: .samples)
    }

    public static func resources(_ p: Params) -> [String] { p.dialogue.resources }

    public static func validate(_ p: Params, at path: JSONPath) -> [SpecProblem] {
        var problems = p.dialogue.validate(at: path, requireCandidates: true)
        if p.workers < 1 { problems.append(SpecProblem(path.appending("workers"), "expected a positive integer")) }
        return problems
    }

    public static func run(_ p: Params, _ context: StageContext) throws {
        let questions = try HotpotQA.load(questionsOf: context.inputs["questions"]!)
        let prompts = try DialogueParams.promptsInput(context)
        let resources = context.resources
        let unreachable = Backends.unreachable(resources)
        if !unreachable.isEmpty {
            throw Backends.ConfigError(resource: "servers", message: "\(unreachable.count) endpoint\(unreachable.count == 1 ? " does" : "s do") not answer:\n  " + unreachable.joined(separator: "\n  "))
        }
        let counter = CallCounter()
        let limits = EndpointLimits()
        let models: [any ChatModel] = try p.dialogue.candidates.map { c in
            var resource = resources["models.\(c)"]!
            if let input = context.inputs["model_\(c)"] {
                // A model trained by the pipeline: local, named with its content digest so that the
                // memo never replays another version's calls.
                resource = .object((resource.objectMembers ?? []).filter { $0.key != "path" && $0.key != "backend" && $0.key != "model" } +
                                   [("backend", "local"), ("path", .string(input.directory)),
                                    ("model", .string("\(DialogueParams.candidateName(resources["models.\(c)"], c))@\(input.digest.hex.prefix(16))"))])
            }
            return MemoizedChatModel(try Backends.model(resource, name: "models.\(c)", limits: limits, baseDirectory: context.baseDirectory),
                                     store: context.store, counter: counter)
        }
        // USD per million tokens, from each model resource's optional "price": {"prompt", "completion"}.
        let prices: [DialogueSampler.Price?] = p.dialogue.candidates.map { c in
            guard let pr = resources["models.\(c)"]?["price"], let a = pr["prompt"]?.doubleValue, let b = pr["completion"]?.doubleValue else { return nil }
            return DialogueSampler.Price(prompt: a, completion: b)
        }
        let sampler = try p.dialogue.sampler(context, settings: GenerationSettings(temperature: p.temperature, topP: p.top_p,
                                                                                   seed: Int(truncatingIfNeeded: context.seed)),
                                             prompts: prompts, prices: prices)
        let space = sampler.space

        let journal = try context.journal("items")
        let failures = try context.journal("failures")
        let itemCount = questions.count * space.count
        @Sendable func key(_ i: Int) -> String { "q\(i / space.count)a\(i % space.count)" }
        let pending = (0..<itemCount).filter { !journal.contains(key($0)) }
        context.progress.setTotal(itemCount, unit: "dialogues")
        context.progress.resume(completed: itemCount - pending.count)
        if pending.count < itemCount { context.log("resuming: \(itemCount - pending.count) of \(itemCount) dialogues already done") }
        let started = Date()
        let failed = ItemWorkers.run(pending, workers: p.workers, cancellation: context.cancellation) { i in
            do {
                var seeded = sampler
                if p.temperature > 0, let seed = sampler.dialogue.settings.seed {
                    seeded.dialogue.settings.seed = DialogueSampler.questionSeed(seed, qid: i / space.count)
                }
                let sample = try seeded.run(questions[i / space.count], qid: i / space.count, action: i % space.count, models: models)
                try journal.append(key: key(i), value: sample.outputLines)
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
