#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
public import LLM
public import NN
public import Pipeline
import Threading

/// HAPS as a system: a router, one parameter generator per candidate (held by the router's
/// engine, beside the candidates), and the update's alpha and layers. Route → each chosen
/// candidate's update from the router's pooled state → the dialogue under the updates: what
/// `rl-train` trains and `evaluate` runs live.
public struct HAPSSystem: Sendable {
    public var router: DecoderRouter
    /// Candidate i, in the router's engine.
    public var candidates: [EngineChatModel]
    public var alpha: Float
    public var layers: Int
    /// What the generators read of the router: the whole routing prompt, or the question.
    public var pooling: Pooling
    public var engine: any Engine { router.engine }

    public init(router: DecoderRouter, candidates: [EngineChatModel], alpha: Float, layers: Int, pooling: Pooling = .prompt) {
        self.router = router; self.candidates = candidates; self.alpha = alpha; self.layers = layers; self.pooling = pooling
    }

    /// The updates the generators give the candidates of `action` for `question` (one a
    /// candidate: both roles of one share it), from the router's pooled state; with
    /// `keepForBackward` the engine keeps both for a training step.
    public func updates(_ question: String, action: Int, keepForBackward: Bool) throws -> (pooled: PooledState, updates: [Int: EngineUpdate]) {
        let pooled = try router.pooledState(question, pooling: pooling, keepForBackward: keepForBackward)
        var out: [Int: EngineUpdate] = [:]
        for c in Set(router.space.assignment(of: action)).sorted() {
            out[c] = try engine.makeUpdate(generator: c, from: pooled, alpha: alpha, layers: layers, keepForBackward: keepForBackward)
        }
        return (pooled, out)
    }

    /// The dialogue of `q` under `action`, the chosen candidates adapted by `updates` (a
    /// `LoRAChatModel` each, under the reference's nucleus rule, which `wrap` may wrap: a memo
    /// for evaluation). `recording`: the calls keep their log q's gradient in the engine (joint
    /// RL); without, they only reply (evaluation, cheaper).
    public func run(_ q: HotpotQuestion, qid: Int, action: Int, updates: [Int: EngineUpdate], sampler: DialogueSampler,
                    recording: Bool, wrap: (Int, LoRAChatModel) -> any ChatModel = { $1 }) throws -> DialogueSampler.Sample {
        var models: [any ChatModel] = candidates
        for (c, update) in updates.sorted(by: { $0.key < $1.key }) {
            models[c] = wrap(c, LoRAChatModel(base: candidates[c], update: update, rule: .reference, recording: recording))
        }
        return try sampler.run(q, qid: qid, action: action, models: models)
    }

    /// Every question routed greedily (or given `action`), adapted and run for evaluation, with
    /// `workers` dialogues in flight: their calls meet in the candidates' batchers, each
    /// sequence under its own update. Results in the questions' order; `qid` is the position.
    /// `done` is told each finished question; `wrap` is given the question's position and the
    /// candidate with each adapted model.
    public func runAll(_ questions: [HotpotQuestion], action fixed: Int? = nil, sampler: DialogueSampler,
                       workers: Int = 32, cancellation: CancellationToken = CancellationToken(), done: @escaping @Sendable () -> Void = {},
                       wrap: @escaping @Sendable (_ question: Int, _ candidate: Int, LoRAChatModel) -> any ChatModel = { $2 })
        throws -> [(action: Int, sample: DialogueSampler.Sample)] {
        try HAPSSystem.inFlight(questions, workers: workers, cancellation: cancellation) { i in
            let r = try self.run(questions[i], qid: i, action: fixed, sampler: sampler, wrap: { wrap(i, $0, $1) })
            done()
            return r
        }
    }

    /// Each question's dialogue under its action with the candidates as they are, no update:
    /// what the updates are measured against (rl-train's evaluations). As `runAll`, in flight.
    public func runUnadapted(_ items: [(question: HotpotQuestion, qid: Int, action: Int)], sampler: DialogueSampler, workers: Int = 32,
                             cancellation: CancellationToken = CancellationToken()) throws -> [DialogueSampler.Sample] {
        try HAPSSystem.inFlight(items.map(\.question), workers: workers, cancellation: cancellation) { i in
            try sampler.run(items[i].question, qid: items[i].qid, action: items[i].action, models: self.candidates)
        }
    }

    /// `body` of every question's position, `workers` at once; the results in order. A failure
    /// names the question.
    static func inFlight<T>(_ questions: [HotpotQuestion], workers: Int, cancellation: CancellationToken,
                            _ body: @escaping @Sendable (Int) throws -> T) throws -> [T] {
        let results = InFlightResults<T>()
        let failures = ItemWorkers.run(Array(questions.indices), workers: workers, cancellation: cancellation) { i in
            let r = try body(i)
            results.lock.withLock { results.rows[i] = r }
        }
        if let f = failures.first { throw RouterError("question \(f.item) (\(questions[f.item].id)): \(f.error)") }
        if cancellation.isCancelled { throw CancellationError() }
        return questions.indices.map { results.rows[$0]! }
    }

    /// Routes greedily (or takes `action`), adapts, and runs the dialogue, for evaluation (no
    /// gradients recorded).
    public func run(_ q: HotpotQuestion, qid: Int, action fixed: Int? = nil, sampler: DialogueSampler,
                    wrap: (Int, LoRAChatModel) -> any ChatModel = { $1 }) throws -> (action: Int, sample: DialogueSampler.Sample) {
        let action = try fixed ?? router.actions([q.question])[0]
        let (pooled, updates) = try self.updates(q.question, action: action, keepForBackward: false)
        defer { engine.release(Array(updates.values), pooled: pooled) }
        return (action, try run(q, qid: qid, action: action, updates: updates, sampler: sampler, recording: false, wrap: wrap))
    }
}

/// `HAPSSystem.inFlight`'s results as they come, by position.
private final class InFlightResults<T>: @unchecked Sendable {
    let lock = Lock()
    var rows: [Int: T] = [:]
}

// MARK: - A trained system on disk

extension HAPSSystem {
    /// Writes the generators (one safetensors file a candidate, torch's names) and
    /// `generators.json`: the update's settings (the pooling when not the whole prompt's), the variant trained and the digest of the
    /// starting router's weights (evaluate finds that router among its inputs by it).
    public func saveGenerators(to directory: String, rank: Int, variant: String, routerFrom: String) throws {
        try FileIO.makeDirectory(directory)
        let weights = try engine.generatorWeights()
        for (c, w) in weights.enumerated() {
            try SafeTensorsFile.write(w, metadata: ["rank": String(rank), "candidate": String(c)], to: directory + "/generator\(c).safetensors")
        }
        var fields: [(key: String, value: JSONValue)] = [("alpha", .number(Double(alpha))), ("layers", .number(Double(layers))),
                                             ("rank", .number(Double(rank))), ("generators", .number(Double(weights.count)))]
        if pooling != .prompt { fields.append(("pooling", .string(pooling.rawValue))) }  // the reference's is left out: earlier artifacts' bytes stand
        fields += [("variant", .string(variant)), ("router_from", .string(routerFrom))]
        let settings = JSONValue.object(fields)
        try FileIO.writeAtomically(settings.pretty + "\n", to: directory + "/generators.json")
    }

    /// A joint artifact (what `rl-train` writes: the router's model directory with
    /// `generators/`) loaded into `engine` with `candidates` (already in it): the router, the
    /// generators, and the update's alpha and layers.
    public static func load(directory: String, candidates: [EngineChatModel], engine: any Engine) throws -> HAPSSystem {
        guard let router = try RouterArtifacts.load(directory: directory, engine: engine) as? DecoderRouter else {
            throw RouterError("\(directory): a joint artifact's router is a decoder router")
        }
        let path = directory + "/generators/generators.json"
        guard let s = try? JSONParser.parse(try FileIO.readString(path)), let alpha = s["alpha"]?.doubleValue, let layers = s["layers"]?.intValue,
              let rank = s["rank"]?.intValue, let n = s["generators"]?.intValue else {
            throw RouterError("\(path): not a joint artifact's generators (rl-train writes them)")
        }
        let pooling = try s["pooling"].map { value in
            guard let p = value.stringValue.flatMap(Pooling.init(rawValue:)) else {
                throw RouterError("\(path): pooling must be \"prompt\" or \"question\", found \(value.canonical)")
            }
            return p
        } ?? .prompt  // written before pooling was a setting: the reference's
        guard n == candidates.count else {
            throw RouterError("\(path): \(n) generators, but \(candidates.count) candidates are given (one generator a candidate, in order)")
        }
        try engine.setGenerators(try (0..<n).map { c in try SafeTensorsFile(path: directory + "/generators/generator\(c).safetensors").all() }, rank: rank)
        return HAPSSystem(router: try router.with(fallbackAction: nil), candidates: candidates, alpha: Float(alpha), layers: layers, pooling: pooling)
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
