#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import JSON
import NN

/// Writes a Llama-architecture decoder as a GGUF file (version 3, F32 tensors), the format of
/// llama.cpp, so that its server and other GGUF engines can run our candidates. Names, metadata
/// and layouts follow llama.cpp's `convert_hf_to_gguf.py`: dimensions are listed fastest-first
/// (a [out, in] weight is [in, out]), and q_proj/k_proj rows are permuted from Hugging Face's
/// rotate-half rotary layout to GGML's interleaved one. The tokenizer goes in as llama.cpp's
/// `gpt2` (byte-level BPE) model with the GPT-2 pre-tokenizer, and the chat template as Jinja.
public enum GGUFExport {
    public struct Unsupported: Error, CustomStringConvertible {
        public var description: String
    }

    /// The GGUF bytes of the model directory `directory` (config.json, safetensors, tokenizer.json).
    public static func bytes(ofModelIn directory: String, name: String) throws -> [UInt8] {
        let model = try DecoderModel(directory: directory)
        let c = model.config
        guard c.family == .llama, c.llama3Scaling == nil, !c.qkvBias, !c.outputBias, !c.mlpBias else {
            throw Unsupported(description: "\(directory): export-gguf writes Llama-architecture models without biases or rope scaling (this one: \(c.family.rawValue))")
        }
        let tokenizer = try JSONParser.parse(try String(contentsOfFile: directory + "/tokenizer.json", encoding: .utf8))
        var w = GGUFWriter()
        w.string("general.architecture", "llama")
        w.string("general.name", name)
        w.uint32("general.file_type", 0)  // all F32
        w.uint32("llama.vocab_size", UInt32(c.vocabSize))
        w.uint32("llama.context_length", UInt32(c.maxPositions))
        w.uint32("llama.embedding_length", UInt32(c.hiddenSize))
        w.uint32("llama.block_count", UInt32(c.layers))
        w.uint32("llama.feed_forward_length", UInt32(c.intermediateSize))
        w.uint32("llama.attention.head_count", UInt32(c.heads))
        w.uint32("llama.attention.head_count_kv", UInt32(c.kvHeads))
        w.uint32("llama.attention.key_length", UInt32(c.headDim))
        w.uint32("llama.attention.value_length", UInt32(c.headDim))
        w.uint32("llama.rope.dimension_count", UInt32(c.headDim))
        w.float32("llama.rope.freq_base", Float(c.ropeTheta))
        w.float32("llama.attention.layer_norm_rms_epsilon", c.rmsEps)
        try addTokenizer(tokenizer, config: c, to: &w)

        let weights = model.namedWeights
        func tensor(_ ggml: String, _ hf: String, permuteHeads: Int? = nil) throws {
            guard var t = weights[hf] else { throw Unsupported(description: "\(directory): no tensor \(hf)") }
            if let heads = permuteHeads { t = interleavedRotary(t, heads: heads) }
            w.tensor(ggml, t)
        }
        try tensor("token_embd.weight", "model.embed_tokens.weight")
        for l in 0..<c.layers {
            let p = "model.layers.\(l).", b = "blk.\(l)."
            try tensor(b + "attn_norm.weight", p + "input_layernorm.weight")
            try tensor(b + "attn_q.weight", p + "self_attn.q_proj.weight", permuteHeads: c.heads)
            try tensor(b + "attn_k.weight", p + "self_attn.k_proj.weight", permuteHeads: c.kvHeads)
            try tensor(b + "attn_v.weight", p + "self_attn.v_proj.weight")
            try tensor(b + "attn_output.weight", p + "self_attn.o_proj.weight")
            try tensor(b + "ffn_norm.weight", p + "post_attention_layernorm.weight")
            try tensor(b + "ffn_gate.weight", p + "mlp.gate_proj.weight")
            try tensor(b + "ffn_up.weight", p + "mlp.up_proj.weight")
            try tensor(b + "ffn_down.weight", p + "mlp.down_proj.weight")
        }
        try tensor("output_norm.weight", "model.norm.weight")
        if !c.tieEmbeddings { try tensor("output.weight", "lm_head.weight") }
        return w.bytes()
    }

    /// Rows of a q/k projection reordered within each head from Hugging Face's layout (pairs
    /// (i, i + d/2) rotate together) to GGML's (pairs (2i, 2i + 1)): llama.cpp's `permute`.
    static func interleavedRotary(_ t: Tensor, heads: Int) -> Tensor {
        let rows = t.rows, cols = t.columns, d = rows / heads, half = d / 2
        var out = t
        for h in 0..<heads {
            for i in 0..<half {
                for (k, source) in [i, i + half].enumerated() {
                    let from = (h * d + source) * cols, to = (h * d + 2 * i + k) * cols
                    for j in 0..<cols { out.data[to + j] = t.data[from + j] }
                }
            }
        }
        return out
    }

    /// The byte-level BPE tokenizer (tokens by id, their types, merges), the special tokens and
    /// the chat template.
    static func addTokenizer(_ tokenizer: JSONValue, config c: DecoderConfig, to w: inout GGUFWriter) throws {
        guard tokenizer["model"]?["type"]?.stringValue == "BPE", let vocab = tokenizer["model"]?["vocab"]?.objectMembers else {
            throw Unsupported(description: "export-gguf needs a byte-level BPE tokenizer.json")
        }
        var tokens = (0..<c.vocabSize).map { "[PAD\($0)]" }
        var types = [Int32](repeating: 5, count: c.vocabSize)  // unused
        for (text, id) in vocab { if let i = id.intValue, i < c.vocabSize { tokens[i] = text; types[i] = 1 } }
        for added in tokenizer["added_tokens"]?.arrayValue ?? [] {
            guard let i = added["id"]?.intValue, i < c.vocabSize, let text = added["content"]?.stringValue else { continue }
            tokens[i] = text
            types[i] = added["special"]?.boolValue == true ? 3 : 4  // control, user-defined
        }
        let merges: [String] = (tokenizer["model"]?["merges"]?.arrayValue ?? []).compactMap { m in
            if let s = m.stringValue { return s }
            if let pair = m.arrayValue, pair.count == 2, let a = pair[0].stringValue, let b = pair[1].stringValue { return a + " " + b }
            return nil
        }
        w.string("tokenizer.ggml.model", "gpt2")
        w.string("tokenizer.ggml.pre", "gpt-2")
        w.strings("tokenizer.ggml.tokens", tokens)
        w.int32s("tokenizer.ggml.token_type", types)
        w.strings("tokenizer.ggml.merges", merges)
        if let bos = c.bosTokenID { w.uint32("tokenizer.ggml.bos_token_id", UInt32(bos)) }
        let eot = tokens.firstIndex(of: "<|eot_id|>"), end = tokens.firstIndex(of: "<|end_of_text|>")
        if let eos = end ?? c.eosTokenIDs.first { w.uint32("tokenizer.ggml.eos_token_id", UInt32(eos)) }
        if let eot { w.uint32("tokenizer.ggml.eot_token_id", UInt32(eot)) }
        w.bool("tokenizer.ggml.add_bos_token", false)  // the chat template writes it
        w.string("tokenizer.chat_template", llama3Template)
    }

    /// `ChatTemplate.llama3` in Jinja, as transformers and llama.cpp render chat templates.
    static let llama3Template = "{{ bos_token }}{% for message in messages %}{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + message['content'] | trim + '<|eot_id|>' }}{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}"
}

/// GGUF version 3: header, typed metadata, tensor infos, then the tensors' data, each aligned
/// to 32 bytes (all little-endian).
struct GGUFWriter {
    private var metadata: [UInt8] = [], count = 0
    private var tensors: [(name: String, dims: [Int], data: [Float])] = []
    static let alignment = 32

    private enum ValueType: UInt32 { case uint32 = 4, int32 = 5, float32 = 6, bool = 7, string = 8, array = 9 }

    private static func append<T: FixedWidthInteger>(_ v: T, to out: inout [UInt8]) {
        withUnsafeBytes(of: v.littleEndian) { out += $0 }
    }
    private static func append(_ s: String, to out: inout [UInt8]) {
        append(UInt64(s.utf8.count), to: &out); out += Array(s.utf8)
    }
    private mutating func key(_ k: String, _ type: ValueType) {
        GGUFWriter.append(k, to: &metadata); GGUFWriter.append(type.rawValue, to: &metadata); count += 1
    }
    mutating func uint32(_ k: String, _ v: UInt32) { key(k, .uint32); GGUFWriter.append(v, to: &metadata) }
    mutating func float32(_ k: String, _ v: Float) { key(k, .float32); GGUFWriter.append(v.bitPattern, to: &metadata) }
    mutating func bool(_ k: String, _ v: Bool) { key(k, .bool); metadata.append(v ? 1 : 0) }
    mutating func string(_ k: String, _ v: String) { key(k, .string); GGUFWriter.append(v, to: &metadata) }
    mutating func strings(_ k: String, _ v: [String]) {
        key(k, .array); GGUFWriter.append(ValueType.string.rawValue, to: &metadata); GGUFWriter.append(UInt64(v.count), to: &metadata)
        for s in v { GGUFWriter.append(s, to: &metadata) }
    }
    mutating func int32s(_ k: String, _ v: [Int32]) {
        key(k, .array); GGUFWriter.append(ValueType.int32.rawValue, to: &metadata); GGUFWriter.append(UInt64(v.count), to: &metadata)
        for x in v { GGUFWriter.append(x, to: &metadata) }
    }
    /// A row-major tensor; GGUF lists its dimensions fastest-first.
    mutating func tensor(_ name: String, _ t: Tensor) { tensors.append((name, t.shape.reversed(), t.data)) }

    func bytes() -> [UInt8] {
        var out: [UInt8] = Array("GGUF".utf8)
        GGUFWriter.append(UInt32(3), to: &out)
        GGUFWriter.append(UInt64(tensors.count), to: &out)
        GGUFWriter.append(UInt64(count), to: &out)
        out += metadata
        func padded(_ n: Int) -> Int { (n + GGUFWriter.alignment - 1) / GGUFWriter.alignment * GGUFWriter.alignment }
        var offset = 0
        for t in tensors {
            GGUFWriter.append(t.name, to: &out)
            GGUFWriter.append(UInt32(t.dims.count), to: &out)
            for d in t.dims { GGUFWriter.append(UInt64(d), to: &out) }
            GGUFWriter.append(UInt32(0), to: &out)  // F32
            GGUFWriter.append(UInt64(offset), to: &out)
            offset = padded(offset + t.data.count * 4)
        }
        out += [UInt8](repeating: 0, count: padded(out.count) - out.count)
        for t in tensors {
            t.data.withUnsafeBytes { out += $0 }  // little-endian hosts
            out += [UInt8](repeating: 0, count: padded(out.count) - out.count)
        }
        return out
    }
}
