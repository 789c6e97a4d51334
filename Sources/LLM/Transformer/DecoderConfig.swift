import JSON
import NN
#if canImport(Glibc)
import Glibc
#endif

/// A problem with a model directory (its config, weights or tokenizer), naming the file.
public struct ModelError: Error, CustomStringConvertible, Sendable {
    public var path: String
    public var message: String
    public init(_ path: String, _ message: String) { self.path = path; self.message = message }
    public var description: String { "\(path): \(message)" }
}

/// A Llama-family decoder's shape, read from a Hugging Face `config.json`: the Llama, Qwen2 and
/// Mistral architectures (grouped-query attention, rotary embeddings with Llama 3 scaling, tied
/// embeddings, Qwen2's q/k/v biases, sliding windows). Both the transformers 4 layout
/// (`rope_theta`, `rope_scaling`) and the 5 layout (`rope_parameters`) are read.
public struct DecoderConfig: Sendable, Equatable {
    public enum Family: String, Sendable, CaseIterable { case llama, qwen2, mistral }
    public var family: Family
    public var vocabSize: Int
    public var hiddenSize: Int
    public var intermediateSize: Int
    public var layers: Int
    public var heads: Int
    public var kvHeads: Int
    public var headDim: Int
    public var rmsEps: Float
    public var ropeTheta: Double
    /// Llama 3's frequency scaling: factor, low and high frequency factors, original context.
    public var llama3Scaling: (factor: Double, low: Double, high: Double, original: Double)?
    public var tieEmbeddings: Bool
    /// Biases on q, k and v (Qwen2; Llama's `attention_bias` puts one on o as well).
    public var qkvBias: Bool
    public var outputBias: Bool
    public var mlpBias: Bool
    /// Per layer: the number of past positions a token sees (nil: all).
    public var slidingWindows: [Int?]
    public var bosTokenID: Int?
    public var eosTokenIDs: [Int]
    /// The context length the model was trained for (`max_position_embeddings`).
    public var maxPositions = 4096

    public static func == (a: DecoderConfig, b: DecoderConfig) -> Bool {
        a.family == b.family && a.vocabSize == b.vocabSize && a.hiddenSize == b.hiddenSize && a.layers == b.layers &&
            a.heads == b.heads && a.kvHeads == b.kvHeads && a.headDim == b.headDim && a.ropeTheta == b.ropeTheta &&
            a.tieEmbeddings == b.tieEmbeddings && a.qkvBias == b.qkvBias && a.slidingWindows == b.slidingWindows
    }

    public init(family: Family, vocabSize: Int, hiddenSize: Int, intermediateSize: Int, layers: Int, heads: Int, kvHeads: Int,
                headDim: Int? = nil, rmsEps: Float = 1e-6, ropeTheta: Double = 10000, tieEmbeddings: Bool = false,
                qkvBias: Bool = false, bosTokenID: Int? = nil, eosTokenIDs: [Int] = []) {
        self.family = family; self.vocabSize = vocabSize; self.hiddenSize = hiddenSize; self.intermediateSize = intermediateSize
        self.layers = layers; self.heads = heads; self.kvHeads = kvHeads; self.headDim = headDim ?? hiddenSize / heads
        self.rmsEps = rmsEps; self.ropeTheta = ropeTheta; self.llama3Scaling = nil; self.tieEmbeddings = tieEmbeddings
        self.qkvBias = qkvBias; self.outputBias = false; self.mlpBias = false
        self.slidingWindows = Array(repeating: nil, count: layers); self.bosTokenID = bosTokenID; self.eosTokenIDs = eosTokenIDs
    }

    /// Reads `config.json`; unsupported architectures and settings are refused by name.
    public static func load(_ path: String) throws -> DecoderConfig {
        guard let bytes = try? readFile(path) else { throw ModelError(path, "cannot read the model config") }
        let j: JSONValue
        do { j = try JSONParser.parse(bytes: bytes) } catch { throw ModelError(path, "not valid JSON: \(error)") }
        return try DecoderConfig(json: j, path: path)
    }

    public init(json j: JSONValue, path: String) throws {
        func int(_ k: String) throws -> Int {
            guard let v = j[k]?.intValue else { throw ModelError(path, "missing integer field '\(k)'") }
            return v
        }
        guard let type = j["model_type"]?.stringValue else { throw ModelError(path, "missing 'model_type'") }
        guard let family = Family(rawValue: type) else {
            throw ModelError(path, "model_type '\(type)' is not supported; the engine runs llama, qwen2 and mistral")
        }
        if let act = j["hidden_act"]?.stringValue, act != "silu" { throw ModelError(path, "hidden_act '\(act)' is not supported (silu only)") }
        self.init(family: family, vocabSize: try int("vocab_size"), hiddenSize: try int("hidden_size"),
                  intermediateSize: try int("intermediate_size"), layers: try int("num_hidden_layers"),
                  heads: try int("num_attention_heads"), kvHeads: try j["num_key_value_heads"]?.intValue ?? int("num_attention_heads"),
                  headDim: j["head_dim"]?.intValue, rmsEps: Float(j["rms_norm_eps"]?.doubleValue ?? 1e-6),
                  tieEmbeddings: j["tie_word_embeddings"]?.boolValue ?? false, qkvBias: family == .qwen2,
                  bosTokenID: j["bos_token_id"]?.intValue,
                  eosTokenIDs: j["eos_token_id"]?.intValue.map { [$0] } ?? j["eos_token_id"]?.arrayValue?.compactMap(\.intValue) ?? [])
        guard heads % kvHeads == 0 else { throw ModelError(path, "num_attention_heads \(heads) is not a multiple of num_key_value_heads \(kvHeads)") }
        if family == .llama, j["attention_bias"]?.boolValue == true { qkvBias = true; outputBias = true }
        if family == .llama { mlpBias = j["mlp_bias"]?.boolValue ?? false }
        if let n = j["max_position_embeddings"]?.intValue, n > 0 { maxPositions = n }
        // Rotary settings: transformers 5 nests them in rope_parameters; 4 has rope_theta and rope_scaling.
        let rope = j["rope_parameters"] ?? j["rope_scaling"]
        ropeTheta = rope?["rope_theta"]?.doubleValue ?? j["rope_theta"]?.doubleValue ?? 10000
        let ropeType = rope?["rope_type"]?.stringValue ?? rope?["type"]?.stringValue ?? "default"
        switch ropeType {
        case "default": break
        case "llama3":
            guard let f = rope?["factor"]?.doubleValue, let lo = rope?["low_freq_factor"]?.doubleValue,
                  let hi = rope?["high_freq_factor"]?.doubleValue, let o = rope?["original_max_position_embeddings"]?.doubleValue else {
                throw ModelError(path, "llama3 rope scaling needs factor, low_freq_factor, high_freq_factor and original_max_position_embeddings")
            }
            llama3Scaling = (f, lo, hi, o)
        default: throw ModelError(path, "rope_type '\(ropeType)' is not supported (default and llama3 are)")
        }
        // Sliding windows: transformers 5 lists layer_types; 4 has sliding_window and, for Qwen2,
        // use_sliding_window with max_window_layers.
        let window = j["sliding_window"]?.intValue
        if let types = j["layer_types"]?.arrayValue?.compactMap(\.stringValue), types.count == layers {
            slidingWindows = types.map { $0 == "sliding_attention" ? window : nil }
        } else if let window {
            switch family {
            case .mistral: slidingWindows = Array(repeating: window, count: layers)
            case .qwen2:
                if j["use_sliding_window"]?.boolValue == true {
                    let from = j["max_window_layers"]?.intValue ?? layers
                    slidingWindows = (0..<layers).map { $0 >= from ? window : nil }
                }
            case .llama: break
            }
        }
    }

    static func readFile(_ path: String) throws -> [UInt8] { try ModelFiles.read(path) }

    /// Rotary inverse frequencies, computed in Float32 as transformers does (Llama 3 scaling applied).
    public var inverseFrequencies: [Float] {
        let half = headDim / 2
        var inv = (0..<half).map { i -> Float in 1 / Float(pow(ropeTheta, Double(Float(2 * i) / Float(headDim)))) }
        if let s = llama3Scaling {
            let lowWavelen = s.original / s.low, highWavelen = s.original / s.high
            inv = inv.map { f in
                let wavelen = 2 * Double.pi / Double(f)
                if wavelen < highWavelen { return f }
                if wavelen > lowWavelen { return f / Float(s.factor) }
                let smooth = Float((s.original / wavelen - s.low) / (s.high - s.low))
                return (1 - smooth) * f / Float(s.factor) + smooth * f
            }
        }
        return inv
    }
}
