import Foundation
import XCTest
@testable import LLM
import NN
import JSON

/// The decoder against Hugging Face transformers: tiny random Llama, Qwen2 and Mistral models
/// recorded by Tests/Fixtures/engine/make_fixtures.py (logits, greedy continuations, LoRA).
final class DecoderTests: XCTestCase {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Fixtures/engine").path
    static let prompts = [[0, 17, 42, 5, 88, 23, 61, 9], [0, 3, 77, 12], [0, 50, 51, 52, 53, 54, 55, 56, 57, 58, 59, 60]]
    static let families = ["llama", "qwen2", "mistral"]

    func load(_ family: String) throws -> (DecoderModel, SafeTensorsFile) {
        let dir = DecoderTests.fixtures + "/" + family
        return (try DecoderModel(directory: dir), try SafeTensorsFile(path: dir + "/reference.safetensors"))
    }

    /// One forward serves generation and training: the taped pass of a sequence gives the same
    /// logits, bit for bit, as generation's pass over it, and a batch of segments with caches
    /// (LoRA on one of them) gives each segment the logits it gets alone.
    func testTheTapedForwardIsGenerationsForward() throws {
        for family in DecoderTests.families {
            let (model, _) = try load(family)
            let tokens = DecoderTests.prompts[0]
            let plain = try model.forward([.init(tokens: tokens, cache: KVCache(layers: model.config.layers))], allLogits: true)
            XCTAssertEqual(try model.tapedForward(tokens).logits, plain, family)
            let h = model.config.hiddenSize
            let lora = LoRAUpdate(a: Tensor(shape: [h, 2], data: (0..<(h * 2)).map { Float($0 % 7) * 0.01 }),
                                  b: Tensor(shape: [2, h], data: (0..<(h * 2)).map { Float($0 % 5) * -0.02 }), alpha: 0.5, layers: 1)
            let alone = try model.forward([.init(tokens: DecoderTests.prompts[1], cache: KVCache(layers: model.config.layers), lora: lora)], allLogits: true)
            XCTAssertEqual(try model.tapedForward(DecoderTests.prompts[1], lora: lora).logits, alone, family)
            // Two segments in one batch, the second continuing a cache: each as computed alone.
            let cache = KVCache(layers: model.config.layers)
            _ = try model.forward([.init(tokens: Array(tokens.prefix(5)), cache: cache)])
            let batch = try model.forward([.init(tokens: DecoderTests.prompts[1], cache: KVCache(layers: model.config.layers), lora: lora),
                                           .init(tokens: Array(tokens.suffix(3)), cache: cache)], allLogits: true)
            let v = model.config.vocabSize
            for (i, value) in batch.data.prefix(4 * v).enumerated() { XCTAssertEqual(value, alone.data[i], accuracy: 1e-5, "\(family) segment 0 [\(i)]") }
            for (i, value) in batch.data.suffix(3 * v).enumerated() { XCTAssertEqual(value, plain.data[5 * v + i], accuracy: 1e-4, "\(family) segment 1 [\(i)]") }
        }
    }

    func testConfigsOfTheThreeFamilies() throws {
        let llama = try DecoderConfig.load(DecoderTests.fixtures + "/llama/config.json")
        XCTAssertEqual(llama.family, .llama)
        XCTAssertEqual(llama.kvHeads, 2); XCTAssertEqual(llama.headDim, 8)
        XCTAssertEqual(llama.ropeTheta, 500000)
        XCTAssertNotNil(llama.llama3Scaling)
        XCTAssertFalse(llama.qkvBias)
        let qwen = try DecoderConfig.load(DecoderTests.fixtures + "/qwen2/config.json")
        XCTAssertTrue(qwen.qkvBias); XCTAssertTrue(qwen.tieEmbeddings); XCTAssertEqual(qwen.ropeTheta, 1_000_000)
        XCTAssertEqual(qwen.slidingWindows, [nil, nil])
        // The transformers 4 layout of the same settings.
        let old = try DecoderConfig(json: try JSONParser.parse("""
            {"model_type": "mistral", "vocab_size": 10, "hidden_size": 8, "intermediate_size": 16, "num_hidden_layers": 2,
             "num_attention_heads": 2, "num_key_value_heads": 1, "rope_theta": 1000000.0, "sliding_window": 4096,
             "eos_token_id": [1, 2]}
            """), path: "c.json")
        XCTAssertEqual(old.ropeTheta, 1_000_000); XCTAssertEqual(old.slidingWindows, [4096, 4096]); XCTAssertEqual(old.eosTokenIDs, [1, 2])
        XCTAssertThrowsError(try DecoderConfig(json: ["model_type": "gpt2"], path: "c.json")) { e in
            XCTAssertEqual("\(e)", "c.json: model_type 'gpt2' is not supported; the engine runs llama, qwen2 and mistral")
        }
    }

    func testLogitsMatchTransformers() throws {
        for family in DecoderTests.families {
            let (model, ref) = try load(family)
            for (i, prompt) in DecoderTests.prompts.enumerated() {
                let logits = try model.forward([.init(tokens: prompt, cache: KVCache(layers: model.config.layers))], allLogits: true)
                let expected = try ref.tensor("logits.\(i)")
                XCTAssertEqual(logits.shape, expected.shape)
                XCTAssertLessThan(logits.relativeDifference(expected), 1e-4, "\(family) prompt \(i)")
            }
        }
    }

    func testIncrementalDecodingAndBatchingGiveTheSameLogits() throws {
        for family in DecoderTests.families {
            let (model, ref) = try load(family)
            // Token by token through the cache, all three prompts in one batch each step.
            let caches = DecoderTests.prompts.map { _ in KVCache(layers: model.config.layers) }
            let longest = DecoderTests.prompts.map(\.count).max()!
            var rows: [[Float]] = DecoderTests.prompts.map { _ in [] }
            for step in 0..<longest {
                let live = DecoderTests.prompts.indices.filter { step < DecoderTests.prompts[$0].count }
                let logits = try model.forward(live.map { .init(tokens: [DecoderTests.prompts[$0][step]], cache: caches[$0]) })
                for (r, i) in live.enumerated() { rows[i] += logits.rows(r..<(r + 1)).data }
            }
            for i in DecoderTests.prompts.indices {
                let expected = try ref.tensor("logits.\(i)")
                XCTAssertLessThan(Tensor(shape: expected.shape, data: rows[i]).relativeDifference(expected), 1e-4, "\(family) prompt \(i)")
            }
            // transformers' left-padded batch, at the positions its mask keeps.
            let batch = try ref.tensor("batch.logits")
            let v = model.config.vocabSize, pad = DecoderTests.prompts[0].count - DecoderTests.prompts[1].count
            let second = Tensor(shape: [DecoderTests.prompts[1].count, v],
                                data: Array(batch.data[(DecoderTests.prompts[0].count * v + pad * v)...]))
            XCTAssertLessThan(Tensor(shape: second.shape, data: Array(rows[1])).relativeDifference(second), 1e-4, "\(family) padded batch")
        }
    }

    func testGreedyContinuationsTokenForToken() throws {
        for family in DecoderTests.families {
            let (model, ref) = try load(family)
            let eos = Set(model.config.eosTokenIDs)
            let stopping = try model.generate(DecoderTests.prompts.map { GenerationRequest(prompt: $0, maxNewTokens: 12, stopTokens: eos) })
            let ignoring = try model.generate(DecoderTests.prompts.map { GenerationRequest(prompt: $0, maxNewTokens: 12) })
            for i in DecoderTests.prompts.indices {
                XCTAssertEqual(stopping[i].ids, try ref.integers("greedy.\(i)"), "\(family) prompt \(i), stopping at EOS")
                XCTAssertEqual(ignoring[i].ids, try ref.integers("greedy_ignore_eos.\(i)"), "\(family) prompt \(i), EOS ignored")
                XCTAssertEqual(stopping[i].finishReason, stopping[i].ids.last.map { eos.contains($0) } == true ? "stop" : "length")
                for lp in ignoring[i].logprobs { XCTAssertLessThanOrEqual(lp, 0) }
            }
        }
    }

    func testLoRAPatchedLogitsMatch() throws {
        for family in DecoderTests.families {
            let (model, ref) = try load(family)
            let lora = LoRAUpdate(a: try ref.tensor("lora.A"), b: try ref.tensor("lora.B"), alpha: 0.5, layers: 1)
            let logits = try model.forward([.init(tokens: DecoderTests.prompts[0], cache: KVCache(layers: model.config.layers), lora: lora)],
                                           allLogits: true)
            let expected = try ref.tensor("lora.logits")
            XCTAssertLessThan(logits.relativeDifference(expected), 1e-4, family)
            XCTAssertGreaterThan(logits.relativeDifference(try ref.tensor("logits.0")), 1e-2, "\(family): the update changes the logits")
        }
    }
}
