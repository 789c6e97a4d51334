public import LLM
public import NN
public import Pipeline
import Threading

/// Joint RL of the router and the parameter generators, one training question a step, as the
/// reference's `rl_batch.py` takes it (docs/routing.md, Joint RL; several a step is the
/// `questions_per_update` variant): route greedily with the current
/// router; generate the update of each chosen candidate from the router's pooled state (both
/// roles of one candidate share it); run the dialogue sampled (T 1.0, top-p 0.9 under the
/// reference's nucleus rule, ≤ max_tokens); reward = F1, 0 → −1; loss = −reward · Σ log q over
/// every call of both agents; one AdamW step for the router (its lr, weight decay 0.01) and for
/// each generator used (its lr, decay 0), each decayed linearly 1.0 → 0.1, the router's
/// schedule stepping every question and a generator's only when it was used. The router's
/// discrete choice gets no direct gradient: it moves only through the shared backbone.
///
/// The `rl-train` stage drives it. Its tensors (router, candidates, generators, optimiser moments)
/// are the engine's; its checkpoint is the engine's state with this trainer's counters.
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

    /// The router, the candidates and the generators, all in one engine.
    public let system: HAPSSystem
    public var router: DecoderRouter { system.router }
    public var engine: any Engine { system.engine }
    /// The dialogue as evaluated (greedy, the stage's reply length); training samples it as
    /// the reference does (`sampling`).
    public let sampler: DialogueSampler
    public let settings: JointRLSettings
    /// Steps (updates) over which the learning rates decay to 0.1 of their base: epochs ×
    /// questions, over `questions_per_update` rounded up.
    public let totalSteps: Int
    /// The training dialogues' sampling: the reference's T 1.0 and top-p 0.9, the sampler's
    /// reply length, and the stage's seed (moved on per step and sample).
    public let sampling: GenerationSettings
    /// Scheduler steps of each generator: the updates that used it.
    public private(set) var generatorSteps: [Int]
    /// Updates made (the router's scheduler steps): questions trained on, one an update.
    public private(set) var step = 0
    /// The last rewards, for the baseline variant (at most `baselineWindow`).
    public private(set) var recentRewards: [Double] = []

    /// The reference's sampling of training dialogues (`rl_batch.py`): temperature 1.0, top-p 0.9.
    public static let referenceSampling = (temperature: 1.0, topP: 0.9)

    /// `router` and `candidates` in one engine, which gets one generator a candidate.
    /// `seed`: the stage's; it initialises the generators (the reference's `set_seed(43)`
    /// before each, so every candidate's starts the same) and seeds the training dialogues.
    public init(router: DecoderRouter, candidates: [EngineChatModel], sampler: DialogueSampler, settings: JointRLSettings,
                totalSteps: Int, seed: UInt64) throws {
        guard candidates.allSatisfy({ $0.engine === router.engine }) else {
            throw RouterError("joint RL needs the router and the candidates in one engine")
        }
        if settings.router_bf16 { try router.engine.roundWeightsToBFloat16(router.model) }
        system = HAPSSystem(router: router, candidates: candidates, alpha: Float(settings.alpha), layers: settings.layers, pooling: settings.pooling ?? .prompt)
        self.sampler = sampler; self.settings = settings; self.totalSteps = totalSteps
        var sampling = sampler.dialogue.settings
        (sampling.temperature, sampling.topP) = JointRLTrainer.referenceSampling
        sampling.seed = Int(truncatingIfNeeded: seed)
        self.sampling = sampling
        try router.engine.makeGenerators(candidates.map {
            GeneratorShape(input: router.model.config.hiddenSize, hidden: settings.mlp_hidden_dim, layers: settings.mlp_num_layer,
                           target: $0.config.hiddenSize, rank: settings.lora_r)
        }, seed: seed)
        generatorSteps = candidates.map { _ in 0 }
    }

    var decay: LearningRateSchedule { .linearDecay(from: 1, to: 0.1, total: totalSteps) }

    /// One training question (`qid`: its number, for the sample's row): `samples` dialogues
    /// under one routing and one set of updates, their gradients averaged. On an engine that
    /// batches concurrent calls the dialogues run at once, their calls decoding together.
    public func train(_ q: HotpotQuestion, qid: Int) throws -> StepRecord {
        try train([(q, qid)])[0]
    }

    /// One update from several questions (`questions_per_update`; one: the reference's step):
    /// each routed by the router as it is and given its own updates, each question's
    /// `samples` dialogues sampled (all of the update's at once on an engine that batches
    /// concurrent calls), the gradient the mean of the questions' (each question's the mean
    /// of its samples'), then one optimiser step of the router and of each generator that
    /// some question used. A record per question, in order; their learning rates are the update's.
    public func train(_ batch: [(question: HotpotQuestion, qid: Int)]) throws -> [StepRecord] {
        precondition(!batch.isEmpty, "an update needs a question")
        let actions = try router.actions(batch.map(\.question.question))
        var made: [(pooled: PooledState, updates: [Int: EngineUpdate])] = []
        let runs: [[Run]]
        do {
            for (i, item) in batch.enumerated() {
                made.append(try system.updates(item.question.question, action: actions[i], keepForBackward: true))
            }
            runs = try sampleDialogues(batch, actions: actions, updates: made.map(\.updates))
        } catch {
            for m in made { engine.release(Array(m.updates.values), pooled: m.pooled) }
            throw error
        }
        // d(−(1/Q) Σ_q (1/K) Σ_k A_qk·Σ log q_qk)/dA, dB per candidate, summed in the engine.
        let mean = { (xs: [Double]) in xs.reduce(0, +) / Double(xs.count) }
        var records: [StepRecord] = []
        for (i, questionRuns) in runs.enumerated() {
            let rewards = questionRuns.map(\.reward)
            let advantages = rewards.indices.map { k in rewards[k] - baseline(rewards, leaving: k) }
            if settings.baseline_window > 0 {  // question by question: a later question's baseline sees the earlier's rewards
                recentRewards.append(contentsOf: rewards)
                recentRewards.removeFirst(max(0, recentRewards.count - settings.baseline_window))
            }
            var logq: Double = 0, loss: Double = 0
            for (k, run) in questionRuns.enumerated() {
                for (c, model) in run.adapted.sorted(by: { $0.key < $1.key }) {  // a fixed order: the sums below are logged
                    let total = model.logq
                    logq += Double(total) / Double(questionRuns.count)
                    loss -= advantages[k] * Double(total) / Double(questionRuns.count)
                    try engine.accumulate(made[i].updates[c]!, calls: model.calls,
                                          coefficient: Float(-advantages[k] / Double(questionRuns.count) / Double(batch.count)))
                }
            }
            records.append(StepRecord(action: actions[i], reward: mean(rewards), advantage: mean(advantages), logq: logq, loss: loss,
                                      routerLR: 0, generatorLRs: [:], rewards: rewards))
        }
        var generatorLRs: [Int: Float] = [:]
        for c in Set(made.flatMap(\.updates.keys)).sorted() {
            generatorLRs[c] = Float(settings.low_router_lr) * decay.multiplier(generatorSteps[c])
            generatorSteps[c] += 1
        }
        let routerLR = Float(settings.high_router_lr) * decay.multiplier(step)
        try engine.step(EngineStep(updates: Array(made[0].updates.values), generatorLRs: generatorLRs,
                                   routerLR: settings.backbone_gradient && !settings.router_frozen ? routerLR : nil,
                                   pooled: made[0].pooled, routerBF16: settings.router_bf16,
                                   more: made.dropFirst().map { EngineStep.Question(pooled: $0.pooled, updates: Array($0.updates.values)) }))
        step += 1
        return records.map { var r = $0; r.routerLR = routerLR; r.generatorLRs = generatorLRs; return r }
    }

    /// A sampled dialogue's reward and the adapted models that recorded its calls.
    typealias Run = (reward: Double, adapted: [Int: LoRAChatModel])

    /// Each question's `samples` dialogues (question i's sample k under its own seed, from
    /// its number among the training steps' questions); all at once where the engine batches
    /// concurrent calls (up to 64 in flight), else one after another. In the order of i, k either way.
    func sampleDialogues(_ batch: [(question: HotpotQuestion, qid: Int)], actions: [Int], updates: [[Int: EngineUpdate]]) throws -> [[Run]] {
        let firstQuestion = step * settings.questions_per_update
        let samples = settings.samples
        let dialogue = { @Sendable (i: Int, k: Int) throws -> Run in
            final class Adapted: @unchecked Sendable { var models: [Int: LoRAChatModel] = [:] }
            let adapted = Adapted()
            var rl = self.sampler
            rl.dialogue.settings = self.sampling
            rl.dialogue.settings.seed = self.sampling.seed.map { JointRLTrainer.sampleSeed($0, step: firstQuestion + i, sample: k) }
            // With alpha 0 every gradient is exactly 0 (the update is 0·A·B): the calls need not
            // record log q and its gradient; the optimisers still step on zeros (weight decay).
            let sample = try self.system.run(batch[i].question, qid: batch[i].qid, action: actions[i], updates: updates[i], sampler: rl,
                                             recording: self.settings.alpha != 0) { c, m in
                adapted.models[c] = m
                return m
            }
            return (sample.metrics.f1 == 0 ? -1 : sample.metrics.f1, adapted.models)
        }
        let count = batch.count * samples
        final class Runs: @unchecked Sendable {
            let lock = Lock()
            var results: [Run?]
            init(_ n: Int) { results = Array(repeating: nil, count: n) }
        }
        let runs = Runs(count)
        try Parallel.forEach(count, threads: engine.batchesConcurrentCalls ? min(count, 64) : 1) { j in
            let run = try dialogue(j / samples, j % samples)
            runs.lock.withLock { runs.results[j] = run }
        }
        return batch.indices.map { i in (0..<samples).map { runs.results[i * samples + $0]! } }
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

    /// Counts a step without training (after early stopping), so that the loop's count ends.
    public func skipStep() { step += 1 }

    // MARK: Checkpoints

    /// The router's and generators' weights and optimiser moments (the engine's), and the
    /// counters, as safetensors bytes (`restore` continues from them bit for bit).
    public func state() throws -> [UInt8] { try engine.state(metadata: metadata) }
    public func restore(_ bytes: [UInt8]) throws { try resume(try engine.restore(bytes)) }

    public var checkpointsAsFiles: Bool { engine.writesStateFiles }
    public func save(into directory: String) throws { try engine.saveState(to: directory + "/state.safetensors", metadata: metadata) }
    public func restore(from directory: String) throws { try resume(try engine.restoreState(from: directory + "/state.safetensors")) }

    /// The counters, in the state's metadata.
    private var metadata: [String: String] {
        let counters = JSONValue.object(["step": .number(Double(step)), "generator_steps": .array(generatorSteps.map { .number(Double($0)) }),
                                         "recent_rewards": .array(recentRewards.map { .number($0) })])
        return ["counters": counters.canonical]
    }

    private func resume(_ metadata: [String: String]) throws {
        guard let text = metadata["counters"], let counters = try? JSONParser.parse(text),
              let s = counters["step"]?.intValue, let g = counters["generator_steps"]?.arrayValue?.compactMap(\.intValue), g.count == generatorSteps.count else {
            throw RouterError("joint RL checkpoint: no counters")
        }
        step = s; generatorSteps = g
        recentRewards = counters["recent_rewards"]?.arrayValue?.compactMap(\.doubleValue) ?? []
    }
}
