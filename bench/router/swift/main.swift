// bench/router: SFT tokens/s of the router's training step (the sft-train stage's step:
// prompt + target sequences, loss on the target, gradient accumulation, clipping, AdamW) on a
// tiny Llama router; bench/router/run.sh runs it beside the transformers peer (torch_peer.py)
// on the same sequences (Tests/Fixtures/router/examples.json). Prints one JSON object.
import Foundation
import JSON
import LLM
import NN

let env = ProcessInfo.processInfo.environment
let threads = Int(env["THREADS"] ?? "2")!, steps = Int(env["STEPS"] ?? "5")!
let fixtures = CommandLine.arguments.count > 1 ? CommandLine.arguments[1] : "Tests/Fixtures/router"
try BLAS.shared().threads = threads

let recorded = try JSONParser.parse(String(contentsOfFile: fixtures + "/examples.json", encoding: .utf8))
let examples = recorded["examples"]!.arrayValue!.map { e in
    (tokens: (e["prompt_ids"]!.arrayValue! + e["target_ids"]!.arrayValue!).map { $0.intValue! }, targetsFrom: e["prompt_ids"]!.arrayValue!.count)
}
// A step: 8 sequences as 2 micro-batches of 4 (the fixture's 4 examples, twice).
let batch = examples + examples
let config = DecoderConfig(family: .llama, vocabSize: 1203, hiddenSize: 128, intermediateSize: 384, layers: 4, heads: 4, kvHeads: 2,
                           ropeTheta: 10000, bosTokenID: 0, eosTokenIDs: [1202])
let trainer = DecoderTrainer(model: try .randomlyInitialised(config, seed: 1), learningRate: 1e-4, schedule: .constant, weightDecay: 0, maxGradientNorm: 1)
let sequences = batch.map(\.tokens), targetsFrom = batch.map(\.targetsFrom)
try trainer.train(sequences, targetsFrom: targetsFrom, accumulation: 2)  // warm-up
let t0 = DispatchTime.now().uptimeNanoseconds
for _ in 0..<steps { try trainer.train(sequences, targetsFrom: targetsFrom, accumulation: 2) }
let seconds = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9 / Double(steps)
let tokens = batch.reduce(0) { $0 + $1.tokens.count }
let out: [String: Any] = ["threads": threads, "step_s": seconds, "tokens_per_step": tokens, "tokens_per_s": Double(tokens) / seconds,
                          "cpu": Machine.cpuModel, "openblas_core": try BLAS.shared().coreName]
print(String(decoding: try JSONSerialization.data(withJSONObject: out, options: [.sortedKeys]), as: UTF8.self))
