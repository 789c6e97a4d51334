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
        public init() {}
    }

    public static let name = "evaluate"
    public static let version = 1
    public static let summary = "Compares routers and baselines on a split: F1/EM/P/R, tokens, cost, oracle gap share, bootstrap intervals, by type."

    static let fixedPorts = ["scores", "valid_scores", "questions", "encoder"]

    public static func ports(_ p: Params) -> StagePorts {
        StagePorts(inputs: [InputPort("scores", kind: .scoreTable, help: "the split's score table (what is reported)"),
                            InputPort("valid_scores", kind: .scoreTable, help: "valid's score table: chooses the best fixed action"),
                            InputPort("questions", kind: .questions, optional: true, help: "the split's questions: types (by-type figures, per-type routers)"),
                            InputPort("encoder", kind: .model, optional: true, help: "a sentence-transformers directory, for routers that read embeddings")],
                   output: .evaluation, openInputKind: .router)
    }

    public static func validate(_ p: Params, at path: JSONPath) -> [SpecProblem] {
        p.resamples < 1 ? [SpecProblem(path.appending("resamples"), "expected a positive integer, found \(p.resamples)")] : []
    }

    /// Mean F1 of each router and of best fixed, oracle and random (for sweep tables).
    public static func figures(directory: String) -> [Figure] {
        guard let text = try? FileIO.readString(directory + "/results.json"), let j = try? JSONParser.parse(text) else { return [] }
        return (j["rows"]?.arrayValue ?? []).compactMap { r in
            guard let name = r["name"]?.stringValue, !name.hasPrefix("fixed_"), let f1 = r["f1_mean"]?.doubleValue else { return nil }
            return Figure(name + "_f1", f1)
        }
    }

    public static func run(_ p: Params, _ context: StageContext) throws {
        let matrix = try ScoreMatrix(directory: context.inputs["scores"]!.directory)
        let valid = try ScoreMatrix(directory: context.inputs["valid_scores"]!.directory)
        guard valid.space == matrix.space else {
            throw RouterError("the valid table's action space (\(valid.space.count) actions) differs from the split's (\(matrix.space.count))")
        }
        let typeOf = try context.inputs["questions"].map { try RoutingQuestions.types($0.path(of: "questions.jsonl")) } ?? [:]
        let questions = RoutingQuestions.of(matrix, types: typeOf)
        let routerPorts = context.inputs.keys.filter { !fixedPorts.contains($0) }.sorted()
        let routers = try routerPorts.map { ($0, try RouterArtifacts.load(directory: context.inputs[$0]!.directory)) }
        var embeddings: [[Float]]? = nil
        if routers.contains(where: { $0.1.needsEmbeddings }) {
            guard let encoder = context.inputs["encoder"] else {
                throw RouterError("router(s) \(routers.filter { $0.1.needsEmbeddings }.map(\.0).joined(separator: ", ")) read question embeddings: give evaluate an 'encoder' input")
            }
            context.progress.setStatus("embedding \(matrix.count) questions")
            embeddings = try SentenceEncoder(directory: encoder.directory).embed(matrix.questions)
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
        context.progress.setStatus("bootstrap")
        let evaluation = Evaluation(matrix: matrix, types: questions.map(\.type), bestFixedAction: valid.bestFixedAction, routes: routes,
                                    resamples: p.resamples, seed: context.seed)
        try evaluation.write(to: context.outputDirectory)
        for r in evaluation.rows where r.isRouter {
            context.log("\(r.name): mean F1 \(Format.fixed(r.meanF1, 4)), vs best fixed \(Evaluation.interval(r.difference))")
        }
    }
}
