// bench/rl: steps/s of the joint RL step (rl-train's JointRLTrainer.train without the dialogue's
// text: the engine's work) on tiny random Llamas: the router's taped forward over a routing
// prompt and its pooled state, the parameter generator, one candidate call of exactly NEW tokens
// sampled under the generated LoRA update with the reference's nucleus rule, log q and its
// gradient with respect to A and B (in the generation's own pass: the update is on the last
// layer, `DecoderModel.generateWithLoRAGradient`), the generator's and the router backbone's backward, and an
// AdamW step for each. bench/rl/run.sh runs it beside torch_peer.py (the same step in PyTorch)
// on the same prompts (Tests/Fixtures/router/examples.json). Prints one JSON object.
import Foundation
import JSON
import LLM
import NN

let env = ProcessInfo.processInfo.environment
let threads = Int(env["THREADS"] ?? "2")!, steps = Int(env["STEPS"] ?? "5")!, newTokens = Int(env["NEW"] ?? "48")!
let fixtures = CommandLine.arguments.count > 1 ? CommandLine.arguments[1] : "Tests/Fixtures/router"
try BLAS.shared().threads = threads

let recorded = try JSONParser.parse(String(contentsOfFile: fixtures + "/examples.json", encoding: .utf8))
let prompts = recorded["examples"]!.arrayValue!.map { $0["prompt_ids"]!.arrayValue!.map { $0.intValue! } }
let routingPrompt = Array(prompts[0].prefix(128)), callPrompt = Array(prompts[1].prefix(256))
let config = DecoderConfig(family: .llama, vocabSize: 1203, hiddenSize: 128, intermediateSize: 384, layers: 4, heads: 4, kvHeads: 2,
                           ropeTheta: 10000, bosTokenID: 0, eosTokenIDs: [1202])
var router = try DecoderModel.randomlyInitialised(config, seed: 1)
let candidate = try DecoderModel.randomlyInitialised(config, seed: 2)
var generator = ParameterGenerator(inputSize: 128, targetSize: 128, rank: 8, seed: 43)
var routerOptimizer = AdamW(weightDecay: 0.01), generatorOptimizer = AdamW(weightDecay: 0)

@MainActor func step(_ i: Int) throws {
    let routerTape = try router.tapedForward(routingPrompt)
    let (a, b, generatorTape) = try generator.forward(DecoderModel.pooled(routerTape))
    let lora = LoRAUpdate(a: a, b: b, alpha: 0.01, layers: 1)
    let request = GenerationRequest(prompt: callPrompt, maxNewTokens: newTokens, temperature: 1, topP: 0.9, seed: UInt64(i),
                                    stopTokens: [], lora: lora, nucleusRule: .reference)
    let g = try candidate.generateWithLoRAGradient(request)  // what LocalChatModel.chat(lora:) runs
    let reward: Float = -1  // d(−R·log q): the gradients of log q scaled by R
    let dA = Tensor(shape: a.shape, data: g.gradientA.data.map { $0 * reward })
    let dB = Tensor(shape: b.shape, data: g.gradientB.data.map { $0 * reward })
    let (grads, dPooled) = try generator.backward(generatorTape, dA: dA, dB: dB)
    generatorOptimizer.update(&generator.weights, gradients: grads, lr: 1e-5)
    var weights = router.namedWeights
    routerOptimizer.update(&weights, gradients: try router.backward(routerTape, dPooled: dPooled), lr: 5e-6)
    router = try DecoderModel(config: config, weights: weights)
}

try step(0)  // warm-up
let t0 = DispatchTime.now().uptimeNanoseconds
for i in 1...steps { try step(i) }
let seconds = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9 / Double(steps)
let out: [String: Any] = ["threads": threads, "step_s": seconds, "steps_per_s": 1 / seconds, "new_tokens": newTokens,
                          "routing_prompt": routingPrompt.count, "call_prompt": callPrompt.count,
                          "cpu": Machine.cpuModel, "openblas_core": try BLAS.shared().coreName]
print(String(decoding: try JSONSerialization.data(withJSONObject: out, options: [.sortedKeys]), as: UTF8.self))
