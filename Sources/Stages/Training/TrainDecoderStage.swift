public import LLM
import NN
public import Pipeline

/// The `train-decoder` stage: trains a Llama-family decoder from scratch on token sequences
/// (the embedded default's small candidate LLMs), with checkpoints through the stage checkpoint
/// API, so an interrupted run resumes at its last checkpoint and ends with the same weights.
/// Output kind `model`: a Hugging Face model directory (config.json, model.safetensors) and
/// `losses.jsonl` (the mean loss of every step).
///
///     "train_small": {"type": "train-decoder", "inputs": {"sequences": "tokens.jsonl"},
///                     "params": {"family": "qwen2", "vocab_size": 512, "hidden_size": 64, "layers": 2,
///                                "heads": 4, "kv_heads": 2, "steps": 200, "batch_size": 8, "lr": 0.003}}
public struct TrainDecoderStage: StageType {
    public struct Params: Decodable, Sendable {
        var family: String
        var vocab_size: Int
        var hidden_size: Int
        var intermediate_size: Int?
        var layers: Int
        var heads: Int
        var kv_heads: Int?
        var rope_theta: Double?
        var tie_embeddings: Bool?
        var eos_token_id: Int?
        var steps: Int
        var batch_size: Int?
        var lr: Double
        var warmup: Int?
        var schedule: String?
        var weight_decay: Double?
        var max_grad_norm: Double?
        var init_std: Double?
        var checkpoint_every: Int?
    }

    public static let name = "train-decoder"
    public static let version = 1
    public static let summary = "Train a small Llama/Qwen2/Mistral-shaped decoder from scratch on token sequences."
    public static let parameters = [
        ParameterInfo("family", "llama, qwen2 or mistral (qwen2: q/k/v biases)"),
        ParameterInfo("vocab_size"), ParameterInfo("hidden_size"), ParameterInfo("intermediate_size", "default 4 × hidden_size"),
        ParameterInfo("layers"), ParameterInfo("heads"), ParameterInfo("kv_heads", "default: heads"),
        ParameterInfo("rope_theta", "default 10000"), ParameterInfo("tie_embeddings", "default true for qwen2"),
        ParameterInfo("eos_token_id", "written to config.json"),
        ParameterInfo("steps", "optimisation steps"), ParameterInfo("batch_size", "sequences per step (default 8)"),
        ParameterInfo("lr", "peak learning rate"), ParameterInfo("warmup", "warm-up steps (default 3% of steps)"),
        ParameterInfo("schedule", "cosine (default), linear or constant"), ParameterInfo("weight_decay", "AdamW's (default 0.01)"),
        ParameterInfo("max_grad_norm", "clip to this norm (default 1; 0: no clipping)"), ParameterInfo("init_std", "default 0.02"),
        ParameterInfo("checkpoint_every", "steps between checkpoints (default 50)"),
    ]

    public static func ports(_ p: Params) -> StagePorts {
        StagePorts(inputs: [InputPort("sequences", kind: .any, help: "JSON Lines: one array of token ids per line")], output: "model")
    }

    public static func validate(_ p: Params, at path: JSONPath) -> [SpecProblem] {
        var problems: [SpecProblem] = []
        if DecoderConfig.Family(rawValue: p.family) == nil {
            problems.append(SpecProblem(path.appending("family"), "expected llama, qwen2 or mistral" + NearestName.hint(p.family, among: ["llama", "qwen2", "mistral"])))
        }
        for (name, v) in [("vocab_size", p.vocab_size), ("hidden_size", p.hidden_size), ("layers", p.layers), ("heads", p.heads), ("steps", p.steps)] where v < 1 {
            problems.append(SpecProblem(path.appending(name), "expected a positive integer"))
        }
        if p.heads >= 1, p.hidden_size % p.heads != 0 { problems.append(SpecProblem(path.appending("heads"), "hidden_size \(p.hidden_size) is not a multiple of heads \(p.heads)")) }
        if p.heads >= 1, let kv = p.kv_heads, kv < 1 || p.heads % kv != 0 {
            problems.append(SpecProblem(path.appending("kv_heads"), "heads \(p.heads) is not a multiple of kv_heads \(kv)"))
        }
        if let s = p.schedule, !["cosine", "linear", "constant"].contains(s) {
            problems.append(SpecProblem(path.appending("schedule"), "expected cosine, linear or constant" + NearestName.hint(s, among: ["cosine", "linear", "constant"])))
        }
        if p.lr <= 0 { problems.append(SpecProblem(path.appending("lr"), "expected a positive number")) }
        return problems
    }

    static func config(_ p: Params) -> DecoderConfig {
        let family = DecoderConfig.Family(rawValue: p.family)!
        var c = DecoderConfig(family: family, vocabSize: p.vocab_size, hiddenSize: p.hidden_size,
                              intermediateSize: p.intermediate_size ?? 4 * p.hidden_size, layers: p.layers, heads: p.heads,
                              kvHeads: p.kv_heads ?? p.heads, ropeTheta: p.rope_theta ?? 10000,
                              tieEmbeddings: p.tie_embeddings ?? (family == .qwen2), qkvBias: family == .qwen2,
                              eosTokenIDs: p.eos_token_id.map { [$0] } ?? [])
        c.rmsEps = 1e-6
        return c
    }

    /// Reads the sequences: one JSON array of token ids per line, each id inside the vocabulary.
    static func sequences(_ path: String, vocab: Int) throws -> [[Int]] {
        var out: [[Int]] = []
        for (n, line) in try FileIO.readString(path).split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            if line.allSatisfy(\.isWhitespace) { continue }
            let v: JSONValue
            do { v = try JSONParser.parse(String(line)) } catch { throw DataError(file: path, line: n + 1, "not JSON: \(error)") }
            guard let ids = v.arrayValue?.compactMap(\.intValue), ids.count == v.arrayValue?.count, ids.count >= 2 else {
                throw DataError(file: path, line: n + 1, "expected an array of at least two token ids")
            }
            if let bad = ids.first(where: { $0 < 0 || $0 >= vocab }) {
                throw DataError(file: path, line: n + 1, "token id \(bad) is outside the vocabulary (vocab_size \(vocab))")
            }
            out.append(ids)
        }
        guard !out.isEmpty else { throw DataError(file: path, line: nil, "no sequences") }
        return out
    }

    /// The batch of a step: a seeded permutation per epoch, read in order (so a resumed run sees
    /// the same batches without saving a generator's state).
    static func batch(step: Int, size: Int, count: Int, seed: UInt64) -> [Int] {
        (0..<size).map { j in
            let position = step * size + j
            let epoch = position / count
            var rng = SeededRandom(seed: seed &+ UInt64(epoch) &* 0x9E37_79B9)
            var order = Array(0..<count)
            order.shuffle(using: &rng)
            return order[position % count]
        }
    }

    public static func run(_ p: Params, _ context: StageContext) throws {
        let config = config(p)
        let data = try sequences(context.inputs["sequences"]!.path, vocab: config.vocabSize)
        let steps = p.steps, size = p.batch_size ?? 8, every = max(1, p.checkpoint_every ?? 50)
        let warmup = p.warmup ?? max(0, steps * 3 / 100)
        let schedule: LearningRateSchedule = switch p.schedule ?? "cosine" {
        case "linear": .linear(warmup: warmup, total: steps)
        case "constant": .constant
        default: .cosine(warmup: warmup, total: steps)
        }
        try BLAS.shared().threads = context.threads
        let trainer = DecoderTrainer(model: try .randomlyInitialised(config, seed: context.seed, std: Float(p.init_std ?? 0.02)),
                                     learningRate: Float(p.lr), schedule: schedule, weightDecay: Float(p.weight_decay ?? 0.01),
                                     maxGradientNorm: (p.max_grad_norm ?? 1) > 0 ? Float(p.max_grad_norm ?? 1) : nil)
        trainer.threads = context.threads
        let losses = try context.journal("losses")
        if let (step, state) = context.checkpoints.latest() {
            try trainer.restore(state)
            context.log("resuming from the checkpoint of step \(step)")
        }
        context.progress.setTotal(steps, unit: "steps")
        context.progress.resume(completed: trainer.step)
        while trainer.step < steps {
            try context.checkCancellation()
            let indices = batch(step: trainer.step, size: size, count: data.count, seed: context.seed)
            let step = trainer.step
            let loss = try trainer.train(indices.map { data[$0] })
            if !losses.contains("s\(step)") { try losses.append(key: "s\(step)", json: .number(Double(loss))) }
            context.progress.advance()
            context.progress.setStatus("loss \(Format.fixed(Double(loss), 3))")
            if trainer.step % every == 0 || trainer.step == steps { try context.checkpoints.save(step: trainer.step, state: try trainer.state()) }
        }
        try trainer.model.save(directory: context.outputDirectory)
        var log = ""
        for s in 0..<steps { if let l = losses.json("s\(s)") { log += JSONValue.object(["step": .number(Double(s)), "loss": l]).canonical + "\n" } }
        try FileIO.writeAtomically(log, to: context.outputDirectory + "/losses.jsonl")
        let first = losses.json("s0")?.doubleValue ?? .nan, last = losses.json("s\(steps - 1)")?.doubleValue ?? .nan
        context.log("trained \(steps) steps on \(data.count) sequences: loss \(Format.fixed(first, 3)) → \(Format.fixed(last, 3))")
    }
}
