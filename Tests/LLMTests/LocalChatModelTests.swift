import Foundation
import XCTest
@testable import LLM
import NN

/// The `local` backend: a random Llama-shaped model with the fixture tokenizer's vocabulary.
final class LocalChatModelTests: XCTestCase {
    static func makeModel(vocab: Int = 1200) throws -> String {
        let dir = NSTemporaryDirectory() + "local-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        var rng = SamplingRandom(seed: 3)
        func random(_ shape: [Int], scale: Float = 0.2) -> Tensor {
            Tensor(shape: shape, data: (0..<shape.reduce(1, *)).map { _ in (rng.unit() * 2 - 1) * scale })
        }
        let h = 16, inter = 32
        var weights: [String: Tensor] = ["model.embed_tokens.weight": random([vocab, h], scale: 1), "model.norm.weight": Tensor(shape: [h], data: Array(repeating: 1, count: h)),
                                         "lm_head.weight": random([vocab, h])]
        for l in 0..<2 {
            let p = "model.layers.\(l)."
            weights[p + "input_layernorm.weight"] = Tensor(shape: [h], data: Array(repeating: 1, count: h))
            weights[p + "post_attention_layernorm.weight"] = Tensor(shape: [h], data: Array(repeating: 1, count: h))
            for n in ["q", "o"] { weights[p + "self_attn.\(n)_proj.weight"] = random([h, h]) }
            for n in ["k", "v"] { weights[p + "self_attn.\(n)_proj.weight"] = random([8, h]) }
            weights[p + "mlp.gate_proj.weight"] = random([inter, h]); weights[p + "mlp.up_proj.weight"] = random([inter, h])
            weights[p + "mlp.down_proj.weight"] = random([h, inter])
        }
        try SafeTensorsFile.write(weights, to: dir + "/model.safetensors")
        try """
            {"model_type": "llama", "vocab_size": \(vocab), "hidden_size": \(h), "intermediate_size": \(inter), "num_hidden_layers": 2,
             "num_attention_heads": 4, "num_key_value_heads": 2, "rms_norm_eps": 1e-6, "rope_theta": 10000.0, "eos_token_id": 1,
             "hidden_act": "silu", "tie_word_embeddings": false}
            """.write(toFile: dir + "/config.json", atomically: true, encoding: .utf8)
        try FileManager.default.copyItem(atPath: TokenizerFixtures.path + "/tokenizer-llama3.json", toPath: dir + "/tokenizer.json")
        return dir
    }

    func testChatIsTheTemplateEncodedGeneratedAndDecoded() throws {
        let dir = try LocalChatModelTests.makeModel()
        let m = try LocalChatModel(directory: dir, name: "tiny")
        XCTAssertEqual(m.identity, "local:tiny")
        XCTAssertEqual(m.template, .llama3)
        let messages = [ChatMessage.user("Where is the Eiffel Tower?")]
        let settings = GenerationSettings(maxTokens: 10)
        let reply = try m.chat(messages, settings: settings)
        let prompt = m.tokenizer.encode(ChatTemplate.llama3.render(messages))
        XCTAssertEqual(prompt.first, 0, "<|begin_of_text|> is the tokenizer's special token 0")
        let direct = try m.model.generate([GenerationRequest(prompt: prompt, maxNewTokens: 10, stopTokens: [1])])[0]
        XCTAssertEqual(reply.promptTokens, prompt.count)
        XCTAssertEqual(reply.completionTokens, direct.ids.count)
        XCTAssertEqual(reply.text, m.tokenizer.decode(direct.finishReason == "stop" ? Array(direct.ids.dropLast()) : direct.ids, skipSpecial: true))
        XCTAssertEqual(try m.chat(messages, settings: settings), reply, "greedy is deterministic")
    }

    func testTemplatesOfTheThreeFamilies() {
        let m: [ChatMessage] = [ChatMessage(role: "system", content: "Be brief."), .user(" Hi ")]
        XCTAssertEqual(ChatTemplate.llama3.render(m),
                       "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n")
        XCTAssertEqual(ChatTemplate.qwen2.render([.user("Hi")]),
                       "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n")
        XCTAssertEqual(ChatTemplate.mistral.render(m), "<s>[INST] Be brief.\n\n Hi [/INST]")
    }
}

enum TokenizerFixtures {
    static let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/engine").path
}

extension LocalChatModelTests {
    /// the reference's rl_batch.py; docs/routing.md, Joint RL: the reference's RL sampler drops the token that crosses top_p; the
    /// common rule keeps it. Both keep the most probable token.
    func testTheReferenceNucleusDropsTheCrossingToken() throws {
        XCTAssertEqual(TokenSampler.nucleus([0.5, 0.3, 0.15, 0.05], topP: 0.9, rule: .reference).tokens, [0, 1])
        XCTAssertEqual(TokenSampler.nucleus([0.5, 0.3, 0.15, 0.05], topP: 0.9, rule: .standard).tokens, [0, 1, 2])
        XCTAssertEqual(TokenSampler.nucleus([0.05, 0.95], topP: 0.9, rule: .reference).tokens, [1], "the first is always kept")
        XCTAssertEqual(TokenSampler.nucleus([0.3, 0.3, 0.4], topP: 1, rule: .reference).tokens, [0, 1, 2])
        XCTAssertEqual(TokenSampler.nucleus([0.5, 0.3, 0.15, 0.05], topP: 0.9, rule: .reference).mass, 0.8, accuracy: 1e-6)
        // A LoRA reply under the reference rule (on the CPU engine): generation and log q use
        // the same nucleus.
        let directory = try LocalChatModelTests.makeModel()
        let m = try LocalChatModel(directory: directory, name: "tiny"), e = try EngineChatModel(directory: directory, name: "tiny", engine: CPUEngine())
        var rng = SamplingRandom(seed: 2)
        func random(_ shape: [Int]) -> Tensor { Tensor(shape: shape, data: (0..<shape.reduce(1, *)).map { _ in rng.unit() - 0.5 }) }
        let lora = LoRAUpdate(a: random([16, 4]), b: random([4, 16]), alpha: 0.5, layers: 1)
        let settings = GenerationSettings(temperature: 1, topP: 0.9, maxTokens: 6, seed: 4)
        let r = try e.chat([.user("Which city?")], settings: settings, update: EngineUpdate(id: 1, generator: 0, lora: lora), rule: .reference,
                           recording: true).engine
        let prompt = m.tokenizer.encode(ChatTemplate.llama3.render([.user("Which city?")]))
        let generated = try m.model.generate([GenerationRequest(prompt: prompt, maxNewTokens: 6, temperature: 1, topP: 0.9, seed: 4,
                                                                stopTokens: m.stopTokens, lora: lora, nucleusRule: .reference)])[0]
        XCTAssertEqual(generated.ids, r.ids)
        XCTAssertEqual(generated.logprobs.reduce(0, +), r.logq, accuracy: 1e-3)
    }

    func testALoRAReplyCarriesItsLogProbabilityAndGradient() throws {
        let m = try LocalChatModel(directory: try LocalChatModelTests.makeModel(), name: "tiny")
        var rng = SamplingRandom(seed: 9)
        func random(_ shape: [Int]) -> Tensor { Tensor(shape: shape, data: (0..<shape.reduce(1, *)).map { _ in rng.unit() - 0.5 }) }
        let lora = LoRAUpdate(a: random([16, 4]), b: random([4, 16]), alpha: 0.5, layers: 1)
        let settings = GenerationSettings(temperature: 1, topP: 0.9, maxTokens: 6, seed: 4)
        let prompt = m.tokenizer.encode(ChatTemplate.llama3.render([.user("Which city?")]))
        let g = try m.model.generateWithLoRAGradient(GenerationRequest(prompt: prompt, maxNewTokens: 6, temperature: 1, topP: 0.9, seed: 4,
                                                                       stopTokens: m.stopTokens, lora: lora))
        let r = (ids: g.result.ids, logprob: g.logprob, gradientA: g.gradientA, gradientB: g.gradientB)
        XCTAssertFalse(r.ids.isEmpty)
        // Two code paths agree: the incremental generation's per-token log-probabilities and the
        // taped full forward over prompt + reply.
        let generated = try m.model.generate([GenerationRequest(prompt: prompt, maxNewTokens: 6, temperature: 1, topP: 0.9, seed: 4,
                                                                stopTokens: m.stopTokens, lora: lora)])[0]
        XCTAssertEqual(generated.ids, r.ids)
        XCTAssertEqual(generated.logprobs.reduce(0, +), r.logprob, accuracy: 1e-3)
        // And the gradient is the derivative of that sum, by central differences on A and B.
        func logprob(_ l: LoRAUpdate) throws -> Float {
            let logits = try m.model.tapedForward(prompt + r.ids, lora: l).logits
            return DecoderModel.sampledLogProbability(logits: logits, positions: r.ids.indices.map { (prompt.count + $0 - 1, r.ids[$0]) },
                                                      temperature: 1, topP: 0.9).value
        }
        for (index, onA) in [(0, true), (17, true), (5, false), (40, false)] {
            var plus = lora, minus = lora
            if onA { plus.a.data[index] += 1e-2; minus.a.data[index] -= 1e-2 } else { plus.b.data[index] += 1e-2; minus.b.data[index] -= 1e-2 }
            let numeric = (try logprob(plus) - logprob(minus)) / 2e-2
            let analytic = onA ? r.gradientA.data[index] : r.gradientB.data[index]
            XCTAssertEqual(analytic, numeric, accuracy: 2e-3 + 2e-2 * abs(numeric), "\(onA ? "A" : "B")[\(index)]")
        }
    }

    /// With the update on the last layer, the gradient comes from the generation's own rows
    /// (`LoRACapture`, no second pass); it equals the taped pass over prompt + reply.
    func testTheOnePassLoRAGradientEqualsTheTapedPass() throws {
        let m = try LocalChatModel(directory: try LocalChatModelTests.makeModel(), name: "tiny")
        var rng = SamplingRandom(seed: 11)
        func random(_ shape: [Int]) -> Tensor { Tensor(shape: shape, data: (0..<shape.reduce(1, *)).map { _ in rng.unit() - 0.5 }) }
        let lora = LoRAUpdate(a: random([16, 4]), b: random([4, 16]), alpha: 0.5, layers: 1)
        let prompt = m.tokenizer.encode(ChatTemplate.llama3.render([.user("Which city was the company founded in?")]))
        for (temperature, seed) in [(Float(1), UInt64(5)), (0, 0)] {
            let request = GenerationRequest(prompt: prompt, maxNewTokens: 10, temperature: temperature, topP: 0.9, seed: seed,
                                            stopTokens: [], lora: lora, nucleusRule: .reference)
            let g = try m.model.generateWithLoRAGradient(request)
            XCTAssertEqual(g.result.ids.count, 10)
            let tape = try m.model.tapedForward(prompt + g.result.ids, lora: lora)
            let greedy = temperature == 0
            let (value, dLogits) = DecoderModel.sampledLogProbability(logits: tape.logits,
                                                                       positions: g.result.ids.indices.map { (prompt.count + $0 - 1, g.result.ids[$0]) },
                                                                       temperature: greedy ? 1 : temperature, topP: greedy ? 1 : 0.9, rule: .reference)
            let grads = try m.model.backward(tape, dLogits: dLogits, target: .lora)
            XCTAssertEqual(g.logprob, value, accuracy: 1e-4 * max(1, abs(value)))
            for (name, ours) in [("lora.A", g.gradientA), ("lora.B", g.gradientB)] {
                let theirs = try XCTUnwrap(grads[name])
                let scale = max(1e-3, theirs.data.map(abs).max()!)
                for (x, y) in zip(ours.data, theirs.data) { XCTAssertEqual(x, y, accuracy: 1e-4 * scale, "\(name) at T \(temperature)") }
            }
        }
    }
}
