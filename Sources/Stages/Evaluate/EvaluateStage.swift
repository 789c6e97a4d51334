public import Pipeline
import LLM

/// The `evaluate` stage: routers (any number, each an input of kind `router`, named by its
/// port) and the baselines compared on a split's score table, with paired bootstrap intervals,
/// by question type, and the cost–quality plane. Output kind `evaluation`.
///
///     "evaluate": {"type": "evaluate",
///                  "inputs": {"scores": "score_test", "valid_scores": "score_valid", "questions": "world_test",
///                             "encoder": "models/all-MiniLM-L6-v2", "router_knn": "router_knn", "sft": "sft_train"}}
public struct EvaluateStage: StageType {
    public struct Params: StageParameters {
        @Param("bootstrap resamples of the paired intervals") var resamples = 10_000
        /// For joint inputs (HAPS, run live, greedy): the candidates (local models), retriever,
        /// budget, prompts and reply length, as sampled.
        var dialogue = DialogueParams()
        /// The engine that runs routers and live HAPS systems: engine, device, dtype.
        var engine = EngineParams()
        public init() {}
    }

    public static let name = "evaluate"
    public static let version = 9  // 6: each row's own F1 interval (f1_interval; error bars in cost_quality.svg); 7: cost curves, AIQ, APGR, CPT; 8: routes through BLAS; 9: plot lines past the palette's 8 colours dashed
    public static let summary = "Compares routers and baselines on a split: F1/EM/P/R, tokens, cost, oracle gap share, bootstrap intervals, by type."

    static let fixedPorts = ["scores", "valid_scores", "questions", "embeddings", "encoder", "prompts"]

    public static func ports(_ p: Params) -> StagePorts {
        StagePorts(inputs: [InputPort("scores", kind: .scoreTable, help: "the split's score table (what is reported)"),
                            InputPort("valid_scores", kind: .scoreTable, help: "valid's score table: chooses the best fixed action"),
                            InputPort("questions", kind: .questions, optional: true, help: "the split's questions: types (by-type figures, per-type routers)",
                                      check: RoutingQuestions.inputCheck),
                            InputPort("embeddings", kind: .embeddings, optional: true, help: "the split's question embeddings, from an embed stage, for routers that read embeddings"),
                            InputPort("encoder", kind: .model, optional: true, help: "or a sentence-transformers directory to embed them with here"),
                            InputPort("prompts", kind: .any, optional: true, help: "a prompt-set directory for the live HAPS rows, as sample's (default: the built-in set)")] +
                       p.dialogue.candidates.map { InputPort("model_\($0)", kind: .model, optional: true, help: "a model directory from the pipeline for candidate \($0)") },
                   output: .evaluation, openInputKind: .any)
    }

    public static func resources(_ p: Params) -> [String] { p.dialogue.candidates.isEmpty ? [] : p.dialogue.resources }

    public static func validate(_ p: Params, at path: JSONPath) -> [SpecProblem] {
        (p.resamples < 1 ? [SpecProblem(path.appending("resamples"), "expected a positive integer, found \(p.resamples)")] : [])
            + p.dialogue.validate(at: path, requireCandidates: false) + p.engine.validate(at: path)
    }

    static let needsWeights = "evaluate runs HAPS live under LoRA updates, which needs its weights"

    /// Joint inputs run the candidates live under their updates: their weights must be at hand.
    public static func preflight(_ p: Params, resources: [String: JSONValue], inputs: Set<String>) -> [String] {
        p.dialogue.weightsPreflight(resources: resources, inputs: inputs, needs: needsWeights) + p.engine.preflight()
    }

    /// Mean F1 of each router and of best fixed, oracle and random; each router's paired
    /// difference to best fixed (`NAME_vs_best_fixed_f1`) and each further comparison's (a HAPS
    /// row against the router it started from: `NAME_vs_AGAINST_f1`), so that a sweep over seeds
    /// pools the differences across replicates too (docs/sweeps.md, "Replicates").
    public static func figures(directory: String) -> [Figure] {
        guard let text = try? FileIO.readString(directory + "/results.json"), let j = try? JSONParser.parse(text) else { return [] }
        let rows = j["rows"]?.arrayValue ?? []
        let means = rows.compactMap { r -> Figure? in
            guard let name = r["name"]?.stringValue, !name.hasPrefix("fixed_"), let f1 = r["f1_mean"]?.doubleValue else { return nil }
            return Figure(name + "_f1", f1)
        }
        let versusBestFixed = rows.compactMap { r -> Figure? in
            guard r["router"]?.boolValue == true, let name = r["name"]?.stringValue, let d = r["diff_vs_best_fixed"]?["mean"]?.doubleValue else { return nil }
            return Figure(name + "_vs_best_fixed_f1", d)
        }
        let comparisons = (j["comparisons"]?.arrayValue ?? []).compactMap { c -> Figure? in
            guard let row = c["row"]?.stringValue, let against = c["against"]?.stringValue, let d = c["difference"]?["mean"]?.doubleValue else { return nil }
            return Figure("\(row)_vs_\(against)_f1", d)
        }
        return means + versusBestFixed + comparisons
    }

    public static func run(_ p: Params, _ context: StageContext) throws {
        let matrix = try ScoreMatrix(directory: context.inputs["scores"]!.directory)
        let valid = try ScoreMatrix(directory: context.inputs["valid_scores"]!.directory)
        guard valid.space == matrix.space else {
            throw RouterError("the valid table's action space (\(valid.space.count) actions) differs from the split's (\(matrix.space.count))")
        }
        let questionsFile = RoutingQuestions.file(questions: context.inputs["questions"], scores: context.inputs["scores"])
        let typeOf = try questionsFile.map(RoutingQuestions.types) ?? [:]
        let questions = RoutingQuestions.of(matrix, types: typeOf)
        let systemPorts = context.inputs.keys.filter { !fixedPorts.contains($0) && !p.dialogue.candidates.map({ "model_\($0)" }).contains($0) }.sorted()
        let kinds = Dictionary(uniqueKeysWithValues: systemPorts.map { ($0, systemKind(context.inputs[$0]!)) })
        for port in systemPorts where ![.router, .joint].contains(kinds[port]!) {
            throw RouterError("input '\(port)' is a '\(context.inputs[port]!.kind)' artifact; evaluate compares routers (kind router) and HAPS systems (kind joint, from rl-train)")
        }
        let routerPorts = systemPorts.filter { kinds[$0] == .router }, jointPorts = systemPorts.filter { kinds[$0] == .joint }
        let engine = try p.engine.makeEngine(context, candidates: Dictionary(zip(p.dialogue.candidates, p.dialogue.names(context.resources))) { a, _ in a })
        let routers = try routerPorts.map { ($0, try RouterArtifacts.load(directory: context.inputs[$0]!.directory, engine: engine)) }
        var embeddings: [[Float]]? = nil
        if routers.contains(where: { $0.1.needsEmbeddings }) {
            let needers = "router(s) " + routers.filter { $0.1.needsEmbeddings }.map(\.0).joined(separator: ", ")
            embeddings = try QuestionEmbeddings.forStage(matrix.questions, context, needer: needers)
        }
        context.progress.setTotal(routers.count, unit: "routers")
        var routes: [(name: String, label: String, decisions: [RouteDecision])] = []
        for (port, router) in routers {
            guard router.space == matrix.space else {
                throw RouterError("router '\(port)' routes over \(router.space.count) actions; the table has \(matrix.space.count)")
            }
            context.progress.setStatus("routing with \(port)")
            routes.append((port, router.label, try router.route(questions, embeddings: router.needsEmbeddings ? embeddings : nil)))
            context.progress.advance()
        }
        let live = try jointPorts.flatMap { try liveRuns(port: $0, p, context, engine: engine, matrix: matrix, bestFixed: valid.bestFixedAction) }
        context.progress.setStatus("bootstrap")
        var evaluation = Evaluation(matrix: matrix, types: questions.map(\.type), bestFixedAction: valid.bestFixedAction, routes: routes,
                                    live: live, resamples: p.resamples, seed: context.seed)
        context.progress.setStatus("cost curves")
        evaluation.addCostCurves(routes: routes, valid: valid)
        if let questionsFile {
            let plain = try RoutingQuestions.plain(questionsFile)
            let byText = Dictionary(plain.map { ($0.text.trimmingSpaces, $0) }) { a, _ in a }
            evaluation.questionFacts = matrix.questions.map { byText[$0.trimmingSpaces].map { (id: $0.id ?? "", gold: $0.gold) } }
        }
        try evaluation.write(to: context.outputDirectory)
        for r in evaluation.rows where r.isRouter {
            context.log("\(r.name): mean F1 \(Format.fixed(r.meanF1, 4)), vs best fixed \(Evaluation.interval(r.difference))")
        }
    }

    /// A compared input's kind: a pipeline stage's output says it; a directory given by path
    /// (kind `any`) is a joint artifact if it has generators, a router if it has router.json.
    static func systemKind(_ input: InputArtifact) -> ArtifactKind {
        guard input.kind == .any else { return input.kind }
        if HAPSSystem.isTrainedSystem(directory: input.directory) { return .joint }
        return FileIO.exists(input.directory + "/router.json") ? .router : .any
    }

    /// A HAPS system run live on the split's questions through the shared dialogue sampler
    /// (greedy, its candidates adapted by the generated updates; calls memoised, keyed by each
    /// update's digest): HAPS itself, and the best fixed action with the generated updates.
    static func liveRuns(port: String, _ p: Params, _ context: StageContext, engine: any Engine, matrix: ScoreMatrix, bestFixed: Int) throws -> [Evaluation.LiveRun] {
        guard !p.dialogue.candidates.isEmpty else {
            throw RouterError("input '\(port)' is a HAPS system, run live: give evaluate the 'candidates' (and their model_<name> inputs) as the samples were made")
        }
        guard let questionsInput = context.inputs["questions"] else {
            throw RouterError("input '\(port)' is a HAPS system, run live: give evaluate the split's 'questions' (with their paragraphs)")
        }
        let candidates = try p.dialogue.localCandidates(context, engine: engine, needs: needsWeights)
        let system = try HAPSSystem.load(directory: context.inputs[port]!.directory, candidates: candidates, engine: engine)
        let provenance = HAPSSystem.provenance(directory: context.inputs[port]!.directory)
        // The router input this system's training started from, if evaluate has it too.
        let startedFrom = context.inputs.filter { systemKind($0.value) == .router && $0.value.manifest.files["model.safetensors"]?.digest.hex == provenance.routerFrom }.keys.sorted().first
        let byText = Dictionary(try HotpotQA.load(questionsOf: questionsInput).map { ($0.question.trimmingSpaces, $0) }, uniquingKeysWith: { a, _ in a })
        let prompts = try DialogueParams.promptsInput(context)
        let sampler = try p.dialogue.sampler(context, settings: .reference, prompts: prompts)  // greedy
        let counter = CallCounter()
        let questions = try matrix.questions.map { text in
            guard let q = byText[text.trimmingSpaces] else {
                throw RouterError("the questions input has no question \(text.debugDescription) of the score table: give the split's own questions")
            }
            return q
        }
        let store = context.store
        var out: [Evaluation.LiveRun] = []
        for (suffix, fixed) in [("", nil as Int?), ("+best_fixed", bestFixed)] {
            let progress = context.progress
            progress.setStatus("\(port)\(suffix), live")
            progress.setTotal(matrix.count, unit: "questions")
            progress.resume(completed: 0)
            let runs = try system.runAll(questions, action: fixed, sampler: sampler, cancellation: context.cancellation,
                                         done: { progress.advance() }, wrap: { _, _, m in MemoizedChatModel(m, store: store, counter: counter) })
            let actions = runs.map(\.action), metrics = runs.map(\.sample.metrics)
            let tokens = runs.map { Double($0.sample.result.promptTokens + $0.sample.result.completionTokens) as Double? }
            let variant = provenance.variant == "as the reference" ? "" : "; \(provenance.variant)"
            var run = Evaluation.LiveRun(name: port + suffix, label: (fixed == nil ? "HAPS, live (router + generated LoRA" : "best fixed + generated LoRA, live (trained with the router") + variant + ")",
                                         actions: actions, metrics: metrics, tokens: tokens, cost: tokens.map { _ in nil },
                                         versus: fixed == nil ? startedFrom : nil)
            run.answers = runs.map(\.sample.result.answer)
            run.turns = runs.map { r in .array((r.sample.turns.arrayValue ?? []).map { t in .object((t.objectMembers ?? []).filter { $0.key != "prompt" }) }) }
            out.append(run)
        }
        return out
    }
}
