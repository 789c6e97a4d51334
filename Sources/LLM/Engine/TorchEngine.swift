import JSON
import NN
#if canImport(Glibc)
import Glibc
#endif

/// The torch engine (issue 27): `Engine` over a `TorchWorker`, the models in PyTorch
/// (transformers' Llama, Qwen2 and Mistral) on the worker's devices, the method in Swift. Every
/// operation is held to `CPUEngine` by `TorchEngineTests` (float32, within 1e-4 of scale).
/// Seeds stay here: the generators are initialised in Swift (`ParameterGenerator`, the CPU
/// engine's) and their weights sent. State crosses as a safetensors file the worker writes in
/// `scratch`. Docs: docs/engine.md, "The torch worker".
public final class TorchEngine: Engine, @unchecked Sendable {
    public let worker: TorchWorker
    /// Where each model goes.
    public let placement: Placement
    /// "float32" or "bfloat16".
    public let dtype: String
    /// Where state files cross between this process and the worker.
    public let scratch: String

    /// Where the engine's models go: `default` ("cpu", "cuda", "cuda:N"), and by model name
    /// ("router", a candidate's name) where they differ.
    public struct Placement: Sendable, Equatable {
        public var `default`: String
        public var byModel: [String: String]
        public init(_ device: String, byModel: [String: String] = [:]) { self.default = device; self.byModel = byModel }

        /// A model's device: its name's entry (a candidate's name before any "@digest"), else
        /// "candidates" for a frozen model, else the default.
        public func device(for name: String, trainable: Bool) -> String {
            let base = name.split(separator: "@", maxSplits: 1).first.map(String.init) ?? name
            return byModel[name] ?? byModel[base] ?? (trainable ? nil : byModel["candidates"]) ?? self.default
        }

        /// Whether `s` names a device: "cpu", "cuda" or "cuda:N".
        public static func isDevice(_ s: String) -> Bool {
            s == "cpu" || s == "cuda" || (s.hasPrefix("cuda:") && Int(s.dropFirst(5)).map { $0 >= 0 } == true)
        }

        /// Every device named.
        public var devices: [String] { Array(Set([self.default] + byModel.values)).sorted() }
        public var usesCUDA: Bool { devices.contains { $0.hasPrefix("cuda") } }
    }

    /// Starts the worker (`python script`, its log at `log`) and checks it can run models where
    /// `placement` puts them: what is missing (torch, transformers, a CUDA device) is one error,
    /// said before any model is loaded.
    public init(python: String, script: String, log: String, placement: Placement = Placement("cpu"), dtype: String = "float32",
                scratch: String? = nil, environment: [String: String] = [:]) throws {
        worker = try TorchWorker(python: python, script: script, log: log, environment: environment)
        self.placement = placement; self.dtype = dtype
        self.scratch = scratch ?? (log.contains("/") ? String(log[..<log.lastIndex(of: "/")!]) : ".")
        let problems = worker.preflight(needsCUDA: placement.usesCUDA)
        if !problems.isEmpty {
            worker.stop()
            throw EngineError("the torch engine cannot run on \(placement.devices.joined(separator: ", ")): " + problems.joined(separator: "; "))
        }
    }

    public convenience init(python: String, script: String, log: String, device: String, dtype: String = "float32") throws {
        try self.init(python: python, script: script, log: log, placement: Placement(device), dtype: dtype)
    }

    public var info: EngineInfo {
        let h = worker.hello
        var versions = ["protocol": String(h.protocolVersion), "python": h.python, "dtype": dtype]
        versions["torch"] = h.torch; versions["transformers"] = h.transformers; versions["cuda"] = h.cuda
        return EngineInfo(name: "torch", versions: versions, devices: placement.usesCUDA ? h.devices : ["cpu"])
    }

    private var routerDevice = "cpu"
    /// Rows a worker request decodes at most (the decoder's largest CUDA graph).
    public static let maxBatchRows = 64
    private let batcher = TorchCallBatcher(maxRows: TorchEngine.maxBatchRows)

    private func number(_ i: Int) -> JSONValue { .number(Double(i)) }

    /// Loads a Hugging Face model directory in the worker; its config is read here (what
    /// prompts and generators are sized by).
    public func loadModel(directory: String, name: String, trainable: Bool) throws -> EngineModel {
        let config = try DecoderConfig.load(directory + "/config.json")
        let device = placement.device(for: name, trainable: trainable)
        let reply = try worker.call("load_model", [("directory", .string(directory)), ("device", .string(device)), ("dtype", .string(dtype)),
                                                   ("trainable", .bool(trainable))])
        guard let id = reply.header["model"]?.intValue else { throw EngineError("load_model: the worker gave no model handle") }
        if trainable { routerDevice = device }
        return EngineModel(id: id, name: name, config: config)
    }

    public func loadWeights(_ model: EngineModel, directory: String) throws {
        _ = try worker.call("load_weights", [("model", number(model.id)), ("directory", .string(directory))])
    }

    /// config.json (written here, as the CPU engine writes it) and model.safetensors (by the
    /// worker: torch's names, float32).
    public func saveModel(_ model: EngineModel, to directory: String) throws {
        mkdir(directory, 0o755)
        _ = try worker.call("save_weights", [("model", number(model.id)), ("path", .string(directory + "/model.safetensors"))])
        try model.config.write(directory: directory)
    }

    public func setWeights(_ model: EngineModel, _ weights: [String: Tensor]) throws {
        let tensors = weights.keys.sorted().map { TorchWorker.NamedTensor($0, .float32(weights[$0]!.data), shape: weights[$0]!.shape) }
        _ = try worker.call("set_weights", [("model", number(model.id))], tensors: tensors)
    }

    public func roundWeightsToBFloat16(_ model: EngineModel) throws {
        _ = try worker.call("round_bf16", [("model", number(model.id))])
    }

    /// The calls, batched in the worker with those of every other caller in flight
    /// (`TorchCallBatcher`).
    public func generate(_ calls: [EngineCall]) throws -> [EngineReply] {
        for c in calls { try c.validate() }
        return try batcher.generate(calls, send: request)
    }

    /// One worker request of these calls.
    func request(_ calls: [EngineCall]) throws -> [EngineReply] {
        var described: [JSONValue] = [], tensors: [TorchWorker.NamedTensor] = []
        for (i, c) in calls.enumerated() {
            var call: [(String, JSONValue)] = [
                ("model", .number(Double(c.model.id))), ("prompt", .array(c.prompt.map { .number(Double($0)) })),
                ("max_new_tokens", .number(Double(c.maxNewTokens))), ("stop", .array(c.stopTokens.sorted().map { .number(Double($0)) })),
                ("temperature", .number(Double(c.temperature))), ("top_p", .number(Double(c.topP))), ("rule", .string(c.rule.rawValue)),
            ]
            if c.temperature > 0 { call.append(("uniforms", .array(c.uniforms.map { .number(Double($0)) }))) }
            if c.recordsGradient { call.append(("record", true)) }
            if let u = c.update {
                call.append(("update", ["alpha": .number(Double(u.lora.alpha)), "layers": .number(Double(u.lora.layers)), "handle": .number(Double(u.id))]))
                tensors += [TorchWorker.NamedTensor("a\(i)", .float32(u.lora.a.data), shape: u.lora.a.shape),
                            TorchWorker.NamedTensor("b\(i)", .float32(u.lora.b.data), shape: u.lora.b.shape)]
            }
            described.append(.object(call))
        }
        let reply = try worker.call("generate", [("calls", .array(described))], tensors: tensors)
        let byName = Dictionary(reply.tensors.map { ($0.name, $0.payload) }, uniquingKeysWith: { a, _ in a })
        let finishes = reply.header["replies"]?.arrayValue ?? []
        return try calls.indices.map { i in
            guard case .int64(let ids)? = byName["ids\(i)"], case .float32(let logprobs)? = byName["logprobs\(i)"], i < finishes.count else {
                throw EngineError("generate: the worker's reply lacks call \(i)")
            }
            let recorded = finishes[i]["call"]?.intValue.map { EngineCallID(id: $0) }
            return EngineReply(ids: ids.map { Int($0) }, logprobs: logprobs, finishReason: finishes[i]["finish_reason"]?.stringValue ?? "length",
                               logq: finishes[i]["logq"]?.doubleValue.map { Float($0) } ?? logprobs.reduce(0, +), call: recorded)
        }
    }

    /// The generators initialised here, as the CPU engine's (`ParameterGenerator` from
    /// `seed`), then sent: the same initial weights on both engines.
    public func makeGenerators(_ shapes: [GeneratorShape], seed: UInt64) throws {
        let made = shapes.map { ParameterGenerator(inputSize: $0.input, hiddenSize: $0.hidden, layers: $0.layers, targetSize: $0.target, rank: $0.rank, seed: seed) }
        try setGenerators(made.map(\.weights), ranks: made.map(\.rank))
    }

    /// Generators from named weights (torch's names), replacing any there were.
    public func setGenerators(_ weights: [[String: Tensor]], rank: Int) throws {
        try setGenerators(weights, ranks: weights.map { _ in rank })
    }

    /// On the router's device (the pooled state's).
    func setGenerators(_ weights: [[String: Tensor]], ranks: [Int]) throws {
        var tensors: [TorchWorker.NamedTensor] = []
        for (c, w) in weights.enumerated() {
            for name in w.keys.sorted() { tensors.append(TorchWorker.NamedTensor("g\(c).\(name)", .float32(w[name]!.data), shape: w[name]!.shape)) }
        }
        _ = try worker.call("set_generators", [("device", .string(routerDevice)), ("ranks", .array(ranks.map(number)))], tensors: tensors)
    }

    /// Generator `generator`'s update for a pooled state; with `keepForBackward` (the pooled
    /// state kept too) the worker keeps the update's graph for a step.
    public func makeUpdate(generator: Int, from pooled: PooledState, alpha: Float, layers: Int, keepForBackward: Bool) throws -> EngineUpdate {
        var fields: [(String, JSONValue)] = [("generator", .number(Double(generator))), ("keep", .bool(keepForBackward))]
        var tensors: [TorchWorker.NamedTensor] = []
        if keepForBackward { fields.append(("pooled", .number(Double(pooled.id)))) } else {
            tensors.append(TorchWorker.NamedTensor("pooled", .float32(pooled.values), shape: [pooled.values.count]))
        }
        let reply = try worker.call("make_update", fields, tensors: tensors)
        guard reply.tensors.count == 2, case .float32(let a) = reply.tensors[0].payload, case .float32(let b) = reply.tensors[1].payload else {
            throw EngineError("make_update: the worker gave no update")
        }
        let lora = LoRAUpdate(a: Tensor(shape: reply.tensors[0].shape, data: a), b: Tensor(shape: reply.tensors[1].shape, data: b), alpha: alpha, layers: layers)
        return EngineUpdate(id: reply.header["update"]?.intValue ?? -1, generator: generator, lora: lora)
    }

    /// Each generator's weights (torch's names).
    public func generatorWeights() throws -> [[String: Tensor]] {
        var out: [[String: Tensor]] = []
        for t in try worker.call("generator_weights").tensors {
            guard case .float32(let v) = t.payload else { continue }
            let parts = t.name.split(separator: ".", maxSplits: 1).map(String.init)
            guard parts.count == 2, let c = Int(parts[0].dropFirst()) else { continue }
            while out.count <= c { out.append([:]) }
            out[c][parts[1]] = Tensor(shape: t.shape, data: v)
        }
        return out
    }

    /// A model's weights by torch's names.
    public func weights(_ model: EngineModel) throws -> [String: Tensor] {
        var out: [String: Tensor] = [:]
        for t in try worker.call("weights", [("model", .number(Double(model.id)))]).tensors {
            if case .float32(let v) = t.payload { out[t.name] = Tensor(shape: t.shape, data: v) }
        }
        return out
    }

    public func accumulate(_ update: EngineUpdate, calls: [EngineCallID], coefficient: Float) throws {
        _ = try worker.call("accumulate", [("update", .number(Double(update.id))), ("calls", .array(calls.map { .number(Double($0.id)) })),
                                           ("coefficient", .number(Double(coefficient)))])
    }

    public func step(_ step: EngineStep) throws {
        var fields: [(String, JSONValue)] = [
            ("updates", .array(step.updates.map { .number(Double($0.id)) })), ("pooled", .number(Double(step.pooled.id))),
            ("generator_lrs", .object(step.generatorLRs.sorted { $0.key < $1.key }.map { (String($0.key), .number(Double($0.value))) })),
            ("router_bf16", .bool(step.routerBF16)),
        ]
        if let lr = step.routerLR { fields.append(("router_lr", .number(Double(lr)))) }
        if !step.more.isEmpty {
            fields.append(("more", .array(step.more.map { q in
                .object([("updates", .array(q.updates.map { .number(Double($0.id)) })), ("pooled", .number(Double(q.pooled.id)))])
            })))
        }
        _ = try worker.call("step", fields)
    }

    public func sftStep(_ model: EngineModel, batch: [[Int]], targetsFrom: [Int], accumulation: Int, settings: SFTStepSettings) throws -> Float {
        // The worker backwards `accumulation` micro-batches in turn (the same sum, the
        // activations of one at a time).
        var fields: [(String, JSONValue)] = [
            ("model", .number(Double(model.id))), ("batch", .array(batch.map { .array($0.map { .number(Double($0)) }) })),
            ("accumulation", .number(Double(accumulation))),
            ("targets_from", .array(targetsFrom.map { .number(Double($0)) })), ("lr", .number(Double(settings.lr))),
            ("weight_decay", .number(Double(settings.weightDecay))),
        ]
        if let clip = settings.maxGradientNorm { fields.append(("max_grad_norm", .number(Double(clip)))) }
        guard let loss = try worker.call("sft_step", fields).header["loss"]?.doubleValue else { throw EngineError("sft_step: the worker gave no loss") }
        return Float(loss)
    }

    public func release(_ updates: [EngineUpdate], pooled: PooledState?) {
        var fields: [(String, JSONValue)] = [("updates", .array(updates.map { .number(Double($0.id)) }))]
        if let pooled { fields.append(("pooled", .number(Double(pooled.id)))) }
        _ = try? worker.call("release", fields)
    }

    /// A recorded call's gradient of Σ log q with respect to its update's A and B, as the
    /// worker keeps it (an inspection: training accumulates it in the worker).
    public func callGradient(_ call: EngineCallID) throws -> (dA: [Float], dB: [Float]) {
        let reply = try worker.call("call_gradient", [("call", .number(Double(call.id)))])
        guard reply.tensors.count == 2, case .float32(let a) = reply.tensors[0].payload, case .float32(let b) = reply.tensors[1].payload else {
            throw EngineError("call_gradient: the worker gave no gradient for call \(call.id)")
        }
        return (a, b)
    }

    public func continuationLogProbabilities(_ model: EngineModel, prompt: [Int], continuations: [[Int]]) throws -> [Double] {
        let reply = try worker.call("continuation_logprobs", [("model", .number(Double(model.id))), ("prompt", .array(prompt.map { .number(Double($0)) })),
                                                              ("continuations", .array(continuations.map { .array($0.map { .number(Double($0)) }) }))])
        guard let values = reply.header["logprobs"]?.arrayValue?.compactMap(\.doubleValue), values.count == continuations.count else {
            throw EngineError("continuation_logprobs: the worker gave no log-probabilities")
        }
        return values
    }

    /// Sentence embeddings [texts × hidden], flat, of token-id lists with the BERT-style encoder
    /// of `directory` on `device` (`SentenceEncoder.embed(_:on:device:)` makes the ids and
    /// reads the settings).
    public func embedSentences(directory: String, ids: [[Int]], pooling: String, normalize: Bool, device: String) throws -> [Float] {
        let reply = try worker.call("embed_sentences", [("directory", .string(directory)), ("device", .string(device)), ("dtype", .string(dtype)),
                                                        ("pooling", .string(pooling)), ("normalize", .bool(normalize)),
                                                        ("ids", .array(ids.map { .array($0.map { .number(Double($0)) }) }))])
        guard case .float32(let values)? = reply.tensors.first?.payload else { throw EngineError("embed_sentences: the worker gave no embeddings") }
        return values
    }

    /// The pooled state; `keepForBackward`: the worker keeps its graph for a step.
    public func pooledState(_ model: EngineModel, prompt: [Int], positions: Range<Int>?, keepForBackward: Bool) throws -> PooledState {
        try EngineError.checkPooled(positions, of: prompt)
        var fields: [(String, JSONValue)] = [("model", .number(Double(model.id))), ("prompt", .array(prompt.map { .number(Double($0)) })),
                                             ("keep", .bool(keepForBackward))]
        if let positions { fields.append(("positions", .array([.number(Double(positions.lowerBound)), .number(Double(positions.upperBound))]))) }
        let reply = try worker.call("pooled_state", fields)
        guard case .float32(let values)? = reply.tensors.first?.payload else { throw EngineError("pooled_state: the worker gave no state") }
        return PooledState(id: reply.header["pooled"]?.intValue ?? -1, values: values)
    }

    // MARK: State

    /// The worker writes its state (trainable weights, generators, optimiser moments and
    /// steps, `metadata`) itself, as a safetensors file; `state()` reads one back from scratch.
    public var writesStateFiles: Bool { true }
    public var batchesConcurrentCalls: Bool { true }

    public func saveState(to path: String, metadata: [String: String]) throws {
        _ = try worker.call("save_state", [("path", .string(path)), ("metadata", .object(metadata.sorted { $0.key < $1.key }.map { ($0.key, .string($0.value)) }))])
    }

    public func restoreState(from path: String) throws -> [String: String] {
        let reply = try worker.call("restore_state", [("path", .string(path))])
        var metadata: [String: String] = [:]
        for (k, v) in reply.header["metadata"]?.objectMembers ?? [] { metadata[k] = v.stringValue }
        return metadata
    }

    public func state(metadata: [String: String]) throws -> [UInt8] {
        let path = scratchFile()
        defer { unlink(path) }
        try saveState(to: path, metadata: metadata)
        return try ModelFiles.read(path)
    }

    public func restore(_ bytes: [UInt8]) throws -> [String: String] {
        let path = scratchFile()
        defer { unlink(path) }
        try write(bytes, to: path)
        return try restoreState(from: path)
    }

    private func scratchFile() -> String {
        (scratch.hasSuffix("/") ? scratch : scratch + "/") + "engine-state-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).safetensors"
    }
}
