import JSON
import NN
#if canImport(Glibc)
import Glibc
#endif

/// One decoder layer's weights, in PyTorch's layout ([out, in] matrices).
public struct DecoderLayerWeights: Sendable {
    public var inputNorm: Tensor
    public var q: Tensor, k: Tensor, v: Tensor, o: Tensor
    public var qBias: Tensor?, kBias: Tensor?, vBias: Tensor?, oBias: Tensor?
    public var postNorm: Tensor
    public var gate: Tensor, up: Tensor, down: Tensor
}

/// A per-sequence low-rank update of `o_proj` (the reference's rl_batch.py; docs/routing.md): W ← W + alpha·A·B on the last
/// `layers` decoder layers, A [hidden × r], B [r × hidden].
public struct LoRAUpdate: Sendable {
    public var a: Tensor
    public var b: Tensor
    public var alpha: Float
    public var layers: Int
    public init(a: Tensor, b: Tensor, alpha: Float, layers: Int) {
        precondition(a.columns == b.rows, "LoRA: A is \(a.shape), B is \(b.shape)")
        self.a = a; self.b = b; self.alpha = alpha; self.layers = layers
    }
    func applies(toLayer i: Int, of total: Int) -> Bool { i >= total - layers }
}

/// The keys and values a sequence has seen, per layer, so each new token costs one step.
/// Not `Sendable`: it is mutated by every forward pass, unguarded, so one sequence's cache
/// belongs to one thread at a time (the generation loops hand it over, they do not share it).
public final class KVCache {
    var keys: [[Float]]
    var values: [[Float]]
    public private(set) var length = 0
    public init(layers: Int) { keys = Array(repeating: [], count: layers); values = Array(repeating: [], count: layers) }
    func advance(by n: Int) { length += n }
}

/// A Llama-family decoder (Llama, Qwen2, Mistral) on the NN engine: batched forward over any
/// number of sequences, each with its own KV cache and optional LoRA update, matching Hugging
/// Face transformers' float32 computation.
///
///     let model = try DecoderModel(directory: "models/tiny-llama")
///     let cache = KVCache(layers: model.config.layers)
///     let logits = try model.forward([Segment(tokens: [0, 17, 42], cache: cache)])
public final class DecoderModel: @unchecked Sendable {
    public let config: DecoderConfig
    public let embedding: Tensor
    public let layers: [DecoderLayerWeights]
    public let finalNorm: Tensor
    /// [vocab, hidden]; the embedding itself when tied.
    public let lmHead: Tensor
    let inverseFrequencies: [Float]
    let rotaryTable = RotaryTable()

    public init(config: DecoderConfig, embedding: Tensor, layers: [DecoderLayerWeights], finalNorm: Tensor, lmHead: Tensor?) {
        self.config = config; self.embedding = embedding; self.layers = layers; self.finalNorm = finalNorm
        self.lmHead = lmHead ?? embedding
        inverseFrequencies = config.inverseFrequencies
    }

    /// Loads `config.json` and the weights (`model.safetensors`, or the shards listed in
    /// `model.safetensors.index.json`) of a Hugging Face model directory.
    public convenience init(directory: String) throws {
        let config = try DecoderConfig.load(directory + "/config.json")
        let files = try DecoderModel.weightFiles(directory)
        var where_: [String: SafeTensorsFile] = [:]
        for f in files { for n in f.entries.keys { where_[n] = f } }
        func load(_ name: String, _ shape: [Int]) throws -> Tensor {
            guard let f = where_[name] else { throw ModelError(directory, "the weights have no tensor \(name)") }
            let t = try f.tensor(name)
            guard t.shape == shape else { throw ModelError(f.path, "tensor \(name) has shape \(t.shape), config.json implies \(shape)") }
            return t
        }
        func optional(_ name: String, _ shape: [Int], _ wanted: Bool) throws -> Tensor? { wanted ? try load(name, shape) : nil }
        let h = config.hiddenSize, q = config.heads * config.headDim, kv = config.kvHeads * config.headDim, i = config.intermediateSize
        var layers: [DecoderLayerWeights] = []
        for l in 0..<config.layers {
            let p = "model.layers.\(l)."
            layers.append(DecoderLayerWeights(
                inputNorm: try load(p + "input_layernorm.weight", [h]),
                q: try load(p + "self_attn.q_proj.weight", [q, h]), k: try load(p + "self_attn.k_proj.weight", [kv, h]),
                v: try load(p + "self_attn.v_proj.weight", [kv, h]), o: try load(p + "self_attn.o_proj.weight", [h, q]),
                qBias: try optional(p + "self_attn.q_proj.bias", [q], config.qkvBias),
                kBias: try optional(p + "self_attn.k_proj.bias", [kv], config.qkvBias),
                vBias: try optional(p + "self_attn.v_proj.bias", [kv], config.qkvBias),
                oBias: try optional(p + "self_attn.o_proj.bias", [h], config.outputBias),
                postNorm: try load(p + "post_attention_layernorm.weight", [h]),
                gate: try load(p + "mlp.gate_proj.weight", [i, h]), up: try load(p + "mlp.up_proj.weight", [i, h]),
                down: try load(p + "mlp.down_proj.weight", [h, i])))
        }
        let embedding = try load("model.embed_tokens.weight", [config.vocabSize, h])
        let head: Tensor? = config.tieEmbeddings && where_["lm_head.weight"] == nil ? nil : try load("lm_head.weight", [config.vocabSize, h])
        self.init(config: config, embedding: embedding, layers: layers, finalNorm: try load("model.norm.weight", [h]), lmHead: head)
    }

    static func weightFiles(_ directory: String) throws -> [SafeTensorsFile] {
        let index = directory + "/model.safetensors.index.json"
        if access(index, F_OK) == 0 {
            let j = try JSONParser.parse(bytes: try DecoderConfig.readFile(index))
            guard let map = j["weight_map"]?.objectMembers else { throw ModelError(index, "no weight_map") }
            let names = Set(map.compactMap { $0.value.stringValue }).sorted()
            return try names.map { try SafeTensorsFile(path: directory + "/" + $0) }
        }
        guard access(directory + "/model.safetensors", F_OK) == 0 else {
            throw ModelError(directory, "no model.safetensors (or model.safetensors.index.json): is this a Hugging Face model directory?")
        }
        return [try SafeTensorsFile(path: directory + "/model.safetensors")]
    }

    /// New tokens of one sequence, appended to its cache.
    public struct Segment {
        public var tokens: [Int]
        public var cache: KVCache
        public var lora: LoRAUpdate?
        /// Receives the last layer's input and pre-o_proj attention at this segment's last row
        /// (what a LoRA gradient needs of a generation step: `LoRACapture`).
        var capture: LoRACapture?
        public init(tokens: [Int], cache: KVCache, lora: LoRAUpdate? = nil) { self.tokens = tokens; self.cache = cache; self.lora = lora }
    }

    /// Runs the new tokens of every segment through the decoder in one batch (the linear layers
    /// as single matrix products over all rows; attention per sequence on its own cache) and
    /// returns the logits: of every new token when `allLogits`, else of each segment's last.
    public func forward(_ segments: [Segment], allLogits: Bool = false) throws -> Tensor {
        let h = config.hiddenSize
        var noTapes: [LayerTape]? = nil
        let (x, starts) = try layersForward(segments, tapes: &noTapes)
        let wanted: Tensor
        if allLogits {
            wanted = x
        } else {
            var last = Tensor(zeros: [segments.count, h])
            for (si, s) in segments.enumerated() where !s.tokens.isEmpty {
                let r = starts[si] + s.tokens.count - 1
                for d in 0..<h { last.data[si * h + d] = x.data[r * h + d] }
            }
            wanted = last
        }
        return try Kernels.linear(Kernels.rmsNorm(wanted, weight: finalNorm, eps: config.rmsEps), lmHead)
    }

    /// Adds alpha · X Bᵀ Aᵀ (the product with the update alpha·A·B of W) to `rows` of `output`.
    func addLoRA(_ lora: LoRAUpdate, input: Tensor, output: inout Tensor, rows: Range<Int>) throws {
        let xb = try Kernels.linear(input.rows(rows), lora.b)        // [n × r]
        let delta = try Kernels.linear(xb, lora.a)                   // [n × hidden]
        let width = output.columns
        for (j, r) in rows.enumerated() {
            for d in 0..<width { output.data[r * width + d] += lora.alpha * delta.data[j * width + d] }
        }
    }

    /// Rotary embedding in place on `heads` consecutive head vectors starting at `offset`
    /// (transformers' rotate_half convention: the two halves of a head are the pair).
    func rotate(_ data: inout [Float], offset: Int, heads: Int, position: Int, inverse: Bool = false) {
        let hd = config.headDim, half = hd / 2
        let (cosines, sines) = rotaryTable.angles(position, inverseFrequencies)
        for i in 0..<half {
            let cosA = cosines[i], sinA = sines[i] * (inverse ? -1 : 1)
            for head in 0..<heads {
                let base = offset + head * hd
                let x1 = data[base + i], x2 = data[base + i + half]
                data[base + i] = x1 * cosA - x2 * sinA
                data[base + i + half] = x2 * cosA + x1 * sinA
            }
        }
    }
}

/// cos and sin of position · frequency, computed once per position (in Float32 angles, as
/// transformers computes them) and shared by every layer and step.
final class RotaryTable: @unchecked Sendable {
    private let lock = Lock()
    private var cosines: [[Float]] = [], sines: [[Float]] = []

    func angles(_ position: Int, _ frequencies: [Float]) -> ([Float], [Float]) {
        lock.withLock {
            while cosines.count <= position {
                let p = Float(cosines.count)
                cosines.append(frequencies.map { Float(cos(Double(p * $0))) })
                sines.append(frequencies.map { Float(sin(Double(p * $0))) })
            }
            return (cosines[position], sines[position])
        }
    }
}
