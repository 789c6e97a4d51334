#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
public import LLM
import NN
public import Pipeline

/// The `rl-train` stage: the reference's joint RL (`rl_batch.py`; docs/routing.md, Joint RL) of the
/// SFT router and one parameter generator per candidate, a `JointRLTrainer` step per training
/// question in the reference's epoch order; every `eval_interval` questions the router and
/// generators route and adapt the valid questions (greedy, the updates applied) and the valid
/// F1 sum decides: a better one is kept (and test evaluated, when given), and
/// `early_patience_evals` evaluations without improvement end training. Checkpointed every
/// step. Output kind `joint`: the kept router (a decoder router directory), `generators/`
/// (one safetensors file a candidate, torch's names), `steps.jsonl`, `evals.jsonl`,
/// `summary.txt`. With `questions_per_update` > 1 a step is an update of that many questions
/// (`checkpoint_every` counts updates; `steps.jsonl` keeps a row a question, with its update).
public struct RLTrainStage: StageType {
    public struct Params: StageParameters {
        /// The candidates (local models: their gradients are needed), retriever, budget, prompts, reply length.
        var dialogue = DialogueParams()
        /// The method's settings, as `JointRLTrainer` reads them.
        var method = JointRLSettings()
        /// The engine that runs the router and candidates: engine, device, dtype.
        var engine = EngineParams()
        @Param("epochs over the training questions") var epochs = 3
        @Param("training questions between evaluations on valid") var eval_interval = 30
        @Param("evaluations without improvement before stopping") var early_patience_evals = 4
        @Param("steps (updates) between checkpoints") var checkpoint_every = 1
        public init() {}
    }

    public static let name = "rl-train"
    public static let version = 3
    public static let summary = "Joint RL of the router and the LoRA parameter generators (the reference's rl_batch.py)."

    public static func ports(_ p: Params) -> StagePorts {
        StagePorts(inputs: [InputPort("router", kind: .router, help: "the SFT router (sft-train)"),
                            InputPort("train", kind: .questions, help: "training questions", check: HotpotQA.inputCheck()),
                            InputPort("valid", kind: .questions, help: "valid questions: evaluation and early stopping", check: HotpotQA.inputCheck()),
                            InputPort("test", kind: .questions, optional: true, help: "test questions, evaluated at each improvement", check: HotpotQA.inputCheck()),
                            InputPort("prompts", kind: .any, optional: true, help: "a prompt-set directory, as sample's (default: the built-in set)")] +
                       p.dialogue.candidates.map { InputPort("model_\($0)", kind: .model, optional: true, help: "a model directory from the pipeline for candidate \($0)") },
                   output: .joint)
    }

    public static func resources(_ p: Params) -> [String] { p.dialogue.resources }

    public static func validate(_ p: Params, at path: JSONPath) -> [SpecProblem] {
        var problems = p.dialogue.validate(at: path, requireCandidates: true) + p.method.validate(at: path) + p.engine.validate(at: path)
        for (name, value) in [("epochs", p.epochs), ("eval_interval", p.eval_interval), ("early_patience_evals", p.early_patience_evals),
                              ("checkpoint_every", p.checkpoint_every)] where value < 1 {
            problems.append(SpecProblem(path.appending(name), "expected a positive integer, found \(value)"))
        }
        let perUpdate = p.method.questions_per_update
        if perUpdate > 1, p.eval_interval >= 1, p.eval_interval % perUpdate != 0 {
            problems.append(SpecProblem(path.appending("eval_interval"),
                                        "evaluations fall between updates: eval_interval (\(p.eval_interval)) must be a multiple of questions_per_update (\(perUpdate))"))
        }
        return problems
    }

    static let needsWeights = "rl-train needs its weights for the gradients of log q"

    /// The kept evaluation's figures (the last improvement; for sweep tables and `exp show`,
    /// so that settings are chosen on the selection split over seeds): its valid F1 sum, the
    /// same routes' sum without updates, the share of answers the updates changed, the
    /// updates' spread across questions (mean over candidates), each question type's shift from
    /// the mean update (`kept_update_shift_<type>`, mean over candidates) and the questions it came after.
    public static func figures(directory: String) -> [Figure] {
        guard let text = try? FileIO.readString(directory + "/evals.jsonl") else { return [] }
        let evals = FileIO.lines(text).compactMap { try? JSONParser.parse(String($0)) }
        guard let kept = evals.last(where: { $0["improved"]?.boolValue == true }) else { return [] }
        func mean(_ values: [Double]) -> Double? { values.isEmpty ? nil : values.reduce(0, +) / Double(values.count) }
        let spreads = (kept["update_spread"]?.objectMembers ?? []).compactMap { $0.value.doubleValue }
        // Each question type's shift from the mean update, over candidates (with two types or more).
        var shifts: [String: [Double]] = [:]
        for (_, byType) in kept["update_by_type"]?.objectMembers ?? [] where (byType.objectMembers?.count ?? 0) > 1 {
            for (type, g) in byType.objectMembers ?? [] { if let shift = g["shift"]?.doubleValue { shifts[type, default: []].append(shift) } }
        }
        return ([("kept_valid_f1_sum", kept["valid_f1_sum"]?.doubleValue), ("kept_after", kept["step"]?.doubleValue),
                 ("kept_valid_f1_sum_without_updates", kept["valid_f1_sum_without_updates"]?.doubleValue),
                 ("kept_answers_changed", kept["answers_changed"]?.doubleValue),
                 ("kept_update_spread", mean(spreads))]
                + shifts.sorted { $0.key < $1.key }.map { ("kept_update_shift_" + ($0.key.isEmpty ? "untyped" : $0.key), mean($0.value)) })
            .compactMap { name, value in value.map { Figure(name, $0) } }
    }

    public static func preflight(_ p: Params, resources: [String: JSONValue], inputs: Set<String>) -> [String] {
        p.dialogue.weightsPreflight(resources: resources, inputs: inputs, needs: needsWeights) + p.engine.preflight()
    }

    public static func run(_ p: Params, _ context: StageContext) throws {
        let engine = try p.engine.makeEngine(context, candidates: Dictionary(zip(p.dialogue.candidates, p.dialogue.names(context.resources))) { a, _ in a })
        guard let loaded = try RouterArtifacts.load(directory: context.inputs["router"]!.directory, engine: engine) as? DecoderRouter else {
            throw RouterError("rl-train trains a decoder router (sft-train's output); this router is of another kind")
        }
        let router = try loaded.with(fallbackAction: nil)  // a router that fell back to best fixed is trained from its weights
        let train = try HotpotQA.load(questionsOf: context.inputs["train"]!), valid = try HotpotQA.load(questionsOf: context.inputs["valid"]!)
        let test = try context.inputs["test"].map { try HotpotQA.load(questionsOf: $0) }
        let models = try p.dialogue.localCandidates(context, engine: engine, needs: needsWeights)
        let names = p.dialogue.names(context.resources)
        // Evaluations are greedy at the stage's reply length; training samples (JointRLTrainer).
        let prompts = try DialogueParams.promptsInput(context)
        let sampler = try p.dialogue.sampler(context, settings: .reference, prompts: prompts)
        // The questions in epoch order, `questions_per_update` of them a step (the last step
        // may have fewer); an evaluation falls at a step's end (the interval is a multiple).
        let perUpdate = p.method.questions_per_update
        let totalQuestions = p.epochs * train.count, totalSteps = (totalQuestions + perUpdate - 1) / perUpdate
        try BLAS.shared().threads = context.threads
        let trainer = try JointRLTrainer(router: router, candidates: models, sampler: sampler, settings: p.method, totalSteps: totalSteps,
                                         seed: context.seed)
        let start = try engine.weights(router.model)  // before a checkpoint is restored: the weights RL starts from

        let best = TrainingLoop.keptWeights(context)  // before the journals: a damaged one clears them
        let stepsJournal = try context.journal("steps"), evals = try context.journal("evals")
        // Evaluations are journalled by the question count they were made at, and a step sees
        // only those made before it, so that a step replayed after a resume neither adds a
        // second one nor sees the ones made after it (a resumed run equals an uninterrupted one
        // byte for byte).
        func evaluations(through questions: Int) -> [JSONValue] {
            stride(from: p.eval_interval, through: questions, by: p.eval_interval).compactMap { evals.json(evalKey($0)) }
        }
        func stopped(_ questions: Int) -> Bool {
            // Early stopping: the last `early_patience_evals` evaluations brought no improvement.
            let done = evaluations(through: questions)
            return done.count > p.early_patience_evals && done.suffix(p.early_patience_evals).allSatisfy { $0["improved"]?.boolValue == false }
        }
        context.log("\(train.count) training questions × \(p.epochs) epochs" + (perUpdate > 1 ? ", \(perUpdate) an update" : "")
                    + "; valid every \(p.eval_interval) questions; candidates \(names.joined(separator: ", "))")
        var order: (epoch: Int, questions: [Int]) = (-1, [])
        let unadapted = UnadaptedDialogues()
        func question(_ n: Int) -> (epoch: Int, index: Int) {  // the n-th training question of the run
            let epoch = n / train.count
            if order.epoch != epoch { order = (epoch, JointRLOrder.questions(count: train.count, epoch: epoch)) }  // once an epoch
            return (epoch, order.questions[n % train.count])
        }
        _ = try TrainingLoop(steps: totalSteps, checkpointEvery: p.checkpoint_every).run(trainer, context, status: { step in
            "epoch \(step * perUpdate / train.count + 1)/\(p.epochs)"
        }) { step in
            let first = step * perUpdate, end = min(first + perUpdate, totalQuestions)
            if stopped(first) { trainer.skipStep(); return .init(loss: 0, tokens: 0) }
            let questions = (first..<end).map(question)
            let records = try trainer.train(questions.map { (train[$0.index], $0.index) })
            for (n, (q, r)) in zip(first..<end, zip(questions, records)) where !stepsJournal.contains("s\(n)") {
                var fields: [(String, JSONValue)] = [
                    ("step", .number(Double(n))), ("epoch", .number(Double(q.epoch))), ("question", .number(Double(q.index))),
                    ("action", .number(Double(r.action))), ("reward", .number(r.reward)),
                    ("rewards", .array(r.rewards.map { .number($0) })), ("advantage", .number(r.advantage)),
                    ("logq", .number(r.logq)), ("loss", .number(r.loss)),
                    ("router_lr", .number(Double(r.routerLR))),
                    ("generator_lr", .object(r.generatorLRs.sorted { $0.key < $1.key }.map { (String($0.key), .number(Double($0.value))) }))]
                if perUpdate > 1 { fields.insert(("update", .number(Double(step))), at: 1) }
                try stepsJournal.append(key: "s\(n)", json: .object(fields))
            }
            if end % p.eval_interval == 0, !evals.contains(evalKey(end)) {
                try evaluate(trainer, valid: valid, test: test, evals: evals, earlier: evaluations(through: end - 1), step: end, best: best,
                             unadapted: unadapted, context: context)
            }
            return .init(loss: records.map(\.loss).reduce(0, +) / Double(records.count), tokens: 0)
        }
        try writeOutput(trainer, evals: evaluations(through: totalQuestions), steps: (0..<totalQuestions).compactMap { stepsJournal.json("s\($0)") },
                        best: best, start: start, context: context)
    }

    /// The journal key of the evaluation made after `questions` training questions.
    static func evalKey(_ questions: Int) -> String { "e@\(questions)" }

    /// How far weights moved: ‖W − W₀‖ / ‖W₀‖ over all tensors, and the share of values that
    /// differ at all (with bf16 rounding, most stay put at small learning rates).
    static func drift(from start: [String: Tensor], to end: [String: Tensor]) -> (relative: Double, changed: Double) {
        var diff = 0.0, norm = 0.0, changed = 0, total = 0
        for name in start.keys.sorted() {  // a fixed order: the sums are written to summary.txt
            guard let w0 = start[name], let w = end[name], w.count == w0.count else { continue }
            for (a, b) in zip(w0.data, w.data) {
                diff += Double(b - a) * Double(b - a); norm += Double(a) * Double(a)
                if a != b { changed += 1 }
            }
            total += w0.count
        }
        return (norm > 0 ? (diff / norm).squareRoot() : 0, total > 0 ? Double(changed) / Double(total) : 0)
    }

    /// The valid F1 sum of the router and generators as they are (greedy, updates applied),
    /// after `step` questions and the `earlier` evaluations; an improvement is kept (router and
    /// generators, in `best`) and test evaluated. Journalled under `evalKey(step)`.
    static func evaluate(_ trainer: JointRLTrainer, valid: [HotpotQuestion], test: [HotpotQuestion]?, evals: Journal, earlier: [JSONValue], step: Int,
                         best: SealedDirectory, unadapted: UnadaptedDialogues, context: StageContext) throws {
        let index = earlier.count
        context.progress.setStatus("evaluation \(index + 1): \(valid.count) valid questions")
        let updates = CollectedUpdates()
        let runs = try trainer.system.runAll(valid, sampler: trainer.sampler, cancellation: context.cancellation,
                                             wrap: { q, c, model in updates.add(q, c, model); return model })
        let validSum = runs.reduce(0.0) { $0 + $1.sample.metrics.f1 }
        // The spread across questions, and by question type: does the update depend on it?
        let spreads = try updates.byCandidate.compactMap { c, made in
            try UpdateSpread(made.map(\.lora), groups: made.map { valid[$0.question].type ?? "" }).map { (c, $0) }
        }
        // What the updates do: the same routes without them (answers and F1).
        let plain = try unadapted.dialogues(trainer, valid, actions: runs.map(\.action), cancellation: context.cancellation)
        let changed = zip(runs, plain).filter { $0.sample.row["answer"] != $1.answer }.count
        let plainSum = plain.reduce(0.0) { $0 + $1.f1 }
        let previous = earlier.compactMap { $0["valid_f1_sum"]?.doubleValue }.max() ?? -.infinity
        let improved = validSum > previous
        var record: [(String, JSONValue)] = [("eval", .number(Double(index))), ("step", .number(Double(step))),
                                             ("valid_f1_sum", .number(validSum)), ("improved", .bool(improved)),
                                             ("valid_f1_sum_without_updates", .number(plainSum)),
                                             ("answers_changed", .number(valid.isEmpty ? 0 : Double(changed) / Double(valid.count))),
                                             ("update_spread", .object(spreads.map { (String($0.0), .number($0.1.relative)) })),
                                             ("update_norm", .object(spreads.map { (String($0.0), .number($0.1.updateNorm)) })),
                                             ("update_by_type", .object(spreads.map { c, spread in
                                                 (String(c), .object(spread.groups.sorted { $0.key < $1.key }.map { type, g in
                                                     (type, .object([("count", .number(Double(g.count))), ("shift", .number(g.shift)), ("spread", .number(g.spread))]))
                                                 }))
                                             }))]
        if improved {
            if let test { record.append(("test_f1_sum", .number(try f1Sum(trainer, test, cancellation: context.cancellation)))) }
            try best.replace { tmp in
                try trainer.router.save(directory: tmp)
                try trainer.system.saveGenerators(to: tmp + "/generators", rank: trainer.settings.lora_r, variant: trainer.settings.variant, routerFrom: startingWeights(context))
            }
        }
        context.log("evaluation \(index + 1) after \(step) questions: valid F1 sum \(Format.fixed(validSum, 2))" + (improved ? " (best so far)" : "")
                    + "; without the updates \(Format.fixed(plainSum, 2)), \(changed) of \(valid.count) answers changed by them")
        try evals.append(key: evalKey(step), json: .object(record))
    }

    /// The updates an evaluation's dialogues ran under, by candidate (for `UpdateSpread`). They
    /// arrive in whatever order the dialogues in flight make them; each candidate's are given
    /// back in the order of their content digests, so that the spread's sums, and the stage's
    /// output, are the same in every run.
    final class CollectedUpdates: @unchecked Sendable {
        private let lock = Lock()
        private var updates: [Int: [(digest: String, question: Int, lora: LoRAUpdate)]] = [:]
        func add(_ question: Int, _ candidate: Int, _ model: LoRAChatModel) {
            lock.withLock { updates[candidate, default: []].append((model.adapter ?? "", question, model.update.lora)) }
        }
        /// Each candidate's updates with the questions they were made for, candidates in order.
        var byCandidate: [(Int, [(question: Int, lora: LoRAUpdate)])] {
            lock.withLock {
                updates.sorted { $0.key < $1.key }.map { ($0.key, $0.value.sorted { $0.digest < $1.digest }.map { ($0.question, $0.lora) }) }
            }
        }
    }

    /// The valid dialogues without updates, by (question, action): greedy and independent of
    /// the router's weights, so each runs once a stage run, however many evaluations ask.
    final class UnadaptedDialogues: @unchecked Sendable {
        private var known: [String: (answer: JSONValue?, f1: Double)] = [:]

        /// Question i's answer and F1 under `actions[i]`, the candidates as they are.
        func dialogues(_ trainer: JointRLTrainer, _ questions: [HotpotQuestion], actions: [Int],
                       cancellation: CancellationToken) throws -> [(answer: JSONValue?, f1: Double)] {
            let key = { (i: Int) in "\(i):\(actions[i])" }
            let missing = questions.indices.filter { known[key($0)] == nil }
            let samples = try trainer.system.runUnadapted(missing.map { (questions[$0], $0, actions[$0]) }, sampler: trainer.sampler, cancellation: cancellation)
            for (i, s) in zip(missing, samples) { known[key(i)] = (s.row["answer"], s.metrics.f1) }
            return questions.indices.map { known[key($0)]! }
        }
    }

    /// Σ F1 over `questions`, each routed greedily, its candidates adapted, the dialogue greedy
    /// (many at once, batched).
    static func f1Sum(_ trainer: JointRLTrainer, _ questions: [HotpotQuestion], cancellation: CancellationToken) throws -> Double {
        try trainer.system.runAll(questions, sampler: trainer.sampler, cancellation: cancellation)
            .reduce(0.0) { $0 + $1.sample.metrics.f1 }
    }

    /// The content digest of the starting router's weights (`model.safetensors`): evaluate
    /// finds that router among its inputs by it, whatever kind the input was given as.
    static func startingWeights(_ context: StageContext) -> String {
        context.inputs["router"]!.manifest.files["model.safetensors"]?.digest.hex ?? ""
    }

    static func writeOutput(_ trainer: JointRLTrainer, evals: [JSONValue], steps: [JSONValue], best: SealedDirectory, start: [String: Tensor],
                            context: StageContext) throws {
        let out = context.outputDirectory
        if best.exists {  // verified: a damaged one is an error here (the next run rebuilds it), never used
            for name in try best.verifiedFiles() {
                try FileIO.writeAtomically(try FileIO.read(best.path + "/" + name), to: out + "/" + name)
            }
        } else {  // no evaluation ran: the final weights
            try trainer.router.save(directory: out)
            try trainer.system.saveGenerators(to: out + "/generators", rank: trainer.settings.lora_r, variant: trainer.settings.variant, routerFrom: startingWeights(context))
        }
        try FileIO.writeAtomically(steps.map { $0.canonical + "\n" }.joined(), to: out + "/steps.jsonl")
        try FileIO.writeAtomically(evals.map { $0.canonical + "\n" }.joined(), to: out + "/evals.jsonl")
        let bestEval = evals.filter { $0["improved"]?.boolValue == true }.last
        var lines = ["\(steps.count) training questions, \(evals.count) evaluations on valid"]
        for e in evals {
            let plain = e["valid_f1_sum_without_updates"]?.doubleValue, changed = e["answers_changed"]?.doubleValue
            let spread = (e["update_spread"]?.objectMembers ?? []).map { c, value in
                let byType = (e["update_by_type"]?[c]?.objectMembers ?? []).map { type, g in
                    "\(type) \(Format.fixed((g["shift"]?.doubleValue ?? 0) * 100, 1))% from the mean"
                }
                return "\(c): \(Format.fixed((value.doubleValue ?? 0) * 100, 1))%" + (byType.count > 1 ? " (" + byType.joined(separator: ", ") + ")" : "")
            }
            lines.append("  after \(e["step"]!.intValue!) questions: valid F1 sum \(Format.fixed(e["valid_f1_sum"]!.doubleValue!, 2))"
                         + (plain.map { " (without the updates \(Format.fixed($0, 2))" + (changed.map { ", \(Format.fixed($0 * 100, 1))% of answers changed" } ?? "")
                                        + (spread.isEmpty ? "" : "; the updates' spread across questions by candidate " + spread.joined(separator: ", ")) + ")" } ?? "")
                         + (e["test_f1_sum"].map { ", test \(Format.fixed($0.doubleValue!, 2))" } ?? "") + (e["improved"]?.boolValue == true ? " *" : ""))
        }
        if let kept = try RouterArtifacts.load(directory: out, engine: CPUEngine()) as? DecoderRouter {
            let d = drift(from: start, to: try kept.engine.weights(kept.model))
            lines.append("the kept router moved from its start by \(Format.fixed(d.relative * 100, 4))% (relative L2); "
                         + "\(Format.fixed(d.changed * 100, 1))% of its weights changed")
        }
        lines.append(bestEval.map { "kept the router and generators of the evaluation after \($0["step"]!.intValue!) questions (*: an improvement)" }
                     ?? "no evaluation ran: the final router and generators are kept")
        try FileIO.writeAtomically(lines.joined(separator: "\n") + "\n", to: out + "/summary.txt")
        context.log(lines.last!)
    }
}
