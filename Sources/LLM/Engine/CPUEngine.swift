import NN
#if canImport(Glibc)
import Glibc
#endif

/// The `Engine` on this module's own decoder (Float32 on OpenBLAS): the default engine, and
/// the one CI runs. Candidates' plain calls from many threads meet in one batcher per model
/// (each row under its own update); recorded calls take the one-pass LoRA gradient from the
/// last layer's captured rows (`generateWithLoRAGradient`); the router is stepped by AdamW
/// (weight decay 0.01), the generators by AdamW (weight decay 0), SFT by `DecoderTrainer`.
public final class CPUEngine: Engine, @unchecked Sendable {
    public let info = EngineInfo(name: "cpu", versions: ["engine": "haps-pipe cpu 1"], devices: ["cpu"])
    /// Threads of an SFT step (sequences of a batch in parallel).
    public let threads: Int

    /// One loaded model: its weights (replaced by steps when trainable) and its batcher.
    final class Loaded {
        let handle: EngineModel
        var model: DecoderModel
        let trainable: Bool
        /// Plain calls of a frozen candidate, from many callers, batched (a trainable model's
        /// calls, routing, come as whole batches).
        var batcher: GenerationBatcher?
        /// Serialises recorded calls (each a forward with captures, then the tail's backward).
        let gradientLock = Lock()
        var rlOptimizer = AdamW(weightDecay: 0.01)
        var sft: DecoderTrainer?
        /// SFT optimiser moments restored before the first `sftStep` made a trainer.
        var pendingSFTState: [String: Tensor]?
        init(handle: EngineModel, model: DecoderModel, trainable: Bool) {
            self.handle = handle; self.model = model; self.trainable = trainable
            batcher = trainable ? nil : GenerationBatcher(model: model, maxBatch: 32, maxQueue: 1 << 20)
        }
        deinit { batcher?.stop() }

        /// New weights for a trainable model (its SFT trainer continues from them).
        func replace(_ m: DecoderModel) {
            model = m
            if sft?.model !== m { sft?.replaceModel(m) }
        }
    }

    struct KeptUpdate { var value: EngineUpdate; var tape: ParameterGenerator.Tape }
    struct RecordedCall { var update: Int; var dA: Tensor; var dB: Tensor }

    private let lock = Lock()
    private var models: [Int: Loaded] = [:]
    private var nextID = 0
    private var generators: [ParameterGenerator] = []
    private var generatorOptimizers: [AdamW] = []
    // The questions' state: kept pooled states and updates, recorded calls, gradients.
    private var tapes: [Int: (model: Int, tape: DecoderTape, positions: Range<Int>?)] = [:]
    private var updates: [Int: KeptUpdate] = [:]
    private var calls: [Int: RecordedCall] = [:]
    /// Each update's accumulated gradient, in the order updates were first accumulated.
    private var gradients: [Int: (dA: Tensor, dB: Tensor)] = [:]

    public init(threads: Int = 1) { self.threads = threads }

    private func newID() -> Int { lock.withLock { defer { nextID += 1 }; return nextID } }

    private func loaded(_ m: EngineModel) throws -> Loaded {
        guard let l = lock.withLock({ models[m.id] }) else { throw EngineError("no model \(m.id) (\(m.name)) in this engine") }
        return l
    }

    private func trainable(_ m: EngineModel) throws -> Loaded {
        let l = try loaded(m)
        guard l.trainable else { throw EngineError("\(m.name) was loaded frozen; only the router's backbone is trained") }
        return l
    }

    // MARK: Models

    public func loadModel(directory: String, name: String, trainable: Bool) throws -> EngineModel {
        let model = try DecoderModel(directory: directory)
        let handle = EngineModel(id: newID(), name: name, config: model.config)
        let l = Loaded(handle: handle, model: model, trainable: trainable)
        lock.withLock { models[handle.id] = l }
        return handle
    }

    public func loadWeights(_ model: EngineModel, directory: String) throws {
        try trainable(model).replace(try DecoderModel(directory: directory))
    }

    public func saveModel(_ model: EngineModel, to directory: String) throws { try loaded(model).model.save(directory: directory) }

    public func weights(_ model: EngineModel) throws -> [String: Tensor] { try loaded(model).model.namedWeights }

    public func setWeights(_ model: EngineModel, _ weights: [String: Tensor]) throws {
        let l = try trainable(model)
        l.replace(try DecoderModel(config: l.model.config, weights: weights))
    }

    // MARK: Generation and routing

    public func generate(_ calls: [EngineCall]) throws -> [EngineReply] {
        // Recorded calls one at a time (their captures); plain calls of a trainable model as
        // one batch (routing), of a candidate through its batcher (many callers' rows meet).
        for c in calls { try c.validate() }
        var out = [EngineReply?](repeating: nil, count: calls.count)
        var plain: [Int: [Int]] = [:]
        for (i, c) in calls.enumerated() {
            if c.recordsGradient, let update = c.update { out[i] = try recorded(c, under: update) } else { plain[c.model.id, default: []].append(i) }
        }
        for (_, indices) in plain.sorted(by: { $0.key < $1.key }) {
            let l = try loaded(calls[indices[0]].model)
            let requests = indices.map { request(calls[$0]) }
            let results: [GenerationResult]
            if let batcher = l.batcher {
                // Every row queued at once (they may share batches with other callers'), then awaited.
                let waiters = requests.map { _ in Waiter<GenerationResult>() }
                for (r, w) in zip(requests, waiters) { try batcher.submit(r, completion: w.deliver) }
                results = try waiters.map { try $0.result() }
            } else {
                results = try l.model.generate(requests)
            }
            for (i, r) in zip(indices, results) {
                out[i] = EngineReply(ids: r.ids, logprobs: r.logprobs, finishReason: r.finishReason, logq: r.logprobs.reduce(0, +), call: nil)
            }
        }
        return out.map { $0! }
    }

    func request(_ c: EngineCall) -> GenerationRequest {
        GenerationRequest(prompt: c.prompt, maxNewTokens: c.maxNewTokens, temperature: c.temperature, topP: c.topP, stopTokens: c.stopTokens,
                          lora: c.update?.lora, nucleusRule: c.rule, uniforms: c.temperature > 0 ? c.uniforms : nil)
    }

    private func recorded(_ c: EngineCall, under update: EngineUpdate) throws -> EngineReply {
        let l = try loaded(c.model)
        let g = try l.gradientLock.withLock { try l.model.generateWithLoRAGradient(request(c)) }
        let id = newID()
        lock.withLock { calls[id] = RecordedCall(update: update.id, dA: g.gradientA, dB: g.gradientB) }
        return EngineReply(ids: g.result.ids, logprobs: g.result.logprobs, finishReason: g.result.finishReason, logq: g.logprob,
                           call: EngineCallID(id: id))
    }

    public func continuationLogProbabilities(_ model: EngineModel, prompt: [Int], continuations: [[Int]]) throws -> [Double] {
        let m = try loaded(model).model
        let segments = continuations.map { DecoderModel.Segment(tokens: prompt + $0, cache: KVCache(layers: m.config.layers)) }
        let logits = try m.forward(segments, allLogits: true)
        let v = m.config.vocabSize
        var logp = [Double](repeating: 0, count: continuations.count)
        var row = 0
        for (a, t) in continuations.enumerated() {
            for (j, token) in t.enumerated() {
                let r = row + prompt.count + j - 1
                logp[a] += logits.data.withUnsafeBufferPointer { lp in
                    var m = -Float.infinity
                    for i in 0..<v { m = max(m, lp[r * v + i]) }
                    var s: Double = 0
                    for i in 0..<v { s += Double(expf(lp[r * v + i] - m)) }
                    return Double(lp[r * v + token] - m) - Glibc.log(s)
                }
            }
            row += prompt.count + t.count
        }
        return logp
    }

    public func pooledState(_ model: EngineModel, prompt: [Int], positions: Range<Int>?, keepForBackward: Bool) throws -> PooledState {
        try EngineError.checkPooled(positions, of: prompt)
        let tape = try loaded(model).model.tapedForward(prompt)
        let id = newID()
        if keepForBackward { lock.withLock { tapes[id] = (model.id, tape, positions) } }
        return PooledState(id: id, values: DecoderModel.pooled(tape, positions: positions))
    }

    // MARK: Parameter generators

    public func makeGenerators(_ shapes: [GeneratorShape], seed: UInt64) throws {
        let g = shapes.map { ParameterGenerator(inputSize: $0.input, hiddenSize: $0.hidden, layers: $0.layers, targetSize: $0.target, rank: $0.rank, seed: seed) }
        lock.withLock { generators = g; generatorOptimizers = g.map { _ in AdamW(weightDecay: 0) } }
    }

    public func setGenerators(_ weights: [[String: Tensor]], rank: Int) throws {
        let g = try weights.map { try ParameterGenerator(weights: $0, rank: rank) }
        lock.withLock { generators = g; generatorOptimizers = g.map { _ in AdamW(weightDecay: 0) } }
    }

    public func generatorWeights() throws -> [[String: Tensor]] { lock.withLock { generators.map(\.weights) } }

    public func makeUpdate(generator: Int, from pooled: PooledState, alpha: Float, layers: Int, keepForBackward: Bool) throws -> EngineUpdate {
        guard let g = lock.withLock({ generators.indices.contains(generator) ? generators[generator] : nil }) else {
            throw EngineError("no generator \(generator)")
        }
        let (a, b, tape) = try g.forward(pooled.values)
        let update = EngineUpdate(id: newID(), generator: generator, lora: LoRAUpdate(a: a, b: b, alpha: alpha, layers: layers))
        if keepForBackward { lock.withLock { updates[update.id] = KeptUpdate(value: update, tape: tape) } }
        return update
    }

    // MARK: Learning

    public func accumulate(_ update: EngineUpdate, calls ids: [EngineCallID], coefficient: Float) throws {
        try lock.withLock {
            guard updates[update.id] != nil else { throw EngineError("update \(update.id) was not kept for backward") }
            var dA = Tensor(zeros: update.lora.a.shape), dB = Tensor(zeros: update.lora.b.shape)
            for id in ids {
                guard let c = calls[id.id], c.update == update.id else { throw EngineError("call \(id.id) was not recorded under update \(update.id)") }
                Kernels.add(&dA, c.dA)
                Kernels.add(&dB, c.dB)
            }
            var g = gradients[update.id] ?? (Tensor(zeros: dA.shape), Tensor(zeros: dB.shape))
            Kernels.addScaled(&g.dA, dA, coefficient)
            Kernels.addScaled(&g.dB, dB, coefficient)
            gradients[update.id] = g
        }
    }

    public func step(_ step: EngineStep) throws {
        defer { for q in step.questions { release(q.updates, pooled: q.pooled) } }
        // Each question's updates through their generators (in generator order: the order its
        // pooled gradient is summed in) and, with a router rate, its pooled gradient into the
        // router; the gradients summed over the questions in order; then each optimiser once.
        var generatorGrads: [Int: [String: Tensor]] = [:]
        var routerGrads: [String: Tensor]?
        var router: Loaded?
        for q in step.questions {
            var dPooled = [Float](repeating: 0, count: q.pooled.values.count)
            for u in q.updates.sorted(by: { $0.generator < $1.generator }) {
                let c = u.generator
                guard step.generatorLRs[c] != nil else { throw EngineError("no learning rate for generator \(c)") }
                guard let (kept, g) = lock.withLock({ updates[u.id].flatMap { k in gradients[u.id].map { (k, $0) } } }) else {
                    throw EngineError("update \(u.id) of generator \(c) has no accumulated gradient")
                }
                let (weightGrads, dp) = try lock.withLock { try generators[c].backward(kept.tape, dA: g.dA, dB: g.dB) }
                for j in dPooled.indices { dPooled[j] += dp[j] }
                generatorGrads[c] = CPUEngine.sum(generatorGrads[c], weightGrads)
            }
            guard step.routerLR != nil else { continue }
            guard let (modelID, tape, positions) = lock.withLock({ tapes[q.pooled.id] }) else {
                throw EngineError("the pooled state \(q.pooled.id) was not kept for backward")
            }
            let l = try lock.withLock { () throws -> Loaded in
                guard let l = models[modelID], l.trainable else { throw EngineError("the pooled state's model is not trainable") }
                return l
            }
            router = l
            routerGrads = CPUEngine.sum(routerGrads, try l.model.backward(tape, dPooled: dPooled, positions: positions))
        }
        for (c, grads) in generatorGrads.sorted(by: { $0.key < $1.key }) {
            lock.withLock { generatorOptimizers[c].update(&generators[c].weights, gradients: grads, lr: step.generatorLRs[c]!) }
        }
        guard let lr = step.routerLR, let l = router, let routerGrads else { return }
        var weights = l.model.namedWeights
        l.rlOptimizer.update(&weights, gradients: routerGrads, lr: lr)
        if step.routerBF16 { weights = CPUEngine.bf16Rounded(weights) }
        l.replace(try DecoderModel(config: l.model.config, weights: weights))
    }

    /// Gradients summed by name (nil: the first, as it is).
    static func sum(_ total: [String: Tensor]?, _ more: [String: Tensor]) -> [String: Tensor] {
        guard var total else { return more }
        for (name, g) in more {
            if total[name] == nil { total[name] = g } else { Kernels.add(&total[name]!, g) }
        }
        return total
    }

    public func release(_ released: [EngineUpdate], pooled: PooledState?) {
        let ids = Set(released.map(\.id))
        lock.withLock {
            for id in ids { updates[id] = nil; gradients[id] = nil }
            calls = calls.filter { !ids.contains($0.value.update) }
            if let pooled { tapes[pooled.id] = nil }
        }
    }

    public func roundWeightsToBFloat16(_ model: EngineModel) throws {
        let l = try trainable(model)
        l.replace(try DecoderModel(config: l.model.config, weights: CPUEngine.bf16Rounded(l.model.namedWeights)))
    }

    /// Weights rounded to bfloat16 and back (round to nearest even), as bf16 storage keeps them.
    public static func bf16Rounded(_ weights: [String: Tensor]) -> [String: Tensor] {
        weights.mapValues { t in Tensor(shape: t.shape, data: t.data.map { HalfFloat.bf16ToFloat(HalfFloat.floatToBF16($0)) }) }
    }

    public func sftStep(_ model: EngineModel, batch: [[Int]], targetsFrom: [Int], accumulation: Int, settings: SFTStepSettings) throws -> Float {
        let l = try trainable(model)
        let trainer: DecoderTrainer
        if let t = l.sft { trainer = t } else {
            trainer = DecoderTrainer(model: l.model, learningRate: settings.lr, schedule: .constant, weightDecay: settings.weightDecay,
                                     maxGradientNorm: settings.maxGradientNorm)
            if let pending = l.pendingSFTState { trainer.optimizer.restore(pending); l.pendingSFTState = nil }
            l.sft = trainer
        }
        trainer.threads = threads
        trainer.learningRate = settings.lr
        trainer.maxGradientNorm = settings.maxGradientNorm
        let loss = try trainer.train(batch, targetsFrom: targetsFrom, accumulation: accumulation)
        l.replace(trainer.model)
        return loss
    }

    // MARK: State

    public func state(metadata: [String: String]) throws -> [UInt8] {
        var all: [String: Tensor] = [:]
        lock.withLock {
            for (id, l) in models where l.trainable {
                for (k, t) in l.model.namedWeights { all["m\(id).param." + k] = t }
                for (k, t) in l.rlOptimizer.state { all["m\(id).rl_opt." + k] = t }
                for (k, t) in l.sft?.optimizer.state ?? l.pendingSFTState ?? [:] { all["m\(id).sft_opt." + k] = t }
            }
            for (c, g) in generators.enumerated() {
                for (k, t) in g.weights { all["g\(c).param." + k] = t }
                for (k, t) in generatorOptimizers[c].state { all["g\(c).opt." + k] = t }
            }
        }
        let ranks = lock.withLock { generators.map { String($0.rank) }.joined(separator: ",") }
        return try SafeTensorsFile.serialize(all, metadata: metadata.merging(["engine": info.name, "generator_ranks": ranks]) { _, ours in ours })
    }

    public func restore(_ bytes: [UInt8]) throws -> [String: String] {
        let file = try SafeTensorsFile(bytes: bytes, name: "engine state")
        let all = try file.all()
        func part(_ prefix: String) -> [String: Tensor] {
            Dictionary(uniqueKeysWithValues: all.filter { $0.key.hasPrefix(prefix) }.map { (String($0.key.dropFirst(prefix.count)), $0.value) })
        }
        for l in lock.withLock({ Array(models.values) }) where l.trainable {
            let id = l.handle.id
            l.replace(try DecoderModel(config: l.model.config, weights: part("m\(id).param.")))
            l.rlOptimizer.restore(part("m\(id).rl_opt."))
            let sft = part("m\(id).sft_opt.")
            if let t = l.sft { t.optimizer.restore(sft) } else if !sft.isEmpty { l.pendingSFTState = sft }
        }
        let ranks = (file.metadata["generator_ranks"] ?? "").split(separator: ",").compactMap { Int($0) }
        let g = try ranks.indices.map { c in try ParameterGenerator(weights: part("g\(c).param."), rank: ranks[c]) }
        var opts = g.map { _ in AdamW(weightDecay: 0) }
        for c in opts.indices { opts[c].restore(part("g\(c).opt.")) }
        lock.withLock { generators = g; generatorOptimizers = opts }
        return file.metadata
    }
}
