import Foundation
import XCTest
@testable import LLM
import NN
import TestSupport

/// The torch engine against the CPU engine, on the tests' tiny Llama (float32, CPU torch):
/// greedy and sampled generation under the same uniforms, with and without a per-call update
/// (the same ids; log q within 1e-4 of scale), a recorded call's gradient with respect to A
/// and B, the routing distribution and the pooled state.
/// Needs a Python with torch and transformers: `HAPS_TORCH_PYTHON` (`.ci/run` makes one);
/// without it these tests skip, saying so.
final class TorchEngineTests: XCTestCase {
    let prompt = [5, 17, 42, 99, 7, 300]

    /// `environment`: the worker's switches, e.g. `HAPS_TORCH_DECODER=transformers` (decode
    /// with transformers' own forward, its fallback for models decoder.py cannot run).
    func engines(environment: [String: String] = [:]) throws -> (torch: TorchEngine, cpu: CPUEngine, directory: String) {
        let python = try TorchPython.require()
        let log = NSTemporaryDirectory() + "torch-engine-\(UUID().uuidString).log"
        let torch = try TorchEngine(python: python, script: TorchPython.worker, log: log, environment: environment)
        return (torch, CPUEngine(), try LocalChatModelTests.makeModel())
    }

    func assertClose(_ a: [Float], _ b: [Float], _ what: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(a.count, b.count, what, file: file, line: line)
        let scale = max(b.map { abs($0) }.max() ?? 0, 1e-6)
        let worst = zip(a, b).map { abs($0 - $1) }.max() ?? 0
        XCTAssertLessThanOrEqual(worst, 1e-4 * scale, "\(what): off by \(worst) at scale \(scale)", file: file, line: line)
    }

    /// The embed stage's torch path: MiniLM's forward, pooling and normalisation in the worker
    /// over this program's token ids, batched with padding, against the Swift encoder.
    func testSentenceEmbeddingsMatchTheSwiftEncoder() throws {
        guard FileManager.default.fileExists(atPath: SentenceEncoderTests.model + "/config.json") else {
            throw XCTSkip("models/all-MiniLM-L6-v2 is missing: run scripts/fetch-models.sh")
        }
        let (torch, _, _) = try engines()
        let encoder = try SentenceEncoder(directory: SentenceEncoderTests.model)
        let texts = ["Paris is in France.", "Berlin", "", String(repeating: "a long sentence that runs past the encoder's limit ", count: 40),
                     "Which magazine was started first, Arthur's Magazine or First for Women?"] + (0..<300).map { "question \($0): what is \($0 * 7)?" }
        let ours = try encoder.embed(texts), theirs = try encoder.embed(texts, on: torch, device: "cpu")
        XCTAssertEqual(theirs.count, texts.count)
        for (i, (a, b)) in zip(theirs, ours).enumerated() { assertClose(a, b, "text \(i)") }
        XCTAssertEqual(try encoder.embed([], on: torch, device: "cpu").count, 0)
    }

    func testGenerationMatchesTheCPUEngine() throws {
        try checkGeneration(try engines())
    }

    func testTheTransformersFallbackMatchesTheCPUEngine() throws {
        let engines = try engines(environment: ["HAPS_TORCH_DECODER": "transformers"])
        try checkGeneration(engines)
        try checkRecordedGradients(engines)
    }

    /// Calls of different prompts, lengths, rules and updates (of two ranks) in one request,
    /// decoded as one batch: each the same as the CPU engine's alone.
    func testABatchOfCallsMatchesTheCPUEngineCallByCall() throws {
        try checkBatch(try engines())
    }

    /// The same batch decoded in the GPU's order of work, on the CPU: the decode step's pieces
    /// compiled, and each step launched before the host has read the previous step's tokens
    /// (a row that stops wastes one step, whose captured rows must not reach its gradient).
    func testTheGPUsOrderOfWorkMatchesTheCPUEngine() throws {
        let engines = try engines(environment: ["HAPS_TORCH_OVERLAP": "always", "HAPS_TORCH_COMPILE": "always"])
        try checkBatch(engines)
        try checkRecordedGradients(engines)
    }

    func checkBatch(_ engines: (torch: TorchEngine, cpu: CPUEngine, directory: String)) throws {
        let (torch, cpu, directory) = engines
        let t = try torch.loadModel(directory: directory, name: "tiny", trainable: false)
        let c = try cpu.loadModel(directory: directory, name: "tiny", trainable: false)
        var rng = SamplingRandom(seed: 11)
        func random(_ shape: [Int]) -> Tensor { Tensor(shape: shape, data: (0..<shape.reduce(1, *)).map { _ in rng.unit() - 0.5 }) }
        let updates = [EngineUpdate(id: 1, generator: 0, lora: LoRAUpdate(a: random([16, 4]), b: random([4, 16]), alpha: 0.5, layers: 1)),
                       EngineUpdate(id: 2, generator: 1, lora: LoRAUpdate(a: random([16, 2]), b: random([2, 16]), alpha: 0.8, layers: 2))]
        func calls(_ m: EngineModel) -> [EngineCall] {
            (0..<7).map { i in
                EngineCall(model: m, prompt: Array(prompt.prefix(2 + i % 5)) + [i + 3], maxNewTokens: 3 + 2 * i, stopTokens: i == 4 ? [42, 7] : [],
                           temperature: i % 3 == 0 ? 0 : 0.9, topP: i % 2 == 0 ? 0.8 : 1, rule: i % 4 == 1 ? .reference : .standard,
                           uniforms: SamplingRandom.uniforms(seed: UInt64(20 + i), count: 3 + 2 * i), update: i % 3 == 2 ? nil : updates[i % 2])
            }
        }
        let ours = try torch.generate(calls(t))
        for (i, call) in calls(c).enumerated() {
            let theirs = try cpu.generate([call])[0]
            XCTAssertEqual(ours[i].ids, theirs.ids, "call \(i)")
            XCTAssertEqual(ours[i].finishReason, theirs.finishReason, "call \(i)")
            assertClose(ours[i].logprobs, theirs.logprobs, "call \(i)")
        }
    }

    /// Sixteen callers at once (as evaluation's dialogues): their calls meet in the worker's
    /// batches, and each caller gets its own replies, the CPU engine's.
    func testConcurrentCallersEachGetTheirOwnReplies() throws {
        let (torch, cpu, directory) = try engines()
        let t = try torch.loadModel(directory: directory, name: "tiny", trainable: false)
        let c = try cpu.loadModel(directory: directory, name: "tiny", trainable: false)
        let base = prompt
        @Sendable func call(_ m: EngineModel, _ i: Int) -> EngineCall {
            EngineCall(model: m, prompt: [i + 1] + base, maxNewTokens: 4 + i % 5, stopTokens: [], temperature: i % 2 == 0 ? 0 : 1, topP: 0.9,
                       uniforms: SamplingRandom.uniforms(seed: UInt64(i), count: 4 + i % 5))
        }
        final class Replies: @unchecked Sendable { let lock = NSLock(); var ids: [Int: [[Int]]] = [:]; var errors: [String] = [] }
        let replies = Replies()
        DispatchQueue.concurrentPerform(iterations: 16) { i in
            do {
                let r = try torch.generate([call(t, i), call(t, i + 100)])
                replies.lock.lock(); replies.ids[i] = r.map(\.ids); replies.lock.unlock()
            } catch {
                replies.lock.lock(); replies.errors.append("\(error)"); replies.lock.unlock()
            }
        }
        XCTAssertEqual(replies.errors, [])
        for i in 0..<16 {
            XCTAssertEqual(replies.ids[i], try cpu.generate([call(c, i), call(c, i + 100)]).map(\.ids), "caller \(i)")
        }
    }

    func checkGeneration(_ engines: (torch: TorchEngine, cpu: CPUEngine, directory: String)) throws {
        let (torch, cpu, directory) = engines
        XCTAssertEqual(torch.info.name, "torch")
        XCTAssertNotNil(torch.info.versions["torch"])
        let t = try torch.loadModel(directory: directory, name: "tiny", trainable: false)
        let c = try cpu.loadModel(directory: directory, name: "tiny", trainable: false)
        XCTAssertEqual(t.config, c.config)
        var rng = SamplingRandom(seed: 5)
        func random(_ shape: [Int]) -> Tensor { Tensor(shape: shape, data: (0..<shape.reduce(1, *)).map { _ in rng.unit() - 0.5 }) }
        let update = EngineUpdate(id: 1, generator: 0, lora: LoRAUpdate(a: random([16, 4]), b: random([4, 16]), alpha: 0.5, layers: 1))
        for (temperature, seed, withUpdate, rule) in [(Float(0), UInt64(0), false, NucleusRule.standard), (0, 0, true, .standard),
                                                      (1, 3, false, .standard), (1, 4, true, .reference), (0.7, 9, true, .standard)] {
            func call(_ m: EngineModel) -> EngineCall {
                EngineCall(model: m, prompt: prompt, maxNewTokens: 12, stopTokens: [], temperature: temperature, topP: 0.9, rule: rule,
                           uniforms: SamplingRandom.uniforms(seed: seed, count: 12), update: withUpdate ? update : nil)
            }
            let what = "T \(temperature), seed \(seed), update \(withUpdate), \(rule)"
            let ours = try torch.generate([call(t)])[0], theirs = try cpu.generate([call(c)])[0]
            XCTAssertEqual(ours.ids, theirs.ids, what)
            assertClose(ours.logprobs, theirs.logprobs, what)
        }
        // Several calls in one request come back in order.
        let both = try torch.generate([EngineCall(model: t, prompt: prompt, maxNewTokens: 3, stopTokens: []),
                                       EngineCall(model: t, prompt: [1, 2, 3], maxNewTokens: 2, stopTokens: [])])
        XCTAssertEqual(both.map(\.ids.count), [3, 2])
        XCTAssertThrowsError(try torch.generate([EngineCall(model: t, prompt: prompt, maxNewTokens: 4, stopTokens: [], temperature: 1, uniforms: [0.5])]))
    }

    /// A recorded call's Σ log q and its gradient with respect to A and B: the CPU engine's
    /// one-pass gradient from the captured rows, and the worker's autograd, agree.
    func testARecordedCallsGradientMatchesTheCPUEngine() throws {
        try checkRecordedGradients(try engines())
    }

    func checkRecordedGradients(_ engines: (torch: TorchEngine, cpu: CPUEngine, directory: String)) throws {
        let (torch, _, directory) = engines
        let t = try torch.loadModel(directory: directory, name: "tiny", trainable: false)
        let decoder = try DecoderModel(directory: directory)
        var rng = SamplingRandom(seed: 8)
        func random(_ shape: [Int]) -> Tensor { Tensor(shape: shape, data: (0..<shape.reduce(1, *)).map { _ in rng.unit() - 0.5 }) }
        let (a, b) = (random([16, 4]), random([4, 16]))
        // One layer: the gradient from the last layer's captured rows; two: a taped pass. The
        // fourth case stops at the fourth token of the one before it (the same draws): a reply
        // that ends early takes its gradient over its own tokens only.
        var earlier: [Int] = []
        for (temperature, seed, rule, layers, stops) in [(Float(0), UInt64(0), NucleusRule.standard, 1, false), (1, 6, .reference, 1, false),
                                                         (0.8, 7, .standard, 1, false), (0.8, 7, .standard, 1, true), (0.8, 7, .standard, 2, false)] {
            let lora = LoRAUpdate(a: a, b: b, alpha: 0.5, layers: layers)
            let stop: Set<Int> = stops ? [earlier[3]] : []
            let reply = try torch.generate([EngineCall(model: t, prompt: prompt, maxNewTokens: 10, stopTokens: stop, temperature: temperature, topP: 0.9,
                                                       rule: rule, uniforms: SamplingRandom.uniforms(seed: seed, count: 10),
                                                       update: EngineUpdate(id: 1, generator: 0, lora: lora), recordsGradient: true)])[0]
            let expected = try decoder.generateWithLoRAGradient(GenerationRequest(prompt: prompt, maxNewTokens: 10, temperature: temperature, topP: 0.9,
                                                                                  seed: seed, stopTokens: stop, lora: lora, nucleusRule: rule))
            let what = "T \(temperature), \(rule), \(layers) layer(s)\(stops ? ", stopped early" : "")"
            XCTAssertEqual(reply.ids, expected.result.ids, what)
            if stops { XCTAssertLessThanOrEqual(reply.ids.count, 4, what) }
            XCTAssertEqual(reply.logq, expected.logprob, accuracy: 1e-4 * max(1, abs(expected.logprob)), what)
            let g = try torch.callGradient(try XCTUnwrap(reply.call, what))
            assertClose(g.dA, expected.gradientA.data, "dA, " + what)
            assertClose(g.dB, expected.gradientB.data, "dB, " + what)
            earlier = reply.ids
        }
        XCTAssertThrowsError(try torch.generate([EngineCall(model: t, prompt: prompt, maxNewTokens: 2, stopTokens: [], recordsGradient: true)]))
    }

    /// The generators' forward: the same A and B from the same weights and pooled state.
    func testTheGeneratorsUpdateMatchesTheCPUEngine() throws {
        let (torch, cpu, directory) = try engines()
        let c = try cpu.loadModel(directory: directory, name: "router", trainable: true)
        let shapes = [GeneratorShape(input: 16, hidden: 12, layers: 2, target: 16, rank: 2), GeneratorShape(input: 16, hidden: 8, layers: 3, target: 24, rank: 2)]
        try cpu.makeGenerators(shapes, seed: 43)
        var weights = try cpu.generatorWeights()
        var rng = SamplingRandom(seed: 3)
        for c in weights.indices { for k in weights[c].keys where k.hasSuffix("bias") { weights[c][k]!.data = weights[c][k]!.data.map { _ in rng.unit() - 0.5 } } }
        try cpu.setGenerators(weights, rank: 2)
        try torch.setGenerators(weights, rank: 2)
        let pooled = try cpu.pooledState(c, prompt: prompt, keepForBackward: false)
        for g in 0..<2 {
            let theirs = try cpu.makeUpdate(generator: g, from: pooled, alpha: 0.5, layers: 1, keepForBackward: false).lora
            let ours = try torch.makeUpdate(generator: g, from: pooled, alpha: 0.5, layers: 1, keepForBackward: false).lora
            XCTAssertEqual(ours.a.shape, theirs.a.shape)
            XCTAssertEqual(ours.b.shape, theirs.b.shape)
            assertClose(ours.a.data, theirs.a.data, "A of generator \(g)")
            assertClose(ours.b.data, theirs.b.data, "B of generator \(g)")
        }
        XCTAssertThrowsError(try torch.makeUpdate(generator: 5, from: pooled, alpha: 0.5, layers: 1, keepForBackward: false))
    }

    /// One joint-RL question on both engines (the pooled state and the updates kept, recorded
    /// calls, accumulate with the advantage, one step of the generators and, through the
    /// pooled state, the router): the same generator and router weights after it. The second
    /// question pools over some of its positions only (pooling "question").
    func testAJointRLStepMatchesTheCPUEngine() throws {
        let (torch, cpu, _) = try engines()
        let routerDirectory = try LocalChatModelTests.makeModel(), candidateDirectory = try LocalChatModelTests.makeModel(vocab: 1300)
        struct Side { var router: EngineModel; var candidate: EngineModel }
        func prepare(_ e: any Engine) throws -> Side {
            Side(router: try e.loadModel(directory: routerDirectory, name: "router", trainable: true),
                 candidate: try e.loadModel(directory: candidateDirectory, name: "c", trainable: false))
        }
        let c = try prepare(cpu)
        let tr = try torch.loadModel(directory: routerDirectory, name: "router", trainable: true)
        let tc = try torch.loadModel(directory: candidateDirectory, name: "c", trainable: false)
        let shape = GeneratorShape(input: 16, hidden: 12, layers: 2, target: 16, rank: 2)
        try cpu.makeGenerators([shape, shape], seed: 43)
        try torch.setGenerators(try cpu.generatorWeights(), rank: 2)
        for (question, seed, positions) in [(prompt, UInt64(9), nil), ([3, 1, 4, 1, 5, 9, 2, 6], 10, 2..<5)] as [([Int], UInt64, Range<Int>?)] {
            // CPU
            let cp = try cpu.pooledState(c.router, prompt: question, positions: positions, keepForBackward: true)
            let cu = try cpu.makeUpdate(generator: 1, from: cp, alpha: 0.5, layers: 1, keepForBackward: true)
            let callC = EngineCall(model: c.candidate, prompt: question, maxNewTokens: 8, stopTokens: [], temperature: 1, topP: 0.9, rule: .reference,
                                   uniforms: SamplingRandom.uniforms(seed: seed, count: 8), update: cu, recordsGradient: true)
            let rc = try cpu.generate([callC, callC])
            try cpu.accumulate(cu, calls: rc.compactMap(\.call), coefficient: -0.75)
            try cpu.step(EngineStep(updates: [cu], generatorLRs: [1: 1e-2], routerLR: 1e-3, pooled: cp, routerBF16: false))
            // torch
            let tp = try torch.pooledState(tr, prompt: question, positions: positions, keepForBackward: true)
            assertClose(tp.values, cp.values, "pooled state")
            let tu = try torch.makeUpdate(generator: 1, from: tp, alpha: 0.5, layers: 1, keepForBackward: true)
            assertClose(tu.lora.a.data, cu.lora.a.data, "A")
            var callT = callC
            callT.model = tc; callT.update = tu
            let rt = try torch.generate([callT, callT])
            XCTAssertEqual(rt.map(\.ids), rc.map(\.ids))
            try torch.accumulate(tu, calls: rt.compactMap(\.call), coefficient: -0.75)
            try torch.step(EngineStep(updates: [tu], generatorLRs: [1: 1e-2], routerLR: 1e-3, pooled: tp, routerBF16: false))
        }
        let (ours, theirs) = (try torch.generatorWeights(), try cpu.generatorWeights())
        for g in 0..<2 { for (name, w) in theirs[g] { assertClose(ours[g][name]?.data ?? [], w.data, "generator \(g) \(name)") } }
        XCTAssertNotEqual(theirs[1]["head_a.weight"], try cpu.generatorWeights()[0]["head_a.weight"], "the used generator moved")
        let (routerOurs, routerTheirs) = (try torch.weights(tr), try cpu.weights(c.router))
        for (name, w) in routerTheirs { assertClose(routerOurs[name]?.data ?? [], w.data, "router \(name)") }
    }

    /// Two questions in one step (several questions per update): each question's updates
    /// made from its own pooled state and recorded, both accumulated, then one step over both
    /// (`EngineStep.more`): on both engines the same generator and router weights after it.
    /// Generator 1 takes both questions' gradients, generator 0 the second's alone, so it moves
    /// only when the second question joins the step.
    func testSeveralQuestionsInOneStepMatchTheCPUEngine() throws {
        let (torch, cpu, _) = try engines()
        let routerDirectory = try LocalChatModelTests.makeModel(), candidateDirectory = try LocalChatModelTests.makeModel(vocab: 1300)
        let shape = GeneratorShape(input: 16, hidden: 12, layers: 2, target: 16, rank: 2)
        try cpu.makeGenerators([shape, shape], seed: 43)
        let initial = try cpu.generatorWeights()
        try torch.setGenerators(initial, rank: 2)
        func run(_ e: any Engine) throws -> [String: Tensor] {
            let router = try e.loadModel(directory: routerDirectory, name: "router", trainable: true)
            let candidate = try e.loadModel(directory: candidateDirectory, name: "c", trainable: false)
            var questions: [EngineStep.Question] = []
            for (question, generators, coefficient) in [(prompt, [1], Float(-0.5)), ([3, 1, 4, 1, 5, 9, 2, 6], [0, 1], 0.25)] {
                let pooled = try e.pooledState(router, prompt: question, keepForBackward: true)
                var updates: [EngineUpdate] = []
                for g in generators {
                    let u = try e.makeUpdate(generator: g, from: pooled, alpha: 0.5, layers: 1, keepForBackward: true)
                    let call = EngineCall(model: candidate, prompt: question, maxNewTokens: 6, stopTokens: [], temperature: 1, topP: 0.9,
                                          uniforms: SamplingRandom.uniforms(seed: UInt64(g + 3), count: 6), update: u, recordsGradient: true)
                    try e.accumulate(u, calls: try e.generate([call]).compactMap(\.call), coefficient: coefficient)
                    updates.append(u)
                }
                questions.append(EngineStep.Question(pooled: pooled, updates: updates))
            }
            try e.step(EngineStep(updates: questions[0].updates, generatorLRs: [0: 1e-2, 1: 1e-2], routerLR: 1e-3, pooled: questions[0].pooled,
                                  routerBF16: false, more: [questions[1]]))
            XCTAssertThrowsError(try e.step(EngineStep(updates: questions[1].updates, generatorLRs: [0: 1e-2, 1: 1e-2], routerLR: 1e-3,
                                                       pooled: questions[1].pooled, routerBF16: false)), "the second question was released with the step")
            return try e.weights(router)
        }
        let routerTheirs = try run(cpu), routerOurs = try run(torch)
        let (ours, theirs) = (try torch.generatorWeights(), try cpu.generatorWeights())
        for g in 0..<2 { for (name, w) in theirs[g] { assertClose(ours[g][name]?.data ?? [], w.data, "generator \(g) \(name)") } }
        for g in 0..<2 { XCTAssertNotEqual(theirs[g]["head_a.weight"], initial[g]["head_a.weight"], "generator \(g) moved") }
        for (name, w) in routerTheirs { assertClose(routerOurs[name]?.data ?? [], w.data, "router \(name)") }
    }

    /// Two SFT steps on both engines: the same losses and weights (within 1e-4 of scale).
    func testTheSFTStepMatchesTheCPUEngine() throws {
        let (torch, cpu, directory) = try engines()
        let t = try torch.loadModel(directory: directory, name: "router", trainable: true)
        let c = try cpu.loadModel(directory: directory, name: "router", trainable: true)
        let batch = [prompt + [8, 9], Array(prompt.reversed()) + [10], [1, 2, 3, 4]], from = [prompt.count, prompt.count, 2]
        for lr: Float in [1e-3, 5e-4] {
            let settings = SFTStepSettings(lr: lr, weightDecay: 0.01, maxGradientNorm: 1)
            let ours = try torch.sftStep(t, batch: batch, targetsFrom: from, accumulation: 2, settings: settings)
            let theirs = try cpu.sftStep(c, batch: batch, targetsFrom: from, accumulation: 2, settings: settings)
            XCTAssertEqual(ours, theirs, accuracy: 1e-4 * max(1, abs(theirs)))
        }
        // AdamW moves each weight by about lr·m/√v, so an element whose gradient is at the level
        // of float noise may move differently by a fraction of lr: all but 0.1% of the elements
        // within 1e-4 of scale, and none further than a tenth of the two steps' learning rates.
        let (ours, theirs) = (try torch.weights(t), try cpu.weights(c))
        var elements = 0, outside = 0
        for (name, w) in theirs {
            let o = try XCTUnwrap(ours[name], name).data
            let scale = max(w.data.map { abs($0) }.max() ?? 0, 1e-6)
            for (x, y) in zip(o, w.data) {
                elements += 1
                if abs(x - y) > 1e-4 * scale { outside += 1 }
                XCTAssertLessThanOrEqual(abs(x - y), max(1e-4 * scale, 0.1 * (1e-3 + 5e-4)), name)
            }
        }
        XCTAssertLessThanOrEqual(Double(outside), 1e-3 * Double(elements), "\(outside) of \(elements) weights off by more than 1e-4 of scale")
        let frozen = try torch.loadModel(directory: directory, name: "c", trainable: false)
        XCTAssertThrowsError(try torch.sftStep(frozen, batch: batch, targetsFrom: from, accumulation: 1,
                                               settings: SFTStepSettings(lr: 1e-3, weightDecay: 0, maxGradientNorm: nil)))
    }

    func testTheRoutingDistributionAndThePooledStateMatchTheCPUEngine() throws {
        let (torch, cpu, directory) = try engines()
        let t = try torch.loadModel(directory: directory, name: "router", trainable: true)
        let c = try cpu.loadModel(directory: directory, name: "router", trainable: true)
        let continuations = [[8, 9, 10], [11], [12, 13]]
        let ours = try torch.continuationLogProbabilities(t, prompt: prompt, continuations: continuations)
        let theirs = try cpu.continuationLogProbabilities(c, prompt: prompt, continuations: continuations)
        assertClose(ours.map { Float($0) }, theirs.map { Float($0) }, "continuation log-probabilities")
        assertClose(try torch.pooledState(t, prompt: prompt, keepForBackward: false).values, try cpu.pooledState(c, prompt: prompt, keepForBackward: false).values,
                    "pooled state")
        assertClose(try torch.pooledState(t, prompt: prompt, positions: 1..<3, keepForBackward: false).values,
                    try cpu.pooledState(c, prompt: prompt, positions: 1..<3, keepForBackward: false).values, "pooled state over positions 1..<3")
    }

    /// The rest of the protocol: the generators made from a seed (the CPU engine's), weights
    /// set, saved to a directory and loaded back, bf16 rounding as the CPU engine rounds, and a
    /// state that continues bit for bit: a question run after `restore` gives the weights the
    /// same question gave the first time.
    func testStateWeightsAndGeneratorsMatchTheCPUEngineAndRestoreContinues() throws {
        let (torch, cpu, directory) = try engines()
        let candidateDirectory = try LocalChatModelTests.makeModel(vocab: 1300)
        let tr = try torch.loadModel(directory: directory, name: "router", trainable: true)
        let tc = try torch.loadModel(directory: candidateDirectory, name: "c", trainable: false)
        let cr = try cpu.loadModel(directory: directory, name: "router", trainable: true)
        let shapes = [GeneratorShape(input: 16, hidden: 12, layers: 2, target: 16, rank: 2), GeneratorShape(input: 16, hidden: 8, layers: 1, target: 16, rank: 3)]
        try torch.makeGenerators(shapes, seed: 43)
        try cpu.makeGenerators(shapes, seed: 43)
        XCTAssertEqual(try torch.generatorWeights(), try cpu.generatorWeights(), "the generators' initial weights")

        try torch.roundWeightsToBFloat16(tr)
        try cpu.roundWeightsToBFloat16(cr)
        XCTAssertEqual(try torch.weights(tr), try cpu.weights(cr), "bf16-rounded weights")
        let saved = NSTemporaryDirectory() + "torch-saved-\(UUID().uuidString)"
        try torch.saveModel(tr, to: saved)
        XCTAssertEqual(try DecoderModel(directory: saved).namedWeights, try cpu.weights(cr), "a saved router reads back on the CPU engine")
        var changed = try torch.weights(tr)
        changed["model.norm.weight"] = Tensor(shape: changed["model.norm.weight"]!.shape, data: changed["model.norm.weight"]!.data.map { $0 * 2 })
        try torch.setWeights(tr, changed)
        XCTAssertEqual(try torch.weights(tr)["model.norm.weight"], changed["model.norm.weight"])
        try torch.loadWeights(tr, directory: saved)
        XCTAssertEqual(try torch.weights(tr), try cpu.weights(cr), "weights loaded from a directory")
        XCTAssertThrowsError(try torch.setWeights(tc, changed), "a candidate is frozen")

        func question(_ seed: UInt64) throws {
            let p = try torch.pooledState(tr, prompt: prompt, keepForBackward: true)
            let u = try torch.makeUpdate(generator: 1, from: p, alpha: 0.5, layers: 1, keepForBackward: true)
            let call = EngineCall(model: tc, prompt: prompt, maxNewTokens: 6, stopTokens: [], temperature: 1, topP: 0.9,
                                  uniforms: SamplingRandom.uniforms(seed: seed, count: 6), update: u, recordsGradient: true)
            let r = try torch.generate([call])
            try torch.accumulate(u, calls: r.compactMap(\.call), coefficient: -0.5)
            try torch.step(EngineStep(updates: [u], generatorLRs: [1: 1e-2], routerLR: 1e-3, pooled: p, routerBF16: false))
        }
        try question(1)
        _ = try torch.sftStep(tr, batch: [prompt + [8, 9]], targetsFrom: [prompt.count], accumulation: 1,
                              settings: SFTStepSettings(lr: 1e-3, weightDecay: 0.01, maxGradientNorm: 1))
        let state = try torch.state(metadata: ["step": "1"])
        try question(2)
        let (router, generators) = (try torch.weights(tr), try torch.generatorWeights())
        try question(3)
        XCTAssertEqual(try torch.restore(state)["step"], "1")
        try question(2)
        XCTAssertEqual(try torch.weights(tr), router, "the router after a restored step")
        XCTAssertEqual(try torch.generatorWeights(), generators, "the generators after a restored step")
    }

    func testAWorkerWithoutTorchIsRefusedBeforeAnyModel() throws {
        guard let python = Python.interpreter else { throw XCTSkip("no Python") }
        let log = NSTemporaryDirectory() + "torch-engine-\(UUID().uuidString).log"
        let w = try TorchWorker(python: python, script: Repository.root + "/engines/torch/worker.py", log: log)
        guard w.hello.torch == nil else { throw XCTSkip("\(python) has torch") }
        w.stop()
        XCTAssertThrowsError(try TorchEngine(python: python, script: Repository.root + "/engines/torch/worker.py", log: log)) {
            XCTAssertTrue("\($0)".contains("the torch engine cannot run on cpu") && "\($0)".contains("lacks torch"), "\($0)")
        }
    }
}
