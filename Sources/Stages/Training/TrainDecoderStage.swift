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
    public struct Params: StageParameters {
        @Param("the architecture (qwen2: q/k/v biases)") var family: DecoderConfig.Family
        @Param("vocabulary size") var vocab_size: Int
        @Param("hidden size") var hidden_size: Int
        @Param("MLP size (default 4 × hidden_size)") var intermediate_size: Int? = nil
        @Param("decoder layers") var layers: Int
        @Param("attention heads") var heads: Int
        @Param("key/value heads (default: heads)") var kv_heads: Int? = nil
        @Param("rotary base") var rope_theta = 10000.0
        @Param("tie the output head to the embedding (default true for qwen2)") var tie_embeddings: Bool? = nil
        @Param("written to config.json") var eos_token_id: Int? = nil
        @Param("optimisation steps") var steps: Int
        @Param("sequences per step") var batch_size = 8
        @Param("peak learning rate") var lr: Double
        @Param("warm-up steps (default 3% of steps)") var warmup: Int? = nil
        @Param("learning-rate schedule after the warm-up") var schedule = ScheduleKind.cosine
        @Param("AdamW's weight decay") var weight_decay = 0.01
        @Param("clip gradients to this norm (0: no clipping)") var max_grad_norm = 1.0
        @Param("standard deviation of the initial weights") var init_std = 0.02
        @Param("steps between checkpoints") var checkpoint_every = 50
        public init() {}
    }

    public static let name = "train-decoder"
    public static let version = 1
    public static let summary = "Train a small Llama/Qwen2/Mistral-shaped decoder from scratch on token sequences."

    public static func ports(_ p: Params) -> StagePorts {
        StagePorts(inputs: [InputPort("sequences", kind: .any, help: "JSON Lines: one array of token ids per line")], output: .model)
    }

    public static func validate(_ p: Params, at path: JSONPath) -> [SpecProblem] {
        var problems: [SpecProblem] = []
        for (name, v) in [("vocab_size", p.vocab_size), ("hidden_size", p.hidden_size), ("layers", p.layers), ("heads", p.heads), ("steps", p.steps)] where v < 1 {
            problems.append(SpecProblem(path.appending(name), "expected a positive integer"))
        }
        if p.heads >= 1, p.hidden_size % p.heads != 0 { problems.append(SpecProblem(path.appending("heads"), "hidden_size \(p.hidden_size) is not a multiple of heads \(p.heads)")) }
        if p.heads >= 1, let kv = p.kv_heads, kv < 1 || p.heads % kv != 0 {
            problems.append(SpecProblem(path.appending("kv_heads"), "heads \(p.heads) is not a multiple of kv_heads \(kv)"))
        }
        if p.lr <= 0 { problems.append(SpecProblem(path.appending("lr"), "expected a positive number")) }
        return problems
    }

    static func config(_ p: Params) -> DecoderConfig {
        let family = p.family
        var c = DecoderConfig(family: family, vocabSize: p.vocab_size, hiddenSize: p.hidden_size,
                              intermediateSize: p.intermediate_size ?? 4 * p.hidden_size, layers: p.layers, heads: p.heads,
                              kvHeads: p.kv_heads ?? p.heads, ropeTheta: p.rope_theta,
                              tieEmbeddings: p.tie_embeddings ?? (family == .qwen2), qkvBias: family == .qwen2,
                              eosTokenIDs: p.eos_token_id.map { [$0] } ?? [])
        c.rmsEps = 1e-6
        return c
    }

    /// Reads the sequences: one JSON array of token ids per line, each id inside the vocabulary.
    static func sequences(_ path: String, vocab: Int) throws -> [[Int]] {
        var out: [[Int]] = []
        for (n, v) in try JSONLines.read(path) {
            guard let ids = v.arrayValue?.compactMap(\.intValue), ids.count == v.arrayValue?.count, ids.count >= 2 else {
                throw DataError(file: path, line: n, "expected an array of at least two token ids")
            }
            if let bad = ids.first(where: { $0 < 0 || $0 >= vocab }) {
                throw DataError(file: path, line: n, "token id \(bad) is outside the vocabulary (vocab_size \(vocab))")
            }
            out.append(ids)
        }
        guard !out.isEmpty else { throw DataError(file: path, line: nil, "no sequences") }
        return out
    }

    public static func run(_ p: Params, _ context: StageContext) throws {
        let config = config(p)
        let data = try sequences(context.inputs["sequences"]!.path, vocab: config.vocabSize)
        let steps = p.steps, size = p.batch_size
        try BLAS.shared().threads = context.threads
        let trainer = DecoderTrainer(model: try .randomlyInitialised(config, seed: context.seed, std: Float(p.init_std)),
                                     learningRate: Float(p.lr), schedule: p.schedule.schedule(warmup: p.warmup ?? max(0, steps * 3 / 100), total: steps),
                                     weightDecay: Float(p.weight_decay), maxGradientNorm: p.max_grad_norm > 0 ? Float(p.max_grad_norm) : nil)
        trainer.threads = context.threads
        let streams = BatchStreams(seed: context.seed)
        let losses = try TrainingLoop(steps: steps, checkpointEvery: p.checkpoint_every).run(trainer, context) { step in
            let batch = streams.epochs(step: step, size: size, count: data.count).map { data[$0] }
            return .init(loss: Double(try trainer.train(batch)), tokens: batch.reduce(0) { $0 + $1.count })
        }
        try trainer.model.save(directory: context.outputDirectory)
        try FileIO.writeAtomically(losses.jsonLines, to: context.outputDirectory + "/losses.jsonl")
        context.log("trained \(steps) steps on \(data.count) sequences: \(losses.summary)")
    }
}

extension DecoderConfig.Family: ParameterEnum {}
