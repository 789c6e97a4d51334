#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
public import Pipeline

extension BuildSFT {
    /// Reads a baseline table and builds the SFT rows: what both the stage and
    /// `haps-pipe build-sft` do.
    public static func build(baseline path: String, space: ActionSpace, names: CandidateNames?,
                             options: BuildSFTOptions) throws -> (rows: [SFTRow], report: BuildSFTReport) {
        var report = BuildSFTReport()
        let lines = try JSONLines.read(path)
        report.rowsRead = lines.count
        let rows = try BaselineReader.rows(from: lines, file: path, space: space, names: names, skipped: &report.skippedRows)
        guard !rows.isEmpty else {
            throw DataError(file: path, line: nil, "no usable rows" + (report.skippedRows.isEmpty ? " (the file is empty)"
                : ": " + report.skippedRows.sorted { $0.key < $1.key }.map { "\($0.value) skipped, \($0.key)" }.joined(separator: "; ")))
        }
        var grouped = Grouped()
        for r in rows { grouped.add(question: r.question, Scored(action: r.action, score: r.f1)) }
        let out = run(grouped, space: space, options: options, report: &report)
        return (out, report)
    }

    /// The output file: `json.dumps(rows, indent=2, ensure_ascii=False)` of `{question, reward, output}`.
    public static func json(_ rows: [SFTRow]) -> String {
        PythonJSON.dumps(.array(rows.map {
            .object([("question", .string($0.question)), ("reward", .float($0.reward)), ("output", .string($0.output))])
        }))
    }
}

/// The `build-sft` stage: SFT data for the high-level router from a samples table
/// (the reference's build_sft; docs/data.md, exactly). Output kind `sft-data`: `sft.json` and `stats.txt`.
public struct BuildSFTStage: StageType {
    public struct Params: StageParameters {
        @Param("which of several best actions become rows") var tie_policy = BuildSFTOptions.TiePolicy.deterministic_one
        @Param("skip questions whose best score is below this") var min_max_score = 1e-6
        @Param("class balance of the rows") var balance = BuildSFTOptions.Balance.none
        @Param("undersample/oversample target (default: smallest/largest class)") var target_per_class: Int? = nil
        @Param("smart_oversample: grow each class to at least this") var smart_target: Int? = nil
        @Param("smart_oversample: grow each class to this fraction of the largest") var smart_frac_of_max: Double? = nil
        @Param("smart_oversample: multiply each class by this (up to the largest)") var smart_minority_dup_factor: Double? = nil
        @Param("smart_oversample: leave data alone when largest/smallest is at most this") var auto_skip_if_balanced_ratio: Double? = nil
        public var names = CandidateParams()
        @Param("seed of the random choices (default: the stage's seed)") var seed: Int? = nil
        public init() {}
    }

    public static let name = "build-sft"
    public static let version = 1
    public static let summary = "SFT data for the high-level router: best action(s) per question, tie policy, class balance."

    public static func ports(_ p: Params) -> StagePorts {
        StagePorts(inputs: [InputPort("samples", kind: .samples, help: "baseline rows (reference baseline.jsonl format)")], output: .sftData)
    }

    public static func validate(_ p: Params, at path: JSONPath) -> [SpecProblem] {
        p.names.validate(at: path)
    }

    /// The builder's options from the parameters; `seed`: the stage's, used when `seed` is unset.
    public static func options(_ p: Params, seed: Int) -> BuildSFTOptions {
        var o = BuildSFTOptions()
        o.seed = p.seed ?? seed
        o.tiePolicy = p.tie_policy
        o.minMaxScore = p.min_max_score
        o.balance = p.balance
        o.targetPerClass = p.target_per_class
        o.smartTarget = p.smart_target
        o.smartFracOfMax = p.smart_frac_of_max
        o.smartMinorityDupFactor = p.smart_minority_dup_factor
        o.autoSkipIfBalancedRatio = p.auto_skip_if_balanced_ratio
        return o
    }

    /// The rows of `sft.json` (`sft_rows`).
    public static func figures(directory: String) -> [Figure] {
        guard let text = try? FileIO.readString(directory + "/sft.json"), let rows = try? JSONParser.parse(text).arrayValue else { return [] }
        return [Figure("sft_rows", Double(rows.count))]
    }

    public static func run(_ p: Params, _ context: StageContext) throws {
        let space = p.names.space, names = try p.names.names()
        let (rows, report) = try BuildSFT.build(baseline: Samples.baselinePath(context.inputs["samples"]!), space: space, names: names,
                                                options: options(p, seed: Int(truncatingIfNeeded: context.seed)))
        for line in report.lines { context.log(line) }
        try FileIO.writeAtomically(BuildSFT.json(rows), to: context.outputDirectory + "/sft.json")
        try FileIO.writeAtomically(report.lines.joined(separator: "\n") + "\n", to: context.outputDirectory + "/stats.txt")
    }
}
