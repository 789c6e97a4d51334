public import Pipeline

/// The `synth-data` stage: one split of a seeded, made-up multi-hop QA world in exactly the
/// HotpotQA format (dataset/README.md), so that the whole HAPS pipeline runs offline. The world
/// and the pool of questions depend only on `world_seed` and the sizes; `split` picks a disjoint
/// slice of the pool (train first, then valid, then test), so three stages with the same world
/// parameters give three disjoint splits of one world. A fourth, `rl` (size 0 unless asked),
/// is drawn after them from the same world, disjoint from all three and leaving them as they
/// are: questions the candidates were not trained on, for joint RL (docs/routing.md). A fifth,
/// `rl_valid` (size 0 unless asked), is drawn after `rl`, disjoint from all four and leaving
/// them as they are: the split on which joint RL chooses its checkpoint, which chose nothing
/// else (issue 28; the reference's separate `rl_dataset/valid.jsonl`).
///
///     "valid": {"type": "synth-data", "params": {"split": "valid", "sizes": {"train": 300, "valid": 100, "test": 100}}}
public struct SynthDataStage: StageType {
    public enum Split: String, ParameterEnum { case train, valid, test, rl, rl_valid }

    public struct Params: StageParameters {
        @Param("a disjoint slice of the world's questions") var split: Split
        @Param("questions per split (a split left out keeps its default)") var sizes = SynthDataStage.defaultSizes
        @Param("the world and its questions (the same for all three splits)") var world_seed = PipelineSpec.defaultSeed
        @Param("people in the world (cities, companies and countries in proportion)") var people = 120
        @Param("share of bridge questions, the rest comparisons (as HotpotQA)") var bridge_fraction = 0.8
        @Param("how many distractors are confusable with the gold paragraphs") var difficulty = SynthQuestions.Difficulty.hard
        @Param("paragraphs per question, gold included") var paragraphs = 10
        @Param("the planted world's phrase, ending every comparison answer (a test world: docs/routing.md); none for the ordinary world") var planted_phrase: String? = nil
        public init() {}
    }

    public static let name = "synth-data"
    public static let version = 1
    public static let summary = "A split of a generated multi-hop QA world in the HotpotQA format (offline HAPS)."
    static let splits = Split.allCases.map(\.rawValue)
    /// The splits of the first pool; `rl` and `rl_valid` are drawn after it.
    static let poolSplits = ["train", "valid", "test"]
    static let defaultSizes = ["train": 300, "valid": 100, "test": 100]

    public static func ports(_ p: Params) -> StagePorts { StagePorts(inputs: [], output: .questions) }

    public static func validate(_ p: Params, at path: JSONPath) -> [SpecProblem] {
        var problems: [SpecProblem] = []
        for (k, v) in p.sizes {
            if !splits.contains(k) { problems.append(SpecProblem(path.appending("sizes").appending(k), "unknown split" + NearestName.hintOrChoices(k, among: splits))) }
            if v < 0 { problems.append(SpecProblem(path.appending("sizes").appending(k), "expected a non-negative integer")) }
        }
        if !(0...1).contains(p.bridge_fraction) { problems.append(SpecProblem(path.appending("bridge_fraction"), "expected a number from 0 to 1")) }
        if p.paragraphs < 2 { problems.append(SpecProblem(path.appending("paragraphs"), "expected at least 2 (the gold ones)")) }
        if let phrase = p.planted_phrase, phrase.trimmingSpaces.isEmpty || phrase.contains("]") || phrase != phrase.trimmingSpaces {
            problems.append(SpecProblem(path.appending("planted_phrase"), "expected words without surrounding spaces or ']'"))
        }
        if p.people < 8 { problems.append(SpecProblem(path.appending("people"), "expected at least 8")) }
        return problems
    }

    /// Every split's questions, as the stage computes them.
    public static func generate(_ p: Params) throws -> [String: [HotpotQuestion]] {
        let sizes = defaultSizes.merging(p.sizes) { _, b in b }
        let seed = UInt64(truncatingIfNeeded: p.world_seed)
        let world = SynthWorld(people: p.people, seed: seed)
        var generator = SynthQuestions(world: world)
        generator.bridgeFraction = p.bridge_fraction
        generator.difficulty = p.difficulty
        generator.paragraphs = p.paragraphs
        generator.plantedPhrase = p.planted_phrase
        let total = poolSplits.reduce(0) { $0 + (sizes[$1] ?? 0) }
        let pool = generator.questions(total, seed: seed &+ 1)
        guard pool.count == total else {
            throw DataError(file: "synth-data", line: nil, "a world of \(p.people) people yields only \(pool.count) distinct questions, \(total) asked; raise people")
        }
        var out: [String: [HotpotQuestion]] = [:], start = 0
        var taken = Set(pool.map(\.question))
        // Each later split a draw of its own from the same world, without any question drawn
        // before it (so that asking for one leaves the others as they are).
        for (split, draw) in [("rl", UInt64(2)), ("rl_valid", 3)] {
            guard let n = sizes[split], n > 0 else { continue }
            let drawn = generator.questions(4 * n + 100, seed: seed &+ draw).filter { !taken.contains($0.question) }
            // Bridge questions collide with the earlier draws more often: keep the share by type.
            let bridges = Int((Double(n) * p.bridge_fraction).rounded())
            let chosen = Array(drawn.filter { $0.type == "bridge" }.prefix(bridges)) + Array(drawn.filter { $0.type != "bridge" }.prefix(n - bridges))
            guard chosen.count == n else {
                throw DataError(file: "synth-data", line: nil, "a world of \(p.people) people yields only \(chosen.count) new questions for \(split), \(n) asked; raise people")
            }
            let ids = Set(chosen.map(\.id))
            out[split] = drawn.filter { ids.contains($0.id) }
            taken.formUnion(chosen.map(\.question))
        }
        for s in poolSplits {
            let n = sizes[s] ?? 0
            out[s] = Array(pool[start..<(start + n)])
            start += n
        }
        return out
    }

    public static func run(_ p: Params, _ context: StageContext) throws {
        let qs = try generate(p)[p.split.rawValue] ?? []
        let bridges = qs.filter { $0.type == "bridge" }.count
        context.log("\(qs.count) \(p.split) questions: \(bridges) bridge, \(qs.count - bridges) comparison")
        try FileIO.writeAtomically(HotpotQA.jsonLines(qs), to: context.outputDirectory + "/questions.jsonl")
    }
}
