public import Pipeline

/// The `score` stage: a samples table → a score table (`scores.jsonl`), its summary
/// (`summary.json`) and the summary as text (`summary.txt`). Output kind `score-table`.
public struct ScoreStage: StageType {
    public struct Params: StageParameters {
        public var names = CandidateParams()
        @Param("keep the recorded metrics instead of recomputing them from answer and ground_truth") public var use_recorded = false
        public init() {}
    }

    public static let name = "score"
    public static let version = 3
    public static let summary = "F1/EM/P/R per question and action, with per-action means, best fixed action, oracle and random routing."

    public static func ports(_ p: Params) -> StagePorts {
        StagePorts(inputs: [InputPort("samples", kind: .samples, help: "baseline rows"),
                            InputPort("questions", kind: .questions, optional: true, help: "the sampled questions: adds a breakdown by question type", check: RoutingQuestions.inputCheck)],
                   output: .scoreTable)
    }

    public static func validate(_ p: Params, at path: JSONPath) -> [SpecProblem] { p.names.validate(at: path) }

    /// Reads a samples file into a score table (also what `haps-pipe score` does).
    public static func table(baseline path: String, space: ActionSpace, names: CandidateNames?, useRecorded: Bool = false) throws -> ScoreTable {
        var skipped: [String: Int] = [:]
        let rows = try BaselineReader.read(path, space: space, names: names, skipped: &skipped)
        guard !rows.isEmpty else {
            throw DataError(file: path, line: nil, "no usable rows" + (skipped.isEmpty ? " (the file is empty)" : ": " + skipped.map { "\($0.value) skipped, \($0.key)" }.joined(separator: "; ")))
        }
        return try ScoreTable(rows: rows, space: space, skipped: skipped, useRecorded: useRecorded)
    }

    /// Question text → type (bridge, comparison) of a questions file (HotpotQA's, or plain),
    /// for `breakDown(byType:)`.
    public static func questionTypes(_ path: String) throws -> [String: String] { try RoutingQuestions.types(path) }

    public static func figures(directory: String) -> [Figure] { ScoreTable.figures(directory: directory) }

    public static func run(_ p: Params, _ context: StageContext) throws {
        let space = p.names.space, names = try p.names.names()
        var t = try table(baseline: Samples.baselinePath(context.inputs["samples"]!), space: space, names: names, useRecorded: p.use_recorded)
        if let questions = context.inputs["questions"] { t.breakDown(byType: try questionTypes(questions.path(of: "questions.jsonl"))) }
        try FileIO.writeAtomically(t.jsonLines, to: context.outputDirectory + "/scores.jsonl")
        try FileIO.writeAtomically(t.summaryJSON.pretty + "\n", to: context.outputDirectory + "/summary.json")
        try FileIO.writeAtomically(t.summaryText, to: context.outputDirectory + "/summary.txt")
        for line in t.summaryText.split(separator: "\n") where line.hasPrefix("warning") { context.log(String(line)) }
    }
}
