import Foundation
import XCTest
@testable import LLM
import NN

/// Gradients of the decoder against torch autograd (recorded by the fixture script) and finite
/// differences: the training loss with respect to every weight, and the sampled-token
/// log-probability with respect to a LoRA update.
final class DecoderGradientTests: XCTestCase {
    func load(_ family: String) throws -> (DecoderModel, SafeTensorsFile) {
        let dir = DecoderTests.fixtures + "/" + family
        return (try DecoderModel(directory: dir), try SafeTensorsFile(path: dir + "/reference.safetensors"))
    }

    func testTrainingLossAndEveryWeightGradientMatchTorch() throws {
        for family in DecoderTests.families {
            let (model, ref) = try load(family)
            let tokens = DecoderTests.prompts[2]
            let tape = try model.tapedForward(tokens)
            XCTAssertLessThan(tape.logits.relativeDifference(try ref.tensor("logits.2")), 1e-4)
            let (loss, dLogits) = DecoderModel.nextTokenLoss(logits: tape.logits, tokens: tokens)
            XCTAssertEqual(loss, try ref.tensor("train.loss").data[0], accuracy: 1e-4 * abs(loss), family)
            let grads = try model.backward(tape, dLogits: dLogits, target: .weights)
            let expected = ref.names.filter { $0.hasPrefix("train.grad.") }
            XCTAssertEqual(Set(grads.keys), Set(expected.map { String($0.dropFirst("train.grad.".count)) }), family)
            for name in expected {
                let key = String(name.dropFirst("train.grad.".count))
                guard let g = grads[key] else { continue }
                XCTAssertLessThan(g.relativeDifference(try ref.tensor(name)), 1e-4, "\(family) \(key)")
            }
        }
    }

    func testLoRALogProbabilityGradientMatchesTorch() throws {
        for family in DecoderTests.families {
            let (model, ref) = try load(family)
            let lora = LoRAUpdate(a: try ref.tensor("lora.A"), b: try ref.tensor("lora.B"), alpha: 0.5, layers: 1)
            let sequence = try ref.integers("lora.sample")
            let promptLength = DecoderTests.prompts[0].count
            let tape = try model.tapedForward(sequence, lora: lora)
            let positions = (promptLength..<sequence.count).map { (row: $0 - 1, token: sequence[$0]) }
            let (value, dLogits) = DecoderModel.sampledLogProbability(logits: tape.logits, positions: positions, temperature: 1, topP: 0.9)
            XCTAssertEqual(value, try ref.tensor("lora.logprob").data[0], accuracy: 1e-4 * max(1, abs(value)), family)
            let grads = try model.backward(tape, dLogits: dLogits, target: .lora)
            XCTAssertEqual(Set(grads.keys), ["lora.A", "lora.B"])
            XCTAssertLessThan(try XCTUnwrap(grads["lora.A"]).relativeDifference(try ref.tensor("lora.grad_A")), 1e-4, family)
            XCTAssertLessThan(try XCTUnwrap(grads["lora.B"]).relativeDifference(try ref.tensor("lora.grad_B")), 1e-4, family)
        }
    }

    /// Central differences in Double-accumulated loss, on a few entries of A and B and of
    /// weights in every kind of layer (the rotary embedding and attention included).
    func testGradientsMatchFiniteDifferences() throws {
        let (model, ref) = try load("qwen2")  // biases and tied embeddings
        let tokens = DecoderTests.prompts[1]
        let grads = try model.backward(try model.tapedForward(tokens),
                                       dLogits: DecoderModel.nextTokenLoss(logits: try model.tapedForward(tokens).logits, tokens: tokens).dLogits,
                                       target: .weights)
        func loss(_ m: DecoderModel) throws -> Float { DecoderModel.nextTokenLoss(logits: try m.tapedForward(tokens).logits, tokens: tokens).loss }
        let probes: [(String, Int)] = [("model.layers.0.self_attn.q_proj.weight", 5), ("model.layers.0.self_attn.k_proj.bias", 3),
                                       ("model.layers.1.self_attn.v_proj.weight", 40), ("model.layers.1.mlp.gate_proj.weight", 100),
                                       ("model.layers.0.input_layernorm.weight", 7), ("model.embed_tokens.weight", 3 * 32 + 4),
                                       ("model.norm.weight", 2)]
        for (name, index) in probes {
            let eps: Float = 1e-2
            let plus = try perturbed(model, name, index, eps), minus = try perturbed(model, name, index, -eps)
            let numeric = (try loss(plus) - loss(minus)) / (2 * eps)
            let analytic = try XCTUnwrap(grads[name]).data[index]
            XCTAssertEqual(analytic, numeric, accuracy: 2e-3 + 2e-2 * abs(numeric), name)
        }
        // The LoRA log-probability, by finite differences on A and B.
        var lora = LoRAUpdate(a: try ref.tensor("lora.A"), b: try ref.tensor("lora.B"), alpha: 0.5, layers: 1)
        let sequence = try ref.integers("lora.sample")
        let positions = (8..<sequence.count).map { (row: $0 - 1, token: sequence[$0]) }
        func logp(_ l: LoRAUpdate) throws -> Float {
            DecoderModel.sampledLogProbability(logits: try model.tapedForward(sequence, lora: l).logits, positions: positions, temperature: 1, topP: 0.9).value
        }
        let tape = try model.tapedForward(sequence, lora: lora)
        let g = try model.backward(tape, dLogits: DecoderModel.sampledLogProbability(logits: tape.logits, positions: positions, temperature: 1, topP: 0.9).dLogits, target: .lora)
        for index in [0, 9, 30] {
            let eps: Float = 1e-2
            let a = lora.a
            lora.a.data[index] = a.data[index] + eps; let up = try logp(lora)
            lora.a.data[index] = a.data[index] - eps; let down = try logp(lora)
            lora.a = a
            XCTAssertEqual(try XCTUnwrap(g["lora.A"]).data[index], (up - down) / (2 * eps), accuracy: 2e-3 + 2e-2 * abs((up - down) / (2 * eps)), "A[\(index)]")
        }
    }

    func perturbed(_ m: DecoderModel, _ name: String, _ index: Int, _ delta: Float) throws -> DecoderModel {
        var layers = m.layers
        var embedding = m.embedding, norm = m.finalNorm
        func bump(_ t: inout Tensor) { t.data[index] += delta }
        switch name {
        case "model.embed_tokens.weight": bump(&embedding)
        case "model.norm.weight": bump(&norm)
        default:
            let parts = name.split(separator: ".")
            let l = Int(parts[2])!
            switch parts[3...].joined(separator: ".") {
            case "self_attn.q_proj.weight": bump(&layers[l].q)
            case "self_attn.k_proj.bias": bump(&layers[l].kBias!)
            case "self_attn.v_proj.weight": bump(&layers[l].v)
            case "mlp.gate_proj.weight": bump(&layers[l].gate)
            case "input_layernorm.weight": bump(&layers[l].inputNorm)
            default: XCTFail("no probe for \(name)")
            }
        }
        return DecoderModel(config: m.config, embedding: embedding, layers: layers, finalNorm: norm,
                            lmHead: m.config.tieEmbeddings ? nil : m.lmHead)
    }
}
