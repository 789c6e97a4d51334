import Foundation
import XCTest
@testable import LLM
import NN

/// The CPU engine against the code it wraps, bit for bit: what the `Engine` protocol promises
/// (caller-given uniforms, the joint-RL chain of accumulate and step, the SFT step, state that
/// continues exactly) is what the decoder, the generator and AdamW compute when called by hand.
/// A second engine (issue 27's PyTorch worker) is held to the same checks against this one.
final class CPUEngineTests: XCTestCase {
    let prompt = [5, 17, 42, 99, 7, 300]

    /// Sampled calls draw the uniforms they are given, one a token: the same ids and log q as
    /// generation seeded with the stream those uniforms came from; batched calls alike.
    func testSampledCallsDrawTheCallersUniforms() throws {
        let directory = try LocalChatModelTests.makeModel()
        let engine = CPUEngine(), decoder = try DecoderModel(directory: directory)
        let model = try engine.loadModel(directory: directory, name: "tiny", trainable: false)
        let seeds: [UInt64] = [1, 2, 3]
        let calls = seeds.map { s in
            EngineCall(model: model, prompt: prompt, maxNewTokens: 12, stopTokens: [], temperature: 1, topP: 0.9, rule: .reference,
                       uniforms: SamplingRandom.uniforms(seed: s, count: 12))
        }
        let replies = try engine.generate(calls)
        let expected = try decoder.generate(seeds.map { GenerationRequest(prompt: prompt, maxNewTokens: 12, temperature: 1, topP: 0.9, seed: $0,
                                                                          nucleusRule: .reference) })
        XCTAssertEqual(replies.map(\.ids), expected.map(\.ids))
        // Log q to the bit for one call alone (a batch's rows may differ in the last place:
        // OpenBLAS blocks a product by its row count).
        XCTAssertEqual(try engine.generate([calls[1]])[0].logprobs,
                       try decoder.generate([GenerationRequest(prompt: prompt, maxNewTokens: 12, temperature: 1, topP: 0.9, seed: 2, nucleusRule: .reference)])[0].logprobs)
        XCTAssertNotEqual(replies[0].ids, replies[1].ids, "different uniforms, different draws")
        // Uniforms near 1 draw from the nucleus's tail: not the stream's tokens.
        var high = calls[0]
        high.uniforms = Array(repeating: 0.9999, count: 12)
        XCTAssertNotEqual(try engine.generate([high])[0].ids, replies[0].ids)
        var short = calls[0]
        short.uniforms = [0.5]
        XCTAssertThrowsError(try engine.generate([short])) { XCTAssertTrue("\($0)".contains("given 1 uniforms"), "\($0)") }
        // Greedy calls take none.
        let greedy = try engine.generate([EngineCall(model: model, prompt: prompt, maxNewTokens: 8, stopTokens: [])])[0]
        XCTAssertEqual(greedy.ids, try decoder.generate([GenerationRequest(prompt: prompt, maxNewTokens: 8)])[0].ids)
    }

    /// One joint-RL question through the engine (pooled state, update, a recorded call,
    /// accumulate, step) equals the chain computed by hand with the decoder, the generator and
    /// AdamW: the same generator and router weights, bit for bit; pooled over every position
    /// and over some only (pooling "question": the router's gradient reaches those alone).
    func testAStepIsTheChainByHand() throws {
        try chainByHand(positions: nil)
        try chainByHand(positions: 1..<4)
        let engine = CPUEngine()
        let router = try engine.loadModel(directory: try LocalChatModelTests.makeModel(), name: "router", trainable: true)
        XCTAssertThrowsError(try engine.pooledState(router, prompt: prompt, positions: 4..<9, keepForBackward: false), "beyond the prompt")
        XCTAssertThrowsError(try engine.pooledState(router, prompt: prompt, positions: 2..<2, keepForBackward: false), "empty")
    }

    func chainByHand(positions: Range<Int>?) throws {
        let routerDirectory = try LocalChatModelTests.makeModel(), candidateDirectory = try LocalChatModelTests.makeModel(vocab: 1300)
        let engine = CPUEngine()
        let router = try engine.loadModel(directory: routerDirectory, name: "router", trainable: true)
        let candidate = try engine.loadModel(directory: candidateDirectory, name: "c", trainable: false)
        let shape = GeneratorShape(input: 16, hidden: 12, layers: 2, target: 16, rank: 2)
        try engine.makeGenerators([shape, shape], seed: 43)
        let pooled = try engine.pooledState(router, prompt: prompt, positions: positions, keepForBackward: true)
        let update = try engine.makeUpdate(generator: 1, from: pooled, alpha: 0.5, layers: 1, keepForBackward: true)
        let uniforms = SamplingRandom.uniforms(seed: 9, count: 10)
        let reply = try engine.generate([EngineCall(model: candidate, prompt: prompt, maxNewTokens: 10, stopTokens: [], temperature: 1, topP: 0.9,
                                                    rule: .reference, uniforms: uniforms, update: update, recordsGradient: true)])[0]
        let call = try XCTUnwrap(reply.call)
        try engine.accumulate(update, calls: [call], coefficient: -0.75)
        try engine.step(EngineStep(updates: [update], generatorLRs: [1: 1e-2], routerLR: 1e-3, pooled: pooled, routerBF16: false))

        // By hand.
        let r = try DecoderModel(directory: routerDirectory), c = try DecoderModel(directory: candidateDirectory)
        let tape = try r.tapedForward(prompt)
        XCTAssertEqual(DecoderModel.pooled(tape, positions: positions), pooled.values)
        if let positions {  // the mean of those rows of the last hidden states
            let h = tape.hiddenStates
            for j in 0..<h.columns {
                XCTAssertEqual(pooled.values[j], positions.map { h.data[$0 * h.columns + j] }.reduce(0, +) / Float(positions.count), accuracy: 1e-6)
            }
            XCTAssertNotEqual(pooled.values, DecoderModel.pooled(tape))
        }
        var generator = ParameterGenerator(inputSize: 16, hiddenSize: 12, layers: 2, targetSize: 16, rank: 2, seed: 43)
        let (a, b, genTape) = try generator.forward(pooled.values)
        XCTAssertEqual(update.lora.a, a)
        XCTAssertEqual(update.lora.b, b)
        let g = try c.generateWithLoRAGradient(GenerationRequest(prompt: prompt, maxNewTokens: 10, temperature: 1, topP: 0.9, seed: 9,
                                                                 lora: LoRAUpdate(a: a, b: b, alpha: 0.5, layers: 1), nucleusRule: .reference))
        XCTAssertEqual(reply.ids, g.result.ids)
        XCTAssertEqual(reply.logq, g.logprob)
        var dA = Tensor(zeros: a.shape), dB = Tensor(zeros: b.shape)
        Kernels.addScaled(&dA, g.gradientA, -0.75)
        Kernels.addScaled(&dB, g.gradientB, -0.75)
        let (weightGrads, dPooled) = try generator.backward(genTape, dA: dA, dB: dB)
        var generatorOptimizer = AdamW(weightDecay: 0)
        generatorOptimizer.update(&generator.weights, gradients: weightGrads, lr: 1e-2)
        let generators = try engine.generatorWeights()
        XCTAssertEqual(generators[1], generator.weights, "the used generator stepped")
        XCTAssertEqual(generators[0], ParameterGenerator(inputSize: 16, hiddenSize: 12, layers: 2, targetSize: 16, rank: 2, seed: 43).weights,
                       "the unused one did not")
        var weights = r.namedWeights
        var routerOptimizer = AdamW(weightDecay: 0.01)
        let routerGrads = try r.backward(tape, dPooled: dPooled, positions: positions)
        if positions != nil { XCTAssertNotEqual(routerGrads, try r.backward(tape, dPooled: dPooled), "only the pooled positions' share") }
        routerOptimizer.update(&weights, gradients: routerGrads, lr: 1e-3)
        XCTAssertEqual(try engine.weights(router), weights, "the router stepped through the pooled state")
        // The question's state is gone: its update cannot be accumulated again.
        XCTAssertThrowsError(try engine.accumulate(update, calls: [call], coefficient: 1))
    }

    /// State continues bit for bit: a restored engine takes the next step to the same weights,
    /// and hands back the caller's metadata.
    func testStateContinuesBitForBit() throws {
        let routerDirectory = try LocalChatModelTests.makeModel(), candidateDirectory = try LocalChatModelTests.makeModel()
        func make() throws -> (CPUEngine, EngineModel, EngineModel) {
            let e = CPUEngine()
            let r = try e.loadModel(directory: routerDirectory, name: "router", trainable: true)
            let c = try e.loadModel(directory: candidateDirectory, name: "c", trainable: false)
            try e.makeGenerators([GeneratorShape(input: 16, hidden: 8, layers: 1, target: 16, rank: 2)], seed: 7)
            return (e, r, c)
        }
        func question(_ e: CPUEngine, _ r: EngineModel, _ c: EngineModel, seed: UInt64) throws {
            let pooled = try e.pooledState(r, prompt: prompt, keepForBackward: true)
            let u = try e.makeUpdate(generator: 0, from: pooled, alpha: 0.5, layers: 1, keepForBackward: true)
            let reply = try e.generate([EngineCall(model: c, prompt: prompt, maxNewTokens: 6, stopTokens: [], temperature: 1, topP: 0.9,
                                                   uniforms: SamplingRandom.uniforms(seed: seed, count: 6), update: u, recordsGradient: true)])[0]
            try e.accumulate(u, calls: [reply.call!], coefficient: 1)
            try e.step(EngineStep(updates: [u], generatorLRs: [0: 1e-2], routerLR: 1e-3, pooled: pooled, routerBF16: false))
        }
        let (e1, r1, c1) = try make()
        try question(e1, r1, c1, seed: 1)
        let saved = try e1.state(metadata: ["counters": "{\"step\":1}"])
        try question(e1, r1, c1, seed: 2)
        let (e2, r2, c2) = try make()
        XCTAssertEqual(try e2.restore(saved)["counters"], "{\"step\":1}")
        try question(e2, r2, c2, seed: 2)
        XCTAssertEqual(try e2.weights(r2), try e1.weights(r1))
        XCTAssertEqual(try e2.generatorWeights(), try e1.generatorWeights())
    }

    /// The SFT step is the decoder trainer's step at the learning rate given, and the routing
    /// calls that follow read the new weights.
    func testTheSFTStepIsTheTrainersStep() throws {
        let directory = try LocalChatModelTests.makeModel()
        let engine = CPUEngine()
        let model = try engine.loadModel(directory: directory, name: "router", trainable: true)
        let batch = [prompt + [8, 9], prompt.reversed() + [10]], from = [prompt.count, prompt.count]
        let trainer = DecoderTrainer(model: try DecoderModel(directory: directory), learningRate: 1, schedule: .constant, weightDecay: 0,
                                     maxGradientNorm: 1)
        for lr: Float in [1e-3, 5e-4] {
            trainer.learningRate = lr
            let expected = try trainer.train(batch, targetsFrom: from, accumulation: 2)
            let loss = try engine.sftStep(model, batch: batch, targetsFrom: from, accumulation: 2,
                                          settings: SFTStepSettings(lr: lr, weightDecay: 0, maxGradientNorm: 1))
            XCTAssertEqual(loss, expected)
            XCTAssertEqual(try engine.weights(model), trainer.model.namedWeights)
        }
        let routed = try engine.generate([EngineCall(model: model, prompt: prompt, maxNewTokens: 5, stopTokens: [])])[0].ids
        XCTAssertEqual(routed, try trainer.model.generate([GenerationRequest(prompt: prompt, maxNewTokens: 5)])[0].ids)
        // A frozen candidate is not trained.
        let frozen = try engine.loadModel(directory: directory, name: "c", trainable: false)
        XCTAssertThrowsError(try engine.sftStep(frozen, batch: batch, targetsFrom: from, accumulation: 1,
                                                settings: SFTStepSettings(lr: 1e-3, weightDecay: 0, maxGradientNorm: nil)))
    }
}
