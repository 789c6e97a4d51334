public import Pipeline

/// The `synth-data` stage: one split of a seeded, made-up multi-hop QA world in exactly the
/// HotpotQA format (dataset/README.md), so that the whole HAPS pipeline runs offline. The world
/// and the pool of questions depend only on `world_seed` and the sizes; `split` picks a disjoint
/// slice of the pool (train first, then valid, then test), so three stages with the same world
/// parameters give three disjoint splits of one world.
///
///     "valid": {"type": "synth-data", "params": {"split": "valid", "sizes": {"train": 300, "valid": 100, "test": 100}}}
public struct SynthDataStage: StageType {
    public struct Params: Decodable, Sendable {
        var split: String
        var sizes: [String: Int]?
        var world_seed: Int?
        var people: Int?
        var bridge_fraction: Double?
        var difficulty: String?
        var paragraphs: Int?
    }

    public static let name = "synth-data"
    public static let version = 1
    public static let summary = "A split of a generated multi-hop QA world in the HotpotQA format (offline HAPS)."
    public static let parameters = [
        ParameterInfo("split", "train, valid or test: a disjoint slice of the world's questions"),
        ParameterInfo("sizes", "questions per split (default {\"train\": 300, \"valid\": 100, \"test\": 100})"),
        ParameterInfo("world_seed", "the world and its questions (default 43; the same for all three splits)"),
        ParameterInfo("people", "people in the world (default 120; cities, companies and countries in proportion)"),
        ParameterInfo("bridge_fraction", "share of bridge questions, the rest comparisons (default 0.8, as HotpotQA)"),
        ParameterInfo("difficulty", "easy, medium or hard: how many distractors are confusable with the gold paragraphs (default hard)"),
        ParameterInfo("paragraphs", "paragraphs per question, gold included (default 10)"),
    ]
    static let splits = ["train", "valid", "test"]
    static let defaultSizes = ["train": 300, "valid": 100, "test": 100]

    public static func ports(_ p: Params) -> StagePorts { StagePorts(inputs: [], output: HotpotQA.kind) }

    public static func validate(_ p: Params, at path: JSONPath) -> [SpecProblem] {
        var problems: [SpecProblem] = []
        if !splits.contains(p.split) { problems.append(SpecProblem(path.appending("split"), "expected train, valid or test" + NearestName.hint(p.split, among: splits))) }
        for (k, v) in p.sizes ?? [:] {
            if !splits.contains(k) { problems.append(SpecProblem(path.appending("sizes").appending(k), "unknown split" + NearestName.hintOrChoices(k, among: splits))) }
            if v < 0 { problems.append(SpecProblem(path.appending("sizes").appending(k), "expected a non-negative integer")) }
        }
        if let f = p.bridge_fraction, !(0...1).contains(f) { problems.append(SpecProblem(path.appending("bridge_fraction"), "expected a number from 0 to 1")) }
        if let d = p.difficulty, SynthQuestions.Difficulty(rawValue: d) == nil {
            problems.append(SpecProblem(path.appending("difficulty"), "expected easy, medium or hard" + NearestName.hint(d, among: ["easy", "medium", "hard"])))
        }
        if let n = p.paragraphs, n < 2 { problems.append(SpecProblem(path.appending("paragraphs"), "expected at least 2 (the gold ones)")) }
        if let n = p.people, n < 8 { problems.append(SpecProblem(path.appending("people"), "expected at least 8")) }
        return problems
    }

    /// Every split's questions, as the stage computes them.
    public static func generate(_ p: Params) throws -> [String: [HotpotQuestion]] {
        let sizes = defaultSizes.merging(p.sizes ?? [:]) { _, b in b }
        let seed = UInt64(truncatingIfNeeded: p.world_seed ?? 43)
        let world = SynthWorld(people: p.people ?? 120, seed: seed)
        var generator = SynthQuestions(world: world)
        generator.bridgeFraction = p.bridge_fraction ?? 0.8
        generator.difficulty = SynthQuestions.Difficulty(rawValue: p.difficulty ?? "hard") ?? .hard
        generator.paragraphs = p.paragraphs ?? 10
        let total = splits.reduce(0) { $0 + (sizes[$1] ?? 0) }
        let pool = generator.questions(total, seed: seed &+ 1)
        guard pool.count == total else {
            throw DataError(file: "synth-data", line: nil, "a world of \(p.people ?? 120) people yields only \(pool.count) distinct questions, \(total) asked; raise people")
        }
        var out: [String: [HotpotQuestion]] = [:], start = 0
        for s in splits {
            let n = sizes[s] ?? 0
            out[s] = Array(pool[start..<(start + n)])
            start += n
        }
        return out
    }

    public static func run(_ p: Params, _ context: StageContext) throws {
        let qs = try generate(p)[p.split] ?? []
        let bridges = qs.filter { $0.type == "bridge" }.count
        context.log("\(qs.count) \(p.split) questions: \(bridges) bridge, \(qs.count - bridges) comparison")
        try FileIO.writeAtomically(HotpotQA.jsonLines(qs), to: context.outputDirectory + "/questions.jsonl")
    }
}
