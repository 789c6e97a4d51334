#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
public import Pipeline

/// The `questions` stage: reads and validates a HotpotQA file (JSON Lines or the official
/// JSON array), optionally keeps a seeded subset, and writes `questions.jsonl`.
public struct QuestionsStage: StageType {
    public struct Params: StageParameters {
        @Param("keep the first N questions (after shuffling, if shuffle)") var limit: Int? = nil
        @Param("shuffle with the stage's seed (CPython's shuffle) before limiting") var shuffle = false
        @Param("fail on questions without an answer") var require_answers = true
        public init() {}
    }
    public static let name = "questions"
    public static let version = 1
    public static let summary = "Load and validate HotpotQA questions (JSON Lines or the official JSON array)."
    public static func ports(_ p: Params) -> StagePorts {
        StagePorts(inputs: [InputPort("file", kind: .any, help: "a HotpotQA file", check: HotpotQA.inputCheck(requireAnswers: p.require_answers))],
                   output: .questions)
    }
    public static func validate(_ p: Params, at path: JSONPath) -> [SpecProblem] {
        if let l = p.limit, l < 0 { return [SpecProblem(path.appending("limit"), "expected a non-negative integer")] }
        return []
    }
    public static func run(_ p: Params, _ context: StageContext) throws {
        var qs = try HotpotQA.load(HotpotQA.questionsFile(context.inputs["file"]!.path), requireAnswers: p.require_answers)
        if p.shuffle {
            var rng = PythonRandom(seed: Int(truncatingIfNeeded: context.seed))
            rng.shuffle(&qs)
        }
        if let l = p.limit { qs = Array(qs.prefix(l)) }
        context.log("\(qs.count) questions")
        try FileIO.writeAtomically(HotpotQA.jsonLines(qs), to: context.outputDirectory + "/questions.jsonl")
    }
}
