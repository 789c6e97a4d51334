import Foundation
import XCTest
@testable import LLM
import NN
import JSON
import Stages

/// The parameter generator and the gradient chain of joint RL against torch
/// (`Tests/Fixtures/generator`, the reference's generator written out from the reference's rl_batch.py; docs/routing.md, Joint RL):
/// router → pooled state → generator → A, B → the candidate's log q of a fixed reply under the
/// reference's nucleus rule → every gradient of −R·log q, ours within 1e-4 of scale.
final class ParameterGeneratorTests: XCTestCase {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/generator").path

    func assertClose(_ ours: [Float], _ theirs: [Float], _ what: String, relative: Float = 1e-4, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(ours.count, theirs.count, what, file: file, line: line)
        let scale = max(theirs.map { abs($0) }.max() ?? 0, 1e-12)
        let worst = zip(ours, theirs).map { abs($0 - $1) }.max() ?? 0
        XCTAssertLessThanOrEqual(worst, relative * scale, "\(what): off by \(worst) at scale \(scale)", file: file, line: line)
    }

    func testTheChainFromRouterToLogQMatchesTorch() throws {
        let f = ParameterGeneratorTests.fixtures
        let ref = try SafeTensorsFile(path: f + "/reference.safetensors").all()
        let settings = try JSONParser.parse(String(contentsOfFile: f + "/settings.json", encoding: .utf8))
        let r = Float(settings["R"]!.doubleValue!), alpha = Float(settings["alpha"]!.doubleValue!), rank = settings["rank"]!.intValue!
        let router = try DecoderModel(directory: f + "/router"), candidate = try DecoderModel(directory: f + "/candidate")
        let generator = try ParameterGenerator(weights: try SafeTensorsFile(path: f + "/generator.safetensors").all(), rank: rank)
        XCTAssertEqual([generator.inputSize, generator.hiddenSize, generator.layers, generator.targetSize], [32, 256, 2, 16])

        // Forward: pooled state, A, B, log q.
        let routerTape = try router.tapedForward(ref["prompt"]!.data.map { Int($0) })
        let pooled = DecoderModel.pooled(routerTape)
        assertClose(pooled, ref["pooled"]!.data, "pooled state")
        let (a, b, genTape) = try generator.forward(pooled)
        assertClose(a.data, ref["A"]!.data, "A")
        assertClose(b.data, ref["B"]!.data, "B")
        let prompt = ref["candidate_prompt"]!.data.map { Int($0) }, reply = ref["reply"]!.data.map { Int($0) }
        let lora = LoRAUpdate(a: a, b: b, alpha: alpha, layers: 1)
        let tape = try candidate.tapedForward(prompt + reply, lora: lora)
        let positions = reply.indices.map { (row: prompt.count + $0 - 1, token: reply[$0]) }
        var (logq, dLogits) = DecoderModel.sampledLogProbability(logits: tape.logits, positions: positions, temperature: 1, topP: 0.9, rule: .reference)
        XCTAssertEqual(logq, ref["logq"]!.data[0], accuracy: 1e-4 * abs(ref["logq"]!.data[0]))

        // Backward of −R·log q: LoRA, generator, router backbone.
        for i in dLogits.data.indices { dLogits.data[i] *= -r }
        let loraGrads = try candidate.backward(tape, dLogits: dLogits, target: .lora)
        assertClose(loraGrads["lora.A"]!.data, ref["grad.A"]!.data, "dA")
        assertClose(loraGrads["lora.B"]!.data, ref["grad.B"]!.data, "dB")
        let (genGrads, dPooled) = try generator.backward(genTape, dA: loraGrads["lora.A"]!, dB: loraGrads["lora.B"]!)
        for (name, g) in genGrads { assertClose(g.data, ref["grad." + name]!.data, "generator \(name)") }
        XCTAssertEqual(genGrads.count, 8)
        let routerGrads = try router.backward(routerTape, dPooled: dPooled)
        let expected = ref.keys.filter { $0.hasPrefix("grad.router.") }
        XCTAssertEqual(Set(routerGrads.keys), Set(expected.map { String($0.dropFirst("grad.router.".count)) }), "every router weight but the head")
        for (name, g) in routerGrads { assertClose(g.data, ref["grad.router." + name]!.data, "router \(name)") }
    }

    /// Finite differences on the generator alone: the gradient of a linear functional of A and B.
    func testTheGeneratorsGradientIsTheDerivative() throws {
        var g = ParameterGenerator(inputSize: 6, hiddenSize: 8, layers: 2, targetSize: 5, rank: 2, seed: 43)
        var rng = SamplingRandom(seed: 1)
        let start = g.weights
        for name in ["mlp.0.bias", "mlp.2.bias"] { g.weights[name]!.data = (0..<8).map { _ in rng.unit() - 0.5 } }  // away from ReLU's kink
        let pooled = (0..<6).map { _ in rng.unit() * 2 - 1 }
        let wa = Tensor(shape: [5, 2], data: (0..<10).map { _ in rng.unit() - 0.5 }), wb = Tensor(shape: [2, 5], data: (0..<10).map { _ in rng.unit() - 0.5 })
        func value(_ g: ParameterGenerator, _ x: [Float]) throws -> Double {
            let (a, b, _) = try g.forward(x)
            return zip(a.data, wa.data).reduce(0) { $0 + Double($1.0 * $1.1) } + zip(b.data, wb.data).reduce(0) { $0 + Double($1.0 * $1.1) }
        }
        let (_, _, tape) = try g.forward(pooled)
        let (grads, dPooled) = try g.backward(tape, dA: wa, dB: wb)
        // Units whose pre-activation is within the step of ReLU's kink have no derivative to check.
        let nearKink = tape.activations.map { $0.data.map { abs($0) < 2e-2 } }
        for name in ["mlp.0.weight", "mlp.2.bias", "head_a.weight", "head_b.bias"] {
            for index in [0, 3] {
                if name == "mlp.2.bias" && nearKink[1][index] { continue }
                if name == "mlp.0.weight" && nearKink[0][index / 6] { continue }
                var plus = g, minus = g
                plus.weights[name]!.data[index] += 1e-2; minus.weights[name]!.data[index] -= 1e-2
                let numeric = (try value(plus, pooled) - value(minus, pooled)) / 2e-2
                XCTAssertEqual(Double(grads[name]!.data[index]), numeric, accuracy: 1e-3 + 1e-2 * abs(numeric), "\(name)[\(index)]")
            }
        }
        for j in 0..<6 {
            var plus = pooled, minus = pooled
            plus[j] += 1e-2; minus[j] -= 1e-2
            XCTAssertEqual(Double(dPooled[j]), (try value(g, plus) - value(g, minus)) / 2e-2, accuracy: 1e-3, "pooled[\(j)]")
        }
        // Every candidate's generator starts from the same weights (one seed), as the reference's.
        XCTAssertEqual(ParameterGenerator(inputSize: 6, hiddenSize: 8, layers: 2, targetSize: 5, rank: 2, seed: 43).weights, start)
        XCTAssertEqual(start["mlp.2.bias"]!.data, Array(repeating: 0, count: 8), "biases start at zero")
        XCTAssertEqual(Set(g.weights.keys), ["mlp.0.weight", "mlp.0.bias", "mlp.2.weight", "mlp.2.bias", "head_a.weight", "head_a.bias", "head_b.weight", "head_b.bias"])
    }
}

/// A candidate under a LoRA update as the dialogue sampler's `ChatModel`, on the CPU engine.
final class LoRAChatModelTests: XCTestCase {
    func testCallsAreRecordedAndKeyedApartFromTheBaseModel() throws {
        let engine = CPUEngine()
        let directory = try LocalChatModelTests.makeModel()
        let base = try EngineChatModel(directory: directory, name: "tiny", engine: engine)
        var rng = SamplingRandom(seed: 5)
        func random(_ shape: [Int]) -> Tensor { Tensor(shape: shape, data: (0..<shape.reduce(1, *)).map { _ in rng.unit() - 0.5 }) }
        var ids = 1000
        func update(_ b: Tensor, _ a: Tensor) -> EngineUpdate {
            ids += 1
            return EngineUpdate(id: ids, generator: 0, lora: LoRAUpdate(a: a, b: b, alpha: 0.5, layers: 1))
        }
        let a = random([16, 4])
        // A zero update (B = 0) leaves the model as it is: the same greedy reply as the base,
        // and as the local backend's (the same decoder, outside the engine).
        let zero = LoRAChatModel(base: base, update: update(Tensor(zeros: [4, 16]), a))
        let greedy = GenerationSettings(maxTokens: 8)
        XCTAssertEqual(try zero.chat([.user("Where?")], settings: greedy), try base.chat([.user("Where?")], settings: greedy))
        XCTAssertEqual(try base.chat([.user("Where?")], settings: greedy),
                       try LocalChatModel(directory: directory, name: "tiny").chat([.user("Where?")], settings: greedy))
        // Without recording (evaluation), the same reply, through the batcher, recorded nowhere.
        let u0 = update(random([4, 16]), a)
        let recording = LoRAChatModel(base: base, update: u0), replying = LoRAChatModel(base: base, update: u0, recording: false)
        XCTAssertEqual(try replying.chat([.user("Where?")], settings: greedy).text, try recording.chat([.user("Where?")], settings: greedy).text)
        XCTAssertTrue(replying.calls.isEmpty)
        XCTAssertEqual(recording.calls.count, 1)
        // Sampled calls under a real update: each recorded with its log q.
        let u = update(random([4, 16]), a)
        let model = LoRAChatModel(base: base, update: u, rule: .reference)
        let sampled = GenerationSettings(temperature: 1, topP: 0.9, maxTokens: 5, seed: 3)
        let first = try base.chat([.user("Where?")], settings: sampled, update: u, rule: .reference).engine
        _ = try model.chat([.user("Where?")], settings: sampled)
        _ = try model.chat([.user("When?")], settings: sampled)
        XCTAssertEqual(model.calls.count, 2)
        XCTAssertEqual(Set(model.calls).count, 2, "each call its own record")
        let second = try base.chat([.user("When?")], settings: sampled, update: u, rule: .reference).engine
        XCTAssertEqual(model.logq, first.logq + second.logq, accuracy: 1e-5, "Σ log q over the calls, in order")
        // Memo keys: the update's digest joins the key; the same update gives the same key.
        let messages = [ChatMessage.user("Where?")]
        let withUpdate = MemoizedChatModel.key(identity: model.identity, adapter: model.adapter, messages: messages, settings: greedy)
        XCTAssertNotEqual(withUpdate, MemoizedChatModel.key(identity: base.identity, adapter: base.adapter, messages: messages, settings: greedy))
        XCTAssertNotEqual(model.adapter, zero.adapter)
        XCTAssertEqual(LoRAChatModel(base: base, update: u, rule: .reference).adapter, model.adapter)
        XCTAssertNotEqual(LoRAChatModel(base: base, update: u, rule: .standard).adapter, model.adapter, "the nucleus rule is part of it")
    }
}

/// One joint-RL step on tiny random models: the generators of the chosen candidates and the
/// router's backbone move; an unused generator's weights and optimiser state stay byte-identical;
/// a trainer restored from a checkpoint takes the next step to the same bytes.
final class JointRLTrainerTests: XCTestCase {
    static let question = try! HotpotQA.load(URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("dataset/valid.jsonl").path)[0]

    func trainer(frozen: Bool = false, baseline: Int = 0, seed: UInt64 = 43, _ extra: [(String, JSONValue)] = []) throws -> JointRLTrainer {
        let router = try DecoderRouter(directory: try LocalChatModelTests.makeModel(), engine: CPUEngine(), space: ActionSpace(), settings: .init(candidates: ["a", "b"]))
        let candidates = try ["a", "b"].map { try EngineChatModel(directory: try LocalChatModelTests.makeModel(), name: $0, engine: router.engine) }
        let sampler = DialogueSampler(dialogue: Dialogue(budget: 1, settings: GenerationSettings(maxTokens: 8)), retriever: LexicalRetriever(), names: ["a", "b"])
        let settings = try JointRLSettings.from(.object([("high_router_lr", 1e-3), ("low_router_lr", 1e-3), ("alpha", 0.5), ("lora_r", 2),
                                                         ("router_frozen", .bool(frozen)), ("baseline_window", .number(Double(baseline)))] + extra))
        return try JointRLTrainer(router: router, candidates: candidates, sampler: sampler, settings: settings, totalSteps: 4, seed: seed)
    }

    func gens(_ t: JointRLTrainer) throws -> [[String: Tensor]] { try t.engine.generatorWeights() }
    func routerWeights(_ t: JointRLTrainer) throws -> [String: Tensor] { try t.engine.weights(t.router.model) }

    /// The stage's seed initialises the generators (43, the reference's `set_seed(43)`, by
    /// default); `mlp_num_layer` and `mlp_hidden_dim` shape them; training samples at the
    /// sampler's reply length under the reference's T 1.0 and top-p 0.9.
    func testTheSettingsReachTheGenerators() throws {
        let t = try trainer()
        XCTAssertEqual(try gens(t)[0], ParameterGenerator(inputSize: t.router.model.config.hiddenSize,
                                                                   targetSize: t.system.candidates[0].config.hiddenSize, rank: 2, seed: 43).weights)
        XCTAssertNotEqual(try gens(try trainer(seed: 7))[0], try gens(t)[0], "the stage's seed reaches the initialisation")
        let shaped = try trainer([("mlp_num_layer", 3), ("mlp_hidden_dim", 16)])
        XCTAssertEqual(try gens(shaped)[0]["mlp.0.weight"]?.shape, [16, t.router.model.config.hiddenSize])
        XCTAssertEqual(try gens(shaped)[0]["mlp.4.weight"]?.shape, [16, 16], "three hidden layers")
        XCTAssertNil(try gens(shaped)[0]["mlp.6.weight"])
        XCTAssertEqual([t.sampling.temperature, t.sampling.topP], [1, 0.9])
        XCTAssertEqual(t.sampling.maxTokens, 8, "the stage's max_tokens, not 256")
        XCTAssertEqual(t.sampler.dialogue.settings.temperature, 0, "evaluations are greedy")
    }

    func testAStepMovesWhatItUsedAndNothingElse() throws {
        let t = try trainer()
        let routerBefore = try routerWeights(t), generatorsBefore = try gens(t)
        let optimizersBefore = try t.state()
        let record = try t.train(JointRLTrainerTests.question, qid: 0)
        let used = Set(ActionSpace().assignment(of: record.action))
        XCTAssertEqual(record.reward, -1, "a random model's answer scores 0, which the reference turns into -1")
        XCTAssertNotEqual(record.logq, 0)
        XCTAssertEqual(t.step, 1)
        for c in 0..<2 {
            if used.contains(c) {
                XCTAssertNotEqual(try gens(t)[c], generatorsBefore[c], "generator \(c) was used")
                XCTAssertEqual(t.generatorSteps[c], 1)
            } else {
                XCTAssertEqual(try gens(t)[c], generatorsBefore[c], "generator \(c) was not used")
                XCTAssertEqual(t.generatorSteps[c], 0)
            }
        }
        XCTAssertNotEqual(try routerWeights(t)["model.layers.0.mlp.up_proj.weight"], routerBefore["model.layers.0.mlp.up_proj.weight"],
                          "the backbone moves through the pooled state")
        XCTAssertEqual(try routerWeights(t)["lm_head.weight"], routerBefore["lm_head.weight"], "the head has no gradient")
        // An unused generator's optimiser state is untouched too (its tensors in the checkpoint).
        let before = try SafeTensorsFile(bytes: optimizersBefore).all(), after = try SafeTensorsFile(bytes: try t.state()).all()
        for c in 0..<2 where !used.contains(c) {
            for (k, v) in before where k.hasPrefix("generator\(c)") { XCTAssertEqual(after[k], v, k) }
        }
        let frozen = try trainer(frozen: true)
        let frozenBefore = try routerWeights(frozen)
        _ = try frozen.train(JointRLTrainerTests.question, qid: 0)
        XCTAssertEqual(try routerWeights(frozen), frozenBefore, "a frozen router does not move")
    }

    /// The baseline variant: the reward less the mean of the last N rewards scales −Σ log q;
    /// the window is part of the checkpoint.
    func testTheRewardBaseline() throws {
        let t = try trainer(baseline: 2)
        let first = try t.train(JointRLTrainerTests.question, qid: 0)
        XCTAssertEqual(first.advantage, first.reward, "no history yet")
        let second = try t.train(JointRLTrainerTests.question, qid: 0)
        XCTAssertEqual(second.advantage, second.reward - first.reward, accuracy: 1e-12)
        XCTAssertEqual(t.recentRewards, [first.reward, second.reward])
        let restored = try trainer(baseline: 2)
        try restored.restore(try t.state())
        XCTAssertEqual(restored.recentRewards, t.recentRewards)
        XCTAssertEqual(try trainer().train(JointRLTrainerTests.question, qid: 0).advantage, first.reward, "without a window the reward itself")
    }

    /// Several dialogues a question: each samples its own stream; with the group baseline equal
    /// rewards leave nothing to learn (every advantage 0, the generators unchanged).
    func testSeveralSamplesAndTheGroupBaseline() throws {
        let t = try trainer([("samples", 3), ("group_baseline", true)])
        let before = try gens(t)
        let r = try t.train(JointRLTrainerTests.question, qid: 0)
        XCTAssertEqual(r.rewards, [-1, -1, -1])
        XCTAssertEqual(r.advantage, 0)
        XCTAssertEqual(r.loss, 0)
        XCTAssertEqual(try gens(t), before, "zero advantages move nothing")
        // Without a baseline the loss is −R times the samples' mean Σ log q.
        let plain = try trainer([("samples", 2)])
        let p = try plain.train(JointRLTrainerTests.question, qid: 0)
        XCTAssertEqual(p.loss, -p.reward * p.logq, accuracy: 1e-9)
        let seeds = (0..<4).flatMap { step in (0..<8).map { JointRLTrainer.sampleSeed(43, step: step, sample: $0) } }
        XCTAssertEqual(Set(seeds).count, seeds.count, "every dialogue its own stream")
    }

    /// Several questions an update: each question is routed and sampled as it would be alone
    /// at its place in the run from the same weights (question i of update u samples the
    /// streams of training question u·Q + i), and the optimisers step once (one scheduler
    /// step for the router, one for each generator used), on both questions' gradients.
    func testSeveralQuestionsAnUpdate() throws {
        let valid = try HotpotQA.load(URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("dataset/valid.jsonl").path)
        let t = try trainer([("questions_per_update", 2)])
        let records = try t.train([(valid[0], 0), (valid[1], 1)])
        XCTAssertEqual(records.count, 2)
        XCTAssertEqual(t.step, 1, "one update")
        XCTAssertEqual(records[0].routerLR, 1e-3)
        XCTAssertEqual(records[1].routerLR, records[0].routerLR)
        XCTAssertEqual(records[1].generatorLRs, records[0].generatorLRs)
        let used = Set(records.flatMap { ActionSpace().assignment(of: $0.action) })
        XCTAssertEqual(t.generatorSteps, [0, 1].map { used.contains($0) ? 1 : 0 }, "a generator steps once an update, if used")

        let alone = try trainer()
        let first = try alone.train(valid[0], qid: 0)
        let second = try { let s = try trainer(); s.skipStep(); return try s.train(valid[1], qid: 1) }()
        for (r, a) in zip(records, [first, second]) {
            XCTAssertEqual(r.action, a.action)
            XCTAssertEqual(r.rewards, a.rewards)
            XCTAssertEqual(r.logq, a.logq, "the same sampled dialogue")
            XCTAssertEqual(r.loss, a.loss)
        }
        XCTAssertNotEqual(try routerWeights(t), try routerWeights(alone), "the second question's gradient moved the router too")
    }

    /// The bf16 emulation: the router's weights stay representable in bfloat16 after a step.
    func testTheRouterStaysInBF16() throws {
        let t = try trainer([("router_bf16", true)])
        _ = try t.train(JointRLTrainerTests.question, qid: 0)
        for (name, w) in try routerWeights(t) {
            XCTAssertTrue(w.data.allSatisfy { $0.bitPattern & 0xFFFF == 0 }, "\(name) has bits below bfloat16's")
        }
        XCTAssertFalse(try routerWeights(try trainer()).values.allSatisfy { $0.data.allSatisfy { $0.bitPattern & 0xFFFF == 0 } },
                       "float32 weights are not all bfloat16 values to begin with")
    }

    func testARestoredTrainerTakesTheSameNextStep() throws {
        let a = try trainer()
        _ = try a.train(JointRLTrainerTests.question, qid: 0)
        let checkpoint = try a.state()
        _ = try a.train(JointRLTrainerTests.question, qid: 0)
        let b = try trainer()
        try b.restore(checkpoint)
        XCTAssertEqual(b.step, 1)
        _ = try b.train(JointRLTrainerTests.question, qid: 0)
        XCTAssertEqual(try b.state(), try a.state(), "same bytes after the resumed step")
    }
}
