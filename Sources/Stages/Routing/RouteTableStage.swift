public import Pipeline
import LLM

/// The `route-table` stage: a router learned from a score table alone (no model calls), as an
/// artifact of kind `router` that `evaluate` (and anything else) routes with.
///
///     "router_knn": {"type": "route-table", "inputs": {"scores": "score_train", "encoder": "models/all-MiniLM-L6-v2"},
///                    "params": {"method": "knn", "k": 10}}
///
/// The embedding methods read an `embed` stage's output (`"embeddings": "embed"`) when given
/// one, else embed the table's questions with `encoder` themselves.
public struct RouteTableStage: StageType {
    public struct Params: StageParameters {
        @Param("random, best-fixed, per-type, knn, logistic or mf") var method: TableRouter.Method
        @Param("knn: neighbours") var k = 10
        @Param("mf: rank of the factorisation") var rank = 16
        @Param("logistic and mf: full-batch optimisation steps") var steps = 500
        @Param("logistic and mf: learning rate") var lr = 0.05
        @Param("logistic and mf: L2 penalty") var l2 = 0.001
        public init() {}
    }

    public static let name = "route-table"
    public static let version = 3  // 2: per-type keeps each type's mean F1 per action (its scores for a cost trade-off); 3: learns through BLAS
    public static let summary = "A router learned from a score table (random, best fixed, per question type, kNN, logistic, matrix factorisation)."

    public static func ports(_ p: Params) -> StagePorts {
        StagePorts(inputs: [InputPort("scores", kind: .scoreTable, help: "the table to learn from (train split; valid for best-fixed)"),
                            InputPort("questions", kind: .questions, optional: true, help: "the table's questions: their types (per-type; an imported table carries its own)",
                                      check: RoutingQuestions.inputCheck),
                            InputPort("embeddings", kind: .embeddings, optional: true, help: "the table's question embeddings, from an embed stage (knn, logistic, mf)"),
                            InputPort("encoder", kind: .model, optional: true, help: "or a sentence-transformers directory to embed them with here")],
                   output: .router)
    }

    public static func validate(_ p: Params, at path: JSONPath) -> [SpecProblem] {
        var problems: [SpecProblem] = []
        if p.k < 1 { problems.append(SpecProblem(path.appending("k"), "expected a positive integer, found \(p.k)")) }
        if p.rank < 1 { problems.append(SpecProblem(path.appending("rank"), "expected a positive integer, found \(p.rank)")) }
        if p.steps < 1 { problems.append(SpecProblem(path.appending("steps"), "expected a positive integer, found \(p.steps)")) }
        return problems
    }

    public static func run(_ p: Params, _ context: StageContext) throws {
        let matrix = try ScoreMatrix(directory: context.inputs["scores"]!.directory)
        let types = try RoutingQuestions.file(questions: context.inputs["questions"], scores: context.inputs["scores"]).map(RoutingQuestions.types) ?? [:]
        if p.method == .perType && types.isEmpty {
            throw RouterError("per-type needs the table's questions with their types: give the stage a 'questions' input (an imported table carries its own)")
        }
        var embeddings: [[Float]]? = nil
        if p.method.needsEmbeddings {
            embeddings = try QuestionEmbeddings.forStage(matrix.questions, context, needer: p.method.rawValue)
        }
        var settings = TableRouter.Settings()
        settings.k = p.k; settings.rank = p.rank; settings.steps = p.steps; settings.learningRate = p.lr; settings.l2 = p.l2
        settings.seed = context.seed
        context.progress.setStatus("learning \(p.method.rawValue) from \(matrix.count) questions")
        let router = try TableRouter(method: p.method, matrix: matrix, questions: RoutingQuestions.of(matrix, types: types),
                                     embeddings: embeddings, settings: settings)
        try router.save(directory: context.outputDirectory)
        // How well it fits its own table (a training figure for the log, not a result), on at
        // most its first 1000 questions: kNN's routing is quadratic in the table's size.
        let shown = min(matrix.count, 1000)
        let chosen = try router.route(Array(RoutingQuestions.of(matrix, types: types).prefix(shown)), embeddings: embeddings.map { Array($0.prefix(shown)) })
        let fit = zip(chosen, matrix.f1).reduce(0.0) { $0 + $1.1[$1.0.action] } / Double(shown)
        context.log("\(router.label): mean F1 \(Format.fixed(fit, 4)) on its own table\(shown < matrix.count ? " (its first \(shown) questions)" : "") (best fixed \(Format.fixed(matrix.meanF1[matrix.bestFixedAction], 4)))")
    }
}
