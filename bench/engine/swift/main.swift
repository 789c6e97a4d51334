// bench/engine: training steps/s, generation tokens/s and sgemm GFLOP/s of the NN engine on a
// small Llama-shaped config; bench/engine/run.sh runs it beside the PyTorch peer (torch_peer.py).
// Prints one JSON object.
import Foundation
import LLM
import NN

let env = ProcessInfo.processInfo.environment
let threads = Int(env["THREADS"] ?? "2")!
let steps = Int(env["STEPS"] ?? "5")!
try BLAS.shared().threads = threads

func seconds(_ body: () throws -> Void) rethrows -> Double {
    let t0 = DispatchTime.now().uptimeNanoseconds
    try body()
    return Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
}

// sgemm peak: a large square product, best of a few.
let size = 1024
let a = [Float](repeating: 0.5, count: size * size), b = [Float](repeating: 0.25, count: size * size)
var c = [Float](repeating: 0, count: size * size)
var best = Double.infinity
for _ in 0..<5 {
    best = min(best, seconds { c.withUnsafeMutableBufferPointer { blas in
        try! BLAS.shared().sgemm(m: size, n: size, k: size, a: a, b: b, c: blas.baseAddress!)
    } })
}
let peak = 2 * pow(Double(size), 3) / best / 1e9

// The small config, shared with the peer through the command line.
let vocab = 4096, hidden = 256, inter = 688, layers = 4, heads = 8, kvHeads = 4, seq = 128, batch = 4
let config = DecoderConfig(family: .llama, vocabSize: vocab, hiddenSize: hidden, intermediateSize: inter, layers: layers,
                           heads: heads, kvHeads: kvHeads, ropeTheta: 10000, eosTokenIDs: [])
let trainer = DecoderTrainer(model: try .randomlyInitialised(config, seed: 1), learningRate: 1e-3)
var rng = SamplingRandom(seed: 7)
let data = (0..<batch).map { _ in (0..<seq).map { _ in Int(rng.next() % UInt64(vocab)) } }
try trainer.train(data)  // warm-up
let trainTime = try seconds { for _ in 0..<steps { try trainer.train(data) } } / Double(steps)

// Matmul FLOPs of one training step: linear layers (forward 2·tokens·in·out, backward twice
// that) and attention (QKᵀ and PV per head, causal rows computed in full, ×3 with backward).
let tokens = Double(batch * seq), hd = Double(hidden / heads)
let linearParams = Double(layers) * (Double(hidden * hidden * 2 + hidden * (kvHeads * hidden / heads) * 2) + Double(3 * hidden * inter)) + Double(vocab * hidden)
let attention = Double(layers * heads * batch) * 2 * 2 * Double(seq * seq) * hd
let flops = 3 * (2 * tokens * linearParams + attention)

// Generation: a batch of 8 prompts of 16 tokens, 64 new tokens each, greedy.
let model = trainer.model
let prompts = (0..<8).map { _ in (0..<16).map { _ in Int(rng.next() % UInt64(vocab)) } }
_ = try model.generate(prompts.map { GenerationRequest(prompt: $0, maxNewTokens: 4) })
let genTime = try seconds { _ = try model.generate(prompts.map { GenerationRequest(prompt: $0, maxNewTokens: 64) }) }

let out: [String: Any] = ["cpu": Machine.cpuModel, "openblas_core": try BLAS.shared().coreName, "threads": threads, "sgemm_peak_gflops": peak, "train_step_s": trainTime, "train_steps_per_s": 1 / trainTime,
                          "train_matmul_gflops": flops / trainTime / 1e9, "generate_tokens_per_s": Double(8 * 64) / genTime]
print(String(decoding: try JSONSerialization.data(withJSONObject: out, options: [.sortedKeys]), as: UTF8.self))

if env["BREAKDOWN"] != nil {
    let m = trainer.model
    for (label, t, par) in [("blas2-serial", 2, 1), ("blas1-serial", 1, 1), ("blas1-parallel2", 1, 2)] {
        try BLAS.shared().threads = t
        let s = try seconds {
            try Parallel.forEach(batch, threads: par) { i in
                let tape = try m.tapedForward(data[i])
                let (_, d) = DecoderModel.nextTokenLoss(logits: tape.logits, tokens: data[i])
                _ = try m.backward(tape, dLogits: d, target: .weights)
            }
        }
        let f = try seconds { for i in 0..<batch { _ = try m.tapedForward(data[i]) } }
        print(label, "fwd+bwd", s, "fwd only serial", f)
    }
    try BLAS.shared().threads = 2
    var w = m.namedWeights
    var opt = AdamW()
    let g = w
    print("adamw", seconds { opt.update(&w, gradients: g, lr: 1e-3) })
}
