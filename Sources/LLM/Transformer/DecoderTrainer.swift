import JSON
import NN
#if canImport(Glibc)
import Glibc
#endif

extension DecoderModel {
    /// Every weight by its Hugging Face name (the lm_head only when not tied).
    public var namedWeights: [String: Tensor] {
        var out: [String: Tensor] = ["model.embed_tokens.weight": embedding, "model.norm.weight": finalNorm]
        if !config.tieEmbeddings { out["lm_head.weight"] = lmHead }
        for (l, w) in layers.enumerated() {
            let p = "model.layers.\(l)."
            let named: [(String, Tensor?)] = [
                ("input_layernorm.weight", w.inputNorm), ("post_attention_layernorm.weight", w.postNorm),
                ("self_attn.q_proj.weight", w.q), ("self_attn.k_proj.weight", w.k), ("self_attn.v_proj.weight", w.v),
                ("self_attn.o_proj.weight", w.o), ("self_attn.q_proj.bias", w.qBias), ("self_attn.k_proj.bias", w.kBias),
                ("self_attn.v_proj.bias", w.vBias), ("self_attn.o_proj.bias", w.oBias),
                ("mlp.gate_proj.weight", w.gate), ("mlp.up_proj.weight", w.up), ("mlp.down_proj.weight", w.down)]
            for (n, t) in named { if let t { out[p + n] = t } }
        }
        return out
    }

    /// A model from named weights (as `namedWeights` gives them).
    public convenience init(config: DecoderConfig, weights: [String: Tensor]) throws {
        func get(_ n: String) throws -> Tensor {
            guard let t = weights[n] else { throw ModelError("weights", "no tensor \(n)") }
            return t
        }
        var layers: [DecoderLayerWeights] = []
        for l in 0..<config.layers {
            let p = "model.layers.\(l)."
            layers.append(DecoderLayerWeights(
                inputNorm: try get(p + "input_layernorm.weight"), q: try get(p + "self_attn.q_proj.weight"),
                k: try get(p + "self_attn.k_proj.weight"), v: try get(p + "self_attn.v_proj.weight"), o: try get(p + "self_attn.o_proj.weight"),
                qBias: weights[p + "self_attn.q_proj.bias"], kBias: weights[p + "self_attn.k_proj.bias"],
                vBias: weights[p + "self_attn.v_proj.bias"], oBias: weights[p + "self_attn.o_proj.bias"],
                postNorm: try get(p + "post_attention_layernorm.weight"), gate: try get(p + "mlp.gate_proj.weight"),
                up: try get(p + "mlp.up_proj.weight"), down: try get(p + "mlp.down_proj.weight")))
        }
        self.init(config: config, embedding: try get("model.embed_tokens.weight"), layers: layers, finalNorm: try get("model.norm.weight"),
                  lmHead: config.tieEmbeddings ? nil : try get("lm_head.weight"))
    }

    /// A freshly initialised model, as transformers initialises one: weights normal with
    /// standard deviation `std`, biases zero, norms one.
    public static func randomlyInitialised(_ config: DecoderConfig, seed: UInt64, std: Float = 0.02) throws -> DecoderModel {
        var rng = SamplingRandom(seed: seed)
        func normal(_ shape: [Int]) -> Tensor {
            let n = shape.reduce(1, *)
            var data = [Float](repeating: 0, count: n)
            var i = 0
            while i < n {  // Box–Muller, two values a draw
                let u1 = max(rng.unit(), 1e-7), u2 = rng.unit()
                let r = (-2 * logf(u1)).squareRoot()
                data[i] = std * r * cosf(2 * .pi * u2)
                if i + 1 < n { data[i + 1] = std * r * sinf(2 * .pi * u2) }
                i += 2
            }
            return Tensor(shape: shape, data: data)
        }
        let h = config.hiddenSize, q = config.heads * config.headDim, kv = config.kvHeads * config.headDim, i = config.intermediateSize
        let ones = Tensor(shape: [h], data: Array(repeating: 1, count: h))
        let layers = (0..<config.layers).map { _ in
            DecoderLayerWeights(inputNorm: ones, q: normal([q, h]), k: normal([kv, h]), v: normal([kv, h]), o: normal([h, q]),
                                qBias: config.qkvBias ? Tensor(zeros: [q]) : nil, kBias: config.qkvBias ? Tensor(zeros: [kv]) : nil,
                                vBias: config.qkvBias ? Tensor(zeros: [kv]) : nil, oBias: config.outputBias ? Tensor(zeros: [h]) : nil,
                                postNorm: ones, gate: normal([i, h]), up: normal([i, h]), down: normal([h, i]))
        }
        return DecoderModel(config: config, embedding: normal([config.vocabSize, h]), layers: layers, finalNorm: ones,
                            lmHead: config.tieEmbeddings ? nil : normal([config.vocabSize, h]))
    }

    /// Writes the model in the Hugging Face layout (config.json, model.safetensors), loadable by
    /// transformers and by `DecoderModel(directory:)`.
    public func save(directory: String) throws {
        mkdir(directory, 0o755)
        try SafeTensorsFile.write(namedWeights, metadata: ["format": "pt"], to: directory + "/model.safetensors")
        try config.write(directory: directory)
    }
}

extension DecoderConfig {
    /// Writes `directory/config.json` (`json`, pretty-printed).
    public func write(directory: String) throws {
        let text = json.pretty + "\n"
        guard let f = fopen(directory + "/config.json", "wb") else { throw ModelError(directory, "cannot write config.json") }
        defer { fclose(f) }
        _ = text.withCString { fputs($0, f) }
    }

    /// The config as transformers 4 writes it (read back by transformers 4 and 5 alike).
    public var json: JSONValue {
        let architecture = ["llama": "LlamaForCausalLM", "qwen2": "Qwen2ForCausalLM", "mistral": "MistralForCausalLM"][family.rawValue]!
        var o: [(String, JSONValue)] = [
            ("architectures", [.string(architecture)]), ("model_type", .string(family.rawValue)),
            ("vocab_size", .number(Double(vocabSize))), ("hidden_size", .number(Double(hiddenSize))),
            ("intermediate_size", .number(Double(intermediateSize))), ("num_hidden_layers", .number(Double(layers))),
            ("num_attention_heads", .number(Double(heads))), ("num_key_value_heads", .number(Double(kvHeads))),
            ("head_dim", .number(Double(headDim))), ("rms_norm_eps", .number(Double(rmsEps))), ("rope_theta", .number(ropeTheta)),
            ("tie_word_embeddings", .bool(tieEmbeddings)), ("hidden_act", "silu"), ("max_position_embeddings", .number(Double(maxPositions))),
            ("torch_dtype", "float32")]
        if let s = llama3Scaling {
            o.append(("rope_scaling", ["rope_type": "llama3", "factor": .number(s.factor), "low_freq_factor": .number(s.low),
                                       "high_freq_factor": .number(s.high), "original_max_position_embeddings": .number(s.original)]))
        }
        if family == .llama { o.append(("attention_bias", .bool(outputBias))) }
        if let b = bosTokenID { o.append(("bos_token_id", .number(Double(b)))) }
        if eosTokenIDs.count == 1 { o.append(("eos_token_id", .number(Double(eosTokenIDs[0])))) }
        else if !eosTokenIDs.isEmpty { o.append(("eos_token_id", .array(eosTokenIDs.map { .number(Double($0)) }))) }
        return .object(o)
    }
}

/// Trains a decoder from scratch or further: the mean next-token loss of a batch of sequences,
/// gradients averaged, clipped, and one AdamW step at the scheduled learning rate. Its state
/// (weights, optimizer moments, step) is one safetensors blob, for the stage checkpoint API.
public final class DecoderTrainer {
    public private(set) var model: DecoderModel
    public var optimizer: AdamW
    public var learningRate: Float
    public var schedule: LearningRateSchedule
    public var maxGradientNorm: Float?
    /// Threads for a step: sequences of a batch run in parallel, each with single-threaded
    /// OpenBLAS (small products parallelise better across sequences than inside one).
    public var threads: Int
    public var step: Int { optimizer.step }
    /// Each weight's element count (fixed for the model's life): summing gradients starts with
    /// the largest.
    private lazy var weightSizes = model.namedWeights.mapValues(\.count)

    public init(model: DecoderModel, learningRate: Float, schedule: LearningRateSchedule = .constant, weightDecay: Float = 0.01,
                maxGradientNorm: Float? = 1) {
        self.model = model; self.learningRate = learningRate; self.schedule = schedule
        self.optimizer = AdamW(weightDecay: weightDecay); self.maxGradientNorm = maxGradientNorm
        self.threads = (try? BLAS.shared().threads) ?? 1
    }

    /// One optimisation step over `batch`; returns the batch's mean loss before the step.
    /// `targetsFrom[i]`: the first token of sequence i that is a target (default: all).
    /// `accumulation`: the batch runs as that many micro-batches whose gradients are summed
    /// before the one step (memory for a micro-batch's tapes only; the same result, bit for
    /// bit, since gradients are summed in batch order either way).
    @discardableResult
    public func train(_ batch: [[Int]], targetsFrom: [Int]? = nil, accumulation: Int = 1) throws -> Float {
        precondition(accumulation >= 1, "accumulation must be at least 1, got \(accumulation)")
        let micro = max(1, (batch.count + accumulation - 1) / accumulation)
        var total: [String: Tensor]? = nil
        var loss: Float = 0
        for start in stride(from: 0, to: batch.count, by: micro) {
            let range = start..<min(batch.count, start + micro)
            loss += try accumulateGradients(Array(batch[range]), targetsFrom: targetsFrom.map { Array($0[range]) }, into: &total)
        }
        guard let total else { return 0 }
        // Averaging over the batch and clipping are one multiplier, applied as AdamW reads the gradients.
        let scale = 1 / Float(max(1, batch.count))
        var multiplier = scale
        if let maxGradientNorm {
            multiplier *= Gradients.clipCoefficient(norm: Gradients.norm(total, threads: threads) * scale, maxNorm: maxGradientNorm)
        }
        var weights = model.namedWeights
        optimizer.update(&weights, gradients: total, lr: learningRate * schedule.multiplier(optimizer.step), gradientScale: multiplier,
                         threads: threads)
        self.model = try DecoderModel(config: model.config, weights: weights)
        return loss * scale
    }

    /// Forward and backward of each sequence (in parallel, each with single-threaded OpenBLAS),
    /// their gradients added to `total` in batch order; returns the summed loss. The linear
    /// layers' weight gradients come back as factors and are formed straight into the sum
    /// (`LinearWeightFactors`): the same bits as a gradient set per sequence, summed.
    private func accumulateGradients(_ batch: [[Int]], targetsFrom: [Int]?, into total: inout [String: Tensor]?) throws -> Float {
        typealias Item = (loss: Float, grads: [String: Tensor], factors: LinearWeightFactors)
        final class Results: @unchecked Sendable {
            let lock = Lock()
            var items: [Item?]
            init(_ n: Int) { items = Array(repeating: nil, count: n) }
        }
        let results = Results(batch.count), model = self.model
        let blas = try BLAS.shared(), blasThreads = blas.threads
        let parallel = threads > 1 && batch.count > 1
        if parallel { blas.threads = 1 }
        defer { if parallel { blas.threads = blasThreads } }
        try Parallel.forEach(batch.count, threads: parallel ? threads : 1) { i in
            let tape = try model.tapedForward(batch[i])
            let (l, dLogits) = DecoderModel.nextTokenLoss(logits: tape.logits, tokens: batch[i], targetsFrom: targetsFrom?[i] ?? 1)
            let factors = LinearWeightFactors()
            let grads = try model.backward(tape, dLogits: dLogits, target: .weights, deferring: factors)
            results.lock.withLock { results.items[i] = (l, grads, factors) }
        }
        let items = results.items.compactMap { $0 }
        results.items = []  // so that the tensors below are held once and add in place, uncopied
        let loss = items.reduce(0) { $0 + $1.loss }
        try sum(items.map(\.grads), formed: items.map(\.factors), into: &total)
        return loss
    }

    /// Adds each sequence's gradients to `total` in batch order, per name (names in parallel,
    /// largest first), so that the result does not depend on which thread finished first.
    private func sum(_ sequences: [[String: Tensor]], formed factors: [LinearWeightFactors], into total: inout [String: Tensor]?) throws {
        var sequences = sequences
        var running = total ?? [:]
        total = nil
        if running.isEmpty, !sequences.isEmpty { running = sequences.removeFirst() }  // moved, not copied
        let formed = Set(factors.flatMap(\.names))
        var names = Set(running.keys).union(formed)
        for s in sequences { names.formUnion(s.keys) }
        final class Sum: @unchecked Sendable { var tensor: Tensor?; init(_ t: Tensor?) { tensor = t } }  // one object per name: no shared array is written
        let order = names.sorted()
        let sums = order.map { Sum(running.removeValue(forKey: $0)) }
        let size = order.map { weightSizes[$0] ?? 0 }
        let work = order.indices.sorted { (size[$0], order[$1]) > (size[$1], order[$0]) }
        let rest = sequences
        try Parallel.forEach(work.count, threads: threads) { w in
            let n = work[w], name = order[n]
            if formed.contains(name) { return try LinearWeightFactors.accumulate(name, of: factors, into: &sums[n].tensor) }
            for item in rest {
                guard let g = item[name] else { continue }
                guard sums[n].tensor != nil else { sums[n].tensor = g; continue }
                g.data.withUnsafeBufferPointer { g in
                    sums[n].tensor!.data.withUnsafeMutableBufferPointer { t in for i in t.indices { t[i] += g[i] } }
                }
            }
        }
        var out: [String: Tensor] = [:]
        for (n, name) in order.enumerated() { out[name] = sums[n].tensor }
        total = out
    }

    /// Continues from other weights (set by someone else: a restored checkpoint, a rounding),
    /// with the optimiser's moments as they are.
    public func replaceModel(_ m: DecoderModel) { model = m }

    /// Weights (`param.<name>`), optimizer state (`opt.<...>`) and step, as safetensors bytes.
    public func state() throws -> [UInt8] {
        var all: [String: Tensor] = [:]
        for (k, t) in model.namedWeights { all["param." + k] = t }
        for (k, t) in optimizer.state { all["opt." + k] = t }
        return try SafeTensorsFile.serialize(all, metadata: ["config": model.config.json.canonical])
    }

    /// Continues from `state()` bytes.
    public func restore(_ bytes: [UInt8]) throws {
        let all = try SafeTensorsFile(bytes: bytes, name: "trainer checkpoint").all()
        var weights: [String: Tensor] = [:], opt: [String: Tensor] = [:]
        for (k, t) in all {
            if k.hasPrefix("param.") { weights[String(k.dropFirst(6))] = t }
            if k.hasPrefix("opt.") { opt[String(k.dropFirst(4))] = t }
        }
        model = try DecoderModel(config: model.config, weights: weights)
        optimizer.restore(opt)
    }
}
