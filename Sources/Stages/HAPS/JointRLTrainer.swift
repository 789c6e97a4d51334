public import LLM
public import NN
public import Pipeline

/// Joint RL of the router and the parameter generators, one training question a step, as the
/// reference's `rl_batch.py` takes it (docs/routing.md, Joint RL): route greedily with the current
/// router; generate the update of each chosen candidate from the router's pooled state (both
/// roles of one candidate share it); run the dialogue sampled (T 1.0, top-p 0.9 under the
/// reference's nucleus rule, ≤ max_tokens); reward = F1, 0 → −1; loss = −reward · Σ log q over
/// every call of both agents; one AdamW step for the router (its lr, weight decay 0.01) and for
/// each generator used (its lr, decay 0), each decayed linearly 1.0 → 0.1, the router's
/// schedule stepping every question and a generator's only when it was used. The router's
/// discrete choice gets no direct gradient: it moves only through the shared backbone.
///
/// The `rl-train` stage (issue 16) drives it; its state is one safetensors blob for checkpoints.
public final class JointRLTrainer: Checkpointable, @unchecked Sendable {
    /// What one step did.
    public struct StepRecord: Sendable {
        public var action: Int
        public var reward: Double
        /// The reward less the baseline (the reward itself without one): what scales −Σ log q.
        public var advantage: Double
        public var logq: Double
        public var loss: Double
        public var routerLR: Float
        public var generatorLRs: [Int: Float]
        /// Each sampled dialogue's reward (one unless `samples` > 1).
        public var rewards: [Double]
    }

    public private(set) var router: DecoderRouter
    public private(set) var generators: [ParameterGenerator]
    public let candidates: [LocalChatModel]
    /// The dialogue as evaluated (greedy, the stage's reply length); training samples it as
    /// the reference does (`sampling`).
    public let sampler: DialogueSampler
    public let settings: JointRLSettings
    /// Steps over which the learning rates decay to 0.1 of their base (epochs × questions).
    public let totalSteps: Int
    /// The training dialogues' sampling: the reference's T 1.0 and top-p 0.9, the sampler's
    /// reply length, and the stage's seed (moved on per step and sample).
    public let sampling: GenerationSettings
    var routerOptimizer = AdamW(weightDecay: 0.01)
    var generatorOptimizers: [AdamW]
    /// Scheduler steps of each generator: the questions that used it.
    public private(set) var generatorSteps: [Int]
    /// Questions trained on (the router's scheduler steps).
    public private(set) var step = 0
    /// The last rewards, for the baseline variant (at most `baselineWindow`).
    public private(set) var recentRewards: [Double] = []

    /// The reference's sampling of training dialogues (`rl_batch.py`): temperature 1.0, top-p 0.9.
    public static let referenceSampling = (temperature: 1.0, topP: 0.9)

    /// `seed`: the stage's; it initialises the generators (the reference's `set_seed(43)`
    /// before each, so every candidate's starts the same) and seeds the training dialogues.
    public init(router: DecoderRouter, candidates: [LocalChatModel], sampler: DialogueSampler, settings: JointRLSettings,
                totalSteps: Int, seed: UInt64) throws {
        let router = settings.router_bf16 ? try router.with(model: try DecoderModel(config: router.model.config,
                                                                                   weights: JointRLTrainer.bf16Rounded(router.model.namedWeights)))
                                          : router
        self.router = router; self.candidates = candidates; self.sampler = sampler; self.settings = settings; self.totalSteps = totalSteps
        var sampling = sampler.dialogue.settings
        (sampling.temperature, sampling.topP) = JointRLTrainer.referenceSampling
        sampling.seed = Int(truncatingIfNeeded: seed)
        self.sampling = sampling
        let h = router.model.config.hiddenSize
        generators = candidates.map {
            ParameterGenerator(inputSize: h, hiddenSize: settings.mlp_hidden_dim, layers: settings.mlp_num_layer,
                               targetSize: $0.model.config.hiddenSize, rank: settings.lora_r, seed: seed)
        }
        generatorOptimizers = candidates.map { _ in AdamW(weightDecay: 0) }
        generatorSteps = candidates.map { _ in 0 }
    }

    var decay: LearningRateSchedule { .linearDecay(from: 1, to: 0.1, total: totalSteps) }

    /// The router and generators as they are now.
    public var system: HAPSSystem { HAPSSystem(router: router, generators: generators, alpha: Float(settings.alpha), layers: settings.layers) }

    /// The updates the generators give the candidates of `action` for `question`, with what
    /// backward needs.
    public func updates(_ question: String, action: Int) throws -> (routerTape: DecoderTape, loras: [Int: (LoRAUpdate, ParameterGenerator.Tape)]) {
        try system.updates(question, action: action)
    }

    /// One training question (`qid`: its number, for the sample's row): `samples` dialogues
    /// under one routing and one set of updates, their gradients averaged.
    public func train(_ q: HotpotQuestion, qid: Int) throws -> StepRecord {
        let action = try router.actions([q.question])[0]
        let (routerTape, loras) = try updates(q.question, action: action)
        var runs: [(reward: Double, adapted: [Int: LoRAChatModel])] = []
        for k in 0..<settings.samples {
            var adapted: [Int: LoRAChatModel] = [:]
            var rl = sampler
            rl.dialogue.settings = sampling
            rl.dialogue.settings.seed = sampling.seed.map { JointRLTrainer.sampleSeed($0, step: step, sample: k) }
            // With alpha 0 every gradient is exactly 0 (the update is 0·A·B): the calls need not
            // record log q and its gradient; the optimisers still step on zeros (weight decay).
            let sample = try system.run(q, qid: qid, action: action, loras: loras.mapValues(\.0), candidates: candidates, sampler: rl,
                                        gradients: settings.alpha != 0) { c, m in
                adapted[c] = m
                return m
            }
            runs.append((sample.metrics.f1 == 0 ? -1 : sample.metrics.f1, adapted))
        }
        let rewards = runs.map(\.reward)
        let advantages = rewards.indices.map { k in rewards[k] - baseline(rewards, leaving: k) }
        if settings.baseline_window > 0 {
            recentRewards.append(contentsOf: rewards)
            recentRewards.removeFirst(max(0, recentRewards.count - settings.baseline_window))
        }
        // d(−(1/K) Σ_k A_k·Σ log q_k)/dA, dB per candidate, summed over the samples.
        var logq: Double = 0, loss: Double = 0
        var gradients: [Int: (dA: Tensor, dB: Tensor)] = [:]
        for (k, run) in runs.enumerated() {
            for (c, model) in run.adapted.sorted(by: { $0.key < $1.key }) {  // a fixed order: the sums below are logged
                let total = model.total
                logq += Double(total.logq) / Double(runs.count)
                loss -= advantages[k] * Double(total.logq) / Double(runs.count)
                let scale = Float(-advantages[k] / Double(runs.count))
                var g = gradients[c] ?? (Tensor(zeros: total.dA.shape), Tensor(zeros: total.dB.shape))
                Kernels.addScaled(&g.dA, total.dA, scale)
                Kernels.addScaled(&g.dB, total.dB, scale)
                gradients[c] = g
            }
        }
        var dPooled = [Float](repeating: 0, count: router.model.config.hiddenSize)
        var generatorLRs: [Int: Float] = [:]
        for c in gradients.keys.sorted() {
            let (grads, dp) = try generators[c].backward(loras[c]!.1, dA: gradients[c]!.dA, dB: gradients[c]!.dB)
            for j in dPooled.indices { dPooled[j] += dp[j] }
            let lr = Float(settings.low_router_lr) * decay.multiplier(generatorSteps[c])
            generatorOptimizers[c].update(&generators[c].weights, gradients: grads, lr: lr)
            generatorSteps[c] += 1
            generatorLRs[c] = lr
        }
        let routerLR = Float(settings.high_router_lr) * decay.multiplier(step)
        if settings.backbone_gradient && !settings.router_frozen {
            let grads = try router.model.backward(routerTape, dPooled: dPooled)
            var weights = router.model.namedWeights
            routerOptimizer.update(&weights, gradients: grads, lr: routerLR)
            if settings.router_bf16 { weights = JointRLTrainer.bf16Rounded(weights) }
            router = try router.with(model: try DecoderModel(config: router.model.config, weights: weights))
        }
        step += 1
        let mean = { (xs: [Double]) in xs.reduce(0, +) / Double(xs.count) }
        return StepRecord(action: action, reward: mean(rewards), advantage: mean(advantages), logq: logq, loss: loss, routerLR: routerLR,
                          generatorLRs: generatorLRs, rewards: rewards)
    }

    /// What sample `k`'s reward is measured against: the mean of the other samples' rewards
    /// (group baseline), the mean of the recent rewards (window), or nothing (the reference).
    func baseline(_ rewards: [Double], leaving k: Int) -> Double {
        if settings.group_baseline && rewards.count > 1 {
            return (rewards.reduce(0, +) - rewards[k]) / Double(rewards.count - 1)
        }
        return recentRewards.isEmpty ? 0 : recentRewards.reduce(0, +) / Double(recentRewards.count)
    }

    /// The sampling seed of sample `k` (< 64) at `step`: draw number step·64 + k of SplitMix64
    /// from the stage's seed, so every dialogue of a run has its own stream, fixed by the seed.
    public static func sampleSeed(_ seed: Int, step: Int, sample k: Int) -> Int {
        var r = SeededRandom(seed: UInt64(bitPattern: Int64(seed)) &+ 0x9E37_79B9_7F4A_7C15 &* UInt64(step * 64 + k))
        return Int(truncatingIfNeeded: r.next() >> 1)
    }

    /// Weights rounded to bfloat16 and back (round to nearest even), as bf16 storage keeps them.
    static func bf16Rounded(_ weights: [String: Tensor]) -> [String: Tensor] {
        weights.mapValues { t in Tensor(shape: t.shape, data: t.data.map { HalfFloat.bf16ToFloat(HalfFloat.floatToBF16($0)) }) }
    }

    /// Counts a step without training (after early stopping), so that the loop's count ends.
    public func skipStep() { step += 1 }

    // MARK: Checkpoints

    /// The router's and generators' weights and optimiser moments, and the counters, as
    /// safetensors bytes (`restore` continues from them bit for bit).
    public func state() throws -> [UInt8] {
        var all: [String: Tensor] = [:]
        for (k, t) in router.model.namedWeights { all["router." + k] = t }
        for (k, t) in routerOptimizer.state { all["router_opt." + k] = t }
        for (c, g) in generators.enumerated() {
            for (k, t) in g.weights { all["generator\(c)." + k] = t }
            for (k, t) in generatorOptimizers[c].state { all["generator\(c)_opt." + k] = t }
        }
        let counters = JSONValue.object(["step": .number(Double(step)), "generator_steps": .array(generatorSteps.map { .number(Double($0)) }),
                                         "recent_rewards": .array(recentRewards.map { .number($0) })])
        return try SafeTensorsFile.serialize(all, metadata: ["counters": counters.canonical])
    }

    public func restore(_ bytes: [UInt8]) throws {
        let file = try SafeTensorsFile(bytes: bytes, name: "joint RL checkpoint")
        let all = try file.all()
        func part(_ prefix: String) -> [String: Tensor] {
            Dictionary(uniqueKeysWithValues: all.filter { $0.key.hasPrefix(prefix) }.map { (String($0.key.dropFirst(prefix.count)), $0.value) })
        }
        router = try router.with(model: try DecoderModel(config: router.model.config, weights: part("router.")))
        routerOptimizer.restore(part("router_opt."))
        for c in generators.indices {
            generators[c] = try ParameterGenerator(weights: part("generator\(c)."), rank: settings.lora_r)
            generatorOptimizers[c].restore(part("generator\(c)_opt."))
        }
        guard let text = file.metadata["counters"], let counters = try? JSONParser.parse(text),
              let s = counters["step"]?.intValue, let g = counters["generator_steps"]?.arrayValue?.compactMap(\.intValue), g.count == generators.count else {
            throw RouterError("joint RL checkpoint: no counters")
        }
        step = s; generatorSteps = g
        recentRewards = counters["recent_rewards"]?.arrayValue?.compactMap(\.doubleValue) ?? []
    }
}
