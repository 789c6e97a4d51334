#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
public import LLM
public import NN
public import Pipeline
import Threading

/// HAPS as a system: a router, one generator per candidate, and the update's alpha and layers.
/// What `rl-train` trains and `evaluate` runs live.
public struct HAPSSystem: Sendable {
    public var router: DecoderRouter
    public var generators: [ParameterGenerator]
    public var alpha: Float
    public var layers: Int

    public init(router: DecoderRouter, generators: [ParameterGenerator], alpha: Float, layers: Int) {
        self.router = router; self.generators = generators; self.alpha = alpha; self.layers = layers
    }

    /// The updates the generators give the candidates of `action` for `question` (one a
    /// candidate: both roles of one share it), from the router's pooled state.
    public func updates(_ question: String, action: Int) throws -> (routerTape: DecoderTape, loras: [Int: (LoRAUpdate, ParameterGenerator.Tape)]) {
        let tape = try router.model.tapedForward(try router.promptTokens(question, routing: true))
        let pooled = DecoderModel.pooled(tape)
        var out: [Int: (LoRAUpdate, ParameterGenerator.Tape)] = [:]
        for c in Set(router.space.assignment(of: action)) {
            let (a, b, genTape) = try generators[c].forward(pooled)
            out[c] = (LoRAUpdate(a: a, b: b, alpha: alpha, layers: layers), genTape)
        }
        return (tape, out)
    }

    /// The dialogue of `q` under `action`, the chosen candidates adapted by `loras` (a
    /// `LoRAChatModel` each, under the reference's nucleus rule, which `wrap` may wrap: a memo
    /// for evaluation, a recorder for RL). `gradients`: the calls record log q and gradients
    /// (joint RL); without, they only reply (evaluation, cheaper).
    public func run(_ q: HotpotQuestion, qid: Int, action: Int, loras: [Int: LoRAUpdate], candidates: [LocalChatModel], sampler: DialogueSampler,
                    gradients: Bool = true, wrap: (Int, LoRAChatModel) -> any ChatModel = { $1 }) throws -> DialogueSampler.Sample {
        var models: [any ChatModel] = candidates
        for (c, update) in loras.sorted(by: { $0.key < $1.key }) {
            models[c] = wrap(c, LoRAChatModel(base: candidates[c], lora: update, rule: .reference, recordsGradients: gradients))
        }
        return try sampler.run(q, qid: qid, action: action, models: models)
    }

    /// Every question routed greedily (or given `action`), adapted and run for evaluation, with
    /// `workers` dialogues in flight: their calls meet in the candidates' batchers, each
    /// sequence under its own update. Results in the questions' order; `qid` is the position.
    /// `done` is told each finished question.
    public func runAll(_ questions: [HotpotQuestion], action fixed: Int? = nil, candidates: [LocalChatModel], sampler: DialogueSampler,
                       workers: Int = 32, cancellation: CancellationToken = CancellationToken(), done: @escaping @Sendable () -> Void = {},
                       wrap: @escaping @Sendable (Int, LoRAChatModel) -> any ChatModel = { $1 }) throws -> [(action: Int, sample: DialogueSampler.Sample)] {
        final class Results: @unchecked Sendable {
            let lock = Lock()
            var rows: [Int: (action: Int, sample: DialogueSampler.Sample)] = [:]
        }
        let results = Results()
        let failures = ItemWorkers.run(Array(questions.indices), workers: workers, cancellation: cancellation) { i in
            let r = try self.run(questions[i], qid: i, action: fixed, candidates: candidates, sampler: sampler, wrap: wrap)
            results.lock.withLock { results.rows[i] = r }
            done()
        }
        if let f = failures.first { throw RouterError("question \(f.item) (\(questions[f.item].id)): \(f.error)") }
        if cancellation.isCancelled { throw CancellationError() }
        return questions.indices.map { results.rows[$0]! }
    }

    /// Routes greedily (or takes `action`), adapts, and runs the dialogue, for evaluation (no
    /// gradients recorded).
    public func run(_ q: HotpotQuestion, qid: Int, action fixed: Int? = nil, candidates: [LocalChatModel], sampler: DialogueSampler,
                    wrap: (Int, LoRAChatModel) -> any ChatModel = { $1 }) throws -> (action: Int, sample: DialogueSampler.Sample) {
        let action = try fixed ?? router.actions([q.question])[0]
        let (_, loras) = try updates(q.question, action: action)
        return (action, try run(q, qid: qid, action: action, loras: loras.mapValues(\.0), candidates: candidates, sampler: sampler,
                                gradients: false, wrap: wrap))
    }
}

// MARK: - A trained system on disk

extension HAPSSystem {
    /// Writes the generators (one safetensors file a candidate, torch's names) and
    /// `generators.json`: the update's settings, the variant trained and the digest of the
    /// starting router's weights (evaluate finds that router among its inputs by it).
    public func saveGenerators(to directory: String, variant: String, routerFrom: String) throws {
        try FileIO.makeDirectory(directory)
        for (c, g) in generators.enumerated() {
            try SafeTensorsFile.write(g.weights, metadata: ["rank": String(g.rank), "candidate": String(c)], to: directory + "/generator\(c).safetensors")
        }
        let settings: JSONValue = ["alpha": .number(Double(alpha)), "layers": .number(Double(layers)),
                                   "rank": .number(Double(generators.first?.rank ?? 0)), "generators": .number(Double(generators.count)),
                                   "variant": .string(variant), "router_from": .string(routerFrom)]
        try FileIO.writeAtomically(settings.pretty + "\n", to: directory + "/generators.json")
    }

    /// A joint artifact's router and generators, and the update's alpha and layers (what
    /// `rl-train` writes: the router's model directory with `generators/`).
    public static func load(directory: String) throws -> HAPSSystem {
        guard let router = try RouterArtifacts.load(directory: directory) as? DecoderRouter else {
            throw RouterError("\(directory): a joint artifact's router is a decoder router")
        }
        let path = directory + "/generators/generators.json"
        guard let s = try? JSONParser.parse(try FileIO.readString(path)), let alpha = s["alpha"]?.doubleValue, let layers = s["layers"]?.intValue,
              let rank = s["rank"]?.intValue, let n = s["generators"]?.intValue else {
            throw RouterError("\(path): not a joint artifact's generators (rl-train writes them)")
        }
        let generators = try (0..<n).map { c in
            try ParameterGenerator(weights: try SafeTensorsFile(path: directory + "/generators/generator\(c).safetensors").all(), rank: rank)
        }
        return HAPSSystem(router: try router.with(model: router.model), generators: generators, alpha: Float(alpha), layers: layers)
    }

    /// What a joint artifact says of itself: its variant and the router it started from.
    public static func provenance(directory: String) -> (variant: String, routerFrom: String?) {
        let j = (try? FileIO.readString(directory + "/generators/generators.json")).flatMap { try? JSONParser.parse($0) }
        return (j?["variant"]?.stringValue ?? "as the reference", j?["router_from"]?.stringValue)
    }

    /// Whether a directory given by path is a joint artifact (it has generators).
    public static func isTrainedSystem(directory: String) -> Bool {
        FileIO.exists(directory + "/generators/generators.json")
    }
}
