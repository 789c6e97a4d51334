import Foundation
import XCTest
@testable import LLM
import NN

final class DecoderTrainerTests: XCTestCase {
    let config: DecoderConfig = {
        var c = DecoderConfig(family: .qwen2, vocabSize: 24, hiddenSize: 16, intermediateSize: 32, layers: 2, heads: 4, kvHeads: 2,
                              ropeTheta: 10000, tieEmbeddings: true, qkvBias: true, eosTokenIDs: [1])
        c.rmsEps = 1e-6
        return c
    }()
    /// Sequences with structure to learn: counting up from a start token, modulo the vocabulary.
    func batch(_ k: Int) -> [[Int]] { (0..<4).map { i in (0..<10).map { 2 + (k + i + $0) % 22 } } }

    func testTrainingFromScratchLowersTheLoss() throws {
        let trainer = DecoderTrainer(model: try .randomlyInitialised(config, seed: 1, std: 0.1), learningRate: 0.01,
                                     schedule: .cosine(warmup: 5, total: 80))
        let first = try trainer.train(batch(0))
        var last: Float = 0
        for s in 1..<80 { last = try trainer.train(batch(s)) }
        XCTAssertEqual(first, log(22), accuracy: 0.5, "an untrained model is near uniform")
        XCTAssertLessThan(last, first / 3, "loss \(first) → \(last)")
        XCTAssertEqual(trainer.step, 80)
    }

    func testACheckpointResumesToTheSameWeights() throws {
        let straight = DecoderTrainer(model: try .randomlyInitialised(config, seed: 2, std: 0.1), learningRate: 0.01, schedule: .linear(warmup: 2, total: 10))
        for s in 0..<6 { try straight.train(batch(s)) }
        let saved = DecoderTrainer(model: try .randomlyInitialised(config, seed: 2, std: 0.1), learningRate: 0.01, schedule: .linear(warmup: 2, total: 10))
        for s in 0..<3 { try saved.train(batch(s)) }
        let state = try saved.state()
        let resumed = DecoderTrainer(model: try .randomlyInitialised(config, seed: 99, std: 0.1), learningRate: 0.01, schedule: .linear(warmup: 2, total: 10))
        try resumed.restore(state)
        XCTAssertEqual(resumed.step, 3)
        for s in 3..<6 { try resumed.train(batch(s)) }
        XCTAssertEqual(resumed.model.namedWeights, straight.model.namedWeights)
    }

    /// Gradient accumulation bounds memory, not the result: micro-batches of 1, 2 or 4 give the
    /// same weights as the whole batch, bit for bit (gradients are summed in batch order).
    func testAccumulationGivesTheSameStepAsTheWholeBatch() throws {
        func weights(accumulation: Int, threads: Int) throws -> [String: Tensor] {
            let t = DecoderTrainer(model: try .randomlyInitialised(config, seed: 3, std: 0.1), learningRate: 0.01)
            t.threads = threads
            for s in 0..<3 { try t.train(batch(s), targetsFrom: [1, 2, 3, 4], accumulation: accumulation) }
            return t.model.namedWeights
        }
        let whole = try weights(accumulation: 1, threads: 2)
        for a in [2, 4] { XCTAssertEqual(try weights(accumulation: a, threads: 2), whole, "accumulation \(a)") }
        XCTAssertEqual(try weights(accumulation: 3, threads: 1), whole, "uneven micro-batches, one thread")
    }

    /// The trainer forms the linear layers' weight gradients straight into the batch's sum
    /// (`LinearWeightFactors`); that must be the bits of forming each sequence's gradients
    /// alone and adding them in batch order, for sequences short enough to be formed into the
    /// sum and for ones longer than OpenBLAS's inner-dimension block, with a tied head and not.
    func testFormingWeightGradientsIntoTheSumKeepsTheBits() throws {
        for tied in [true, false] {
            var c = config
            c.tieEmbeddings = tied
            c.vocabSize = 64
            let model = try DecoderModel.randomlyInitialised(c, seed: 5, std: 0.1)
            var rng = SamplingRandom(seed: 11)
            let lengths = [40, 400, LinearWeightFactors.formedLengthLimit, 90, 333]
            let sequences = lengths.map { n in (0..<n).map { _ in Int(rng.next() % 64) } }
            var expected: [String: Tensor] = [:], regular: [String: Tensor] = [:], factors: [LinearWeightFactors] = []
            for tokens in sequences {
                let tape = try model.tapedForward(tokens)
                let dLogits = DecoderModel.nextTokenLoss(logits: tape.logits, tokens: tokens).dLogits
                for (name, g) in try model.backward(tape, dLogits: dLogits, target: .weights) {
                    if expected[name] == nil { expected[name] = g } else { Kernels.add(&expected[name]!, g) }
                }
                let f = LinearWeightFactors()
                for (name, g) in try model.backward(tape, dLogits: dLogits, target: .weights, deferring: f) {
                    if regular[name] == nil { regular[name] = g } else { Kernels.add(&regular[name]!, g) }
                }
                factors.append(f)
            }
            let formed = Set(factors.flatMap(\.names))
            XCTAssertEqual(formed.count, 7 * c.layers + (tied ? 0 : 1), "every linear weight but a tied head is deferred")
            XCTAssertTrue(formed.isDisjoint(with: regular.keys))
            var total = regular
            for name in formed {
                var sum: Tensor? = nil
                try LinearWeightFactors.accumulate(name, of: factors, into: &sum)
                total[name] = sum
            }
            XCTAssertEqual(Set(total.keys), Set(expected.keys))
            for (name, g) in expected {
                let differing = zip(total[name]!.data, g.data).filter { $0.bitPattern != $1.bitPattern }.count
                XCTAssertEqual(differing, 0, "\(name), tied \(tied): elements whose bits differ")
            }
        }
    }

    func testASavedModelLoadsWithTheSameLogits() throws {
        let model = try DecoderModel.randomlyInitialised(config, seed: 3, std: 0.2)
        let dir = NSTemporaryDirectory() + "saved-\(UUID().uuidString)"
        try model.save(directory: dir)
        let loaded = try DecoderModel(directory: dir)
        XCTAssertEqual(loaded.config, model.config)
        let tokens = [0, 5, 9, 2, 7]
        XCTAssertEqual(try loaded.forward([.init(tokens: tokens, cache: KVCache(layers: 2))], allLogits: true),
                       try model.forward([.init(tokens: tokens, cache: KVCache(layers: 2))], allLogits: true))
    }
}
