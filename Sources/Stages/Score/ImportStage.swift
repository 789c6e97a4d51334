public import Pipeline

/// The `import` stage: routing data from elsewhere (`RoutingImport`: a long table, or
/// RouterBench's wide one) → the score table `score` makes, with one role (`model`) and an
/// action per model, plus the prompts as `questions.jsonl`. Output kind `score-table`.
public struct ImportStage: StageType {
    public struct Params: StageParameters {
        @Param("long (a row per prompt × model) or routerbench (a row per prompt, a score column and a MODEL|total_cost column per model)")
        public var layout = RoutingImport.Layout.long
        @Param("the prompt's column (default: prompt)") public var prompt_column: String? = nil
        @Param("the prompt id's column, when there is one (default: id; routerbench: sample_id)") public var id_column: String? = nil
        @Param("long: the model's column (default: model)") public var model_column: String? = nil
        @Param("long: the score's column, in [0, 1] (default: score)") public var score_column: String? = nil
        @Param("long: the cost's column (default: cost); routerbench: the cost columns' suffix after 'MODEL|' (default: total_cost)")
        public var cost_column: String? = nil
        @Param("the prompt type's column, when there is one (default: type; routerbench: eval_name)") public var type_column: String? = nil
        public init() {}

        public var importer: RoutingImport {
            var i = RoutingImport()
            i.layout = layout
            i.prompt = prompt_column; i.id = id_column; i.model = model_column; i.score = score_column; i.cost = cost_column; i.type = type_column
            return i
        }
    }

    public static let name = "import"
    public static let version = 1
    public static let summary = "Routing data from elsewhere (a long CSV/JSONL table or RouterBench's wide one) as a score table with one role, model, and its prompts."

    public static func ports(_ p: Params) -> StagePorts {
        let importer = p.importer
        let settings = JSONValue.array([importer.layout.rawValue, importer.prompt, importer.id, importer.model, importer.score, importer.cost, importer.type]
            .map { $0.map(JSONValue.string) ?? .null }).canonical
        return StagePorts(inputs: [InputPort("data", kind: .any, help: "the table: CSV with a header, or JSON Lines",
                                             check: InputCheck("routing-import-1 " + settings) { path in _ = try RoutingImport.scoreTable(try importer.read(path)) })],
                          output: .scoreTable)
    }

    public static func figures(directory: String) -> [Figure] { ScoreTable.figures(directory: directory) }

    /// Reads `path` and writes the score table's files and `questions.jsonl` into `directory`
    /// (also what `haps-pipe import` does); returns the table.
    @discardableResult
    public static func write(_ importer: RoutingImport, data path: String, to directory: String) throws -> ScoreTable {
        let result = try importer.read(path)
        let t = try RoutingImport.scoreTable(result)
        try FileIO.writeAtomically(t.jsonLines, to: directory + "/scores.jsonl")
        try FileIO.writeAtomically(t.summaryJSON.pretty + "\n", to: directory + "/summary.json")
        try FileIO.writeAtomically(t.summaryText, to: directory + "/summary.txt")
        try FileIO.writeAtomically(RoutingImport.questionLines(result), to: directory + "/questions.jsonl")
        return t
    }

    public static func run(_ p: Params, _ context: StageContext) throws {
        let t = try write(p.importer, data: context.inputs["data"]!.path, to: context.outputDirectory)
        context.log("\(t.summary.questions) prompts × \(t.space.count) models, \(t.summary.rows) rows")
    }
}
