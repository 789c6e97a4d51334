import JSON
import NN
#if canImport(Glibc)
import Glibc
#endif

/// A BERT-style sentence encoder (all-MiniLM-L6-v2 and its kind) from a sentence-transformers
/// directory: WordPiece, the BERT forward pass, then pooling and normalisation as the
/// directory's sentence-transformers configuration says (`modules.json`, `1_Pooling/config.json`,
/// `sentence_bert_config.json`'s `max_seq_length`).
///
///     let enc = try SentenceEncoder(directory: "models/all-MiniLM-L6-v2")
///     let vectors = try enc.embed(["Paris is in France.", "Berlin"])   // 384 numbers each, unit length
public final class SentenceEncoder: @unchecked Sendable {
    public enum Pooling: String, Sendable { case mean, cls, max }
    struct Layer {
        var q: Tensor, qb: Tensor, k: Tensor, kb: Tensor, v: Tensor, vb: Tensor
        var o: Tensor, ob: Tensor, norm1: Tensor, norm1b: Tensor
        var up: Tensor, upb: Tensor, down: Tensor, downb: Tensor, norm2: Tensor, norm2b: Tensor
    }
    public let tokenizer: WordPieceTokenizer
    public let hiddenSize: Int, heads: Int, maxLength: Int
    public let pooling: Pooling
    public let normalize: Bool
    public let name: String
    /// The sentence-transformers directory it was read from.
    public let directory: String
    let eps: Float
    let words: Tensor, positions: Tensor, tokenTypes: Tensor, embeddingNorm: Tensor, embeddingNormBias: Tensor
    let layers: [Layer]

    public var dimension: Int { hiddenSize }

    public init(directory: String) throws {
        let configPath = directory + "/config.json"
        let c: JSONValue
        do { c = try JSONParser.parse(bytes: try DecoderConfig.readFile(configPath)) } catch { throw ModelError(configPath, "cannot read the encoder config: \(error)") }
        guard ["bert"].contains(c["model_type"]?.stringValue ?? "") else {
            throw ModelError(configPath, "model_type '\(c["model_type"]?.stringValue ?? "none")' is not a BERT encoder")
        }
        guard let h = c["hidden_size"]?.intValue, let nh = c["num_attention_heads"]?.intValue, let nl = c["num_hidden_layers"]?.intValue else {
            throw ModelError(configPath, "needs hidden_size, num_attention_heads and num_hidden_layers")
        }
        if let act = c["hidden_act"]?.stringValue, act != "gelu" { throw ModelError(configPath, "hidden_act '\(act)' is not supported (gelu is)") }
        hiddenSize = h; heads = nh; eps = Float(c["layer_norm_eps"]?.doubleValue ?? 1e-12)
        let maxPositions = c["max_position_embeddings"]?.intValue ?? 512
        let sentenceConfig = try? JSONParser.parse(bytes: DecoderConfig.readFile(directory + "/sentence_bert_config.json"))
        maxLength = min(maxPositions, sentenceConfig?["max_seq_length"]?.intValue ?? maxPositions)
        let poolingConfig = try? JSONParser.parse(bytes: DecoderConfig.readFile(directory + "/1_Pooling/config.json"))
        if poolingConfig?["pooling_mode_cls_token"]?.boolValue == true { pooling = .cls }
        else if poolingConfig?["pooling_mode_max_tokens"]?.boolValue == true { pooling = .max }
        else { pooling = .mean }
        let modules = (try? JSONParser.parse(bytes: DecoderConfig.readFile(directory + "/modules.json")))?.arrayValue ?? []
        normalize = modules.contains { ($0["type"]?.stringValue ?? "").hasSuffix("Normalize") }
        tokenizer = try WordPieceTokenizer(directory: directory)
        name = Path.lastComponent(directory)
        self.directory = directory

        let files = try DecoderModel.weightFiles(directory)
        var location: [String: SafeTensorsFile] = [:]
        for f in files { for n in f.entries.keys { location[n.hasPrefix("bert.") ? String(n.dropFirst(5)) : n] = f } }
        func load(_ n: String) throws -> Tensor {
            guard let f = location[n] else { throw ModelError(directory, "the weights have no tensor \(n)") }
            return try f.tensor(f.entries[n] != nil ? n : "bert." + n)
        }
        words = try load("embeddings.word_embeddings.weight"); positions = try load("embeddings.position_embeddings.weight")
        tokenTypes = try load("embeddings.token_type_embeddings.weight")
        embeddingNorm = try load("embeddings.LayerNorm.weight"); embeddingNormBias = try load("embeddings.LayerNorm.bias")
        layers = try (0..<nl).map { l in
            let p = "encoder.layer.\(l)."
            return Layer(q: try load(p + "attention.self.query.weight"), qb: try load(p + "attention.self.query.bias"),
                         k: try load(p + "attention.self.key.weight"), kb: try load(p + "attention.self.key.bias"),
                         v: try load(p + "attention.self.value.weight"), vb: try load(p + "attention.self.value.bias"),
                         o: try load(p + "attention.output.dense.weight"), ob: try load(p + "attention.output.dense.bias"),
                         norm1: try load(p + "attention.output.LayerNorm.weight"), norm1b: try load(p + "attention.output.LayerNorm.bias"),
                         up: try load(p + "intermediate.dense.weight"), upb: try load(p + "intermediate.dense.bias"),
                         down: try load(p + "output.dense.weight"), downb: try load(p + "output.dense.bias"),
                         norm2: try load(p + "output.LayerNorm.weight"), norm2b: try load(p + "output.LayerNorm.bias"))
        }
        guard words.columns == h, positions.rows >= maxLength else { throw ModelError(directory, "embedding shapes do not match config.json") }
    }

    /// Threads for `embed`: a batch's texts are split among them, each part with single-threaded
    /// OpenBLAS (as the trainer does: our own loops then never leave OpenBLAS threads spinning).
    public var threads: Int = (try? BLAS.shared().threads) ?? 1

    /// Sentence embeddings of `texts`, in order.
    public func embed(_ texts: [String]) throws -> [[Float]] {
        let parts = min(threads, texts.count)
        guard parts > 1 else { return try embedTogether(texts) }
        // Contiguous parts of about equal token counts.
        let lengths = texts.map { min($0.utf8.count, 4 * maxLength) + 16 }
        let total = lengths.reduce(0, +)
        var bounds = [0], running = 0
        for (i, l) in lengths.enumerated() {
            running += l
            if bounds.count < parts && running * parts >= total * bounds.count && i + 1 < texts.count { bounds.append(i + 1) }
        }
        bounds.append(texts.count)
        return try embedParts(texts, cuts: bounds)
    }

    /// Sentence embeddings of `texts` whose bits do not depend on `threads`: the texts go in
    /// fixed groups of `group`, each one batch on single-threaded OpenBLAS, the groups spread
    /// over the threads (what the `embed` stage uses: its artifact, keyed without the machine's
    /// cores, must hold the same bytes on every machine and after a resume on another `-j`).
    public func embedInGroups(_ texts: [String], group: Int = 32) throws -> [[Float]] {
        try embedParts(texts, cuts: Array(stride(from: 0, to: texts.count, by: max(1, group))) + [texts.count])
    }

    /// Each of `texts[cuts[i]..<cuts[i+1]]` embedded as one batch on single-threaded OpenBLAS,
    /// the batches spread over `threads`.
    func embedParts(_ texts: [String], cuts: [Int]) throws -> [[Float]] {
        guard cuts.count > 1 else { return [] }
        final class Results: @unchecked Sendable { let lock = Lock(); var parts: [[[Float]]] = [] }
        let results = Results()
        results.parts = Array(repeating: [], count: cuts.count - 1)
        let blas = try BLAS.shared(), saved = blas.threads
        blas.threads = 1
        defer { blas.threads = saved }
        try Parallel.forEach(cuts.count - 1, threads: min(threads, cuts.count - 1)) { p in
            let part = try self.embedTogether(Array(texts[cuts[p]..<cuts[p + 1]]))
            results.lock.withLock { results.parts[p] = part }
        }
        return results.parts.flatMap { $0 }
    }

    /// Sentence embeddings of `texts` computed by the torch engine's worker (on a GPU, say):
    /// tokenised here, the forward pass, pooling and normalisation there, as this directory's
    /// settings say. Within 1e-4 of scale of `embed`'s in float32 (`TorchEngineTests`).
    public func embed(_ texts: [String], on engine: TorchEngine, device: String) throws -> [[Float]] {
        guard !texts.isEmpty else { return [] }
        let ids = texts.map { tokenizer.encode($0, maxLength: maxLength) }
        let flat = try engine.embedSentences(directory: directory, ids: ids, pooling: pooling.rawValue, normalize: normalize, device: device)
        guard flat.count == texts.count * hiddenSize else {
            throw EngineError("embed_sentences: the worker gave \(flat.count) numbers for \(texts.count) texts of \(hiddenSize)")
        }
        return (0..<texts.count).map { Array(flat[($0 * hiddenSize)..<(($0 + 1) * hiddenSize)]) }
    }

    /// Sentence embeddings of `texts` in one batch (rows of every text stacked for the matrix
    /// products; attention within each text, so no padding is computed).
    func embedTogether(_ texts: [String]) throws -> [[Float]] {
        guard !texts.isEmpty else { return [] }
        let ids = texts.map { tokenizer.encode($0, maxLength: maxLength) }
        var starts: [Int] = [], total = 0
        for s in ids { starts.append(total); total += s.count }
        let h = hiddenSize, hd = h / heads
        var x = Tensor(zeros: [total, h])
        for (si, s) in ids.enumerated() {
            for (j, t) in s.enumerated() {
                let r = (starts[si] + j) * h
                for d in 0..<h { x.data[r + d] = words.data[t * h + d] + positions.data[j * h + d] + tokenTypes.data[d] }
            }
        }
        x = layerNorm(x, embeddingNorm, embeddingNormBias)
        let blas = try BLAS.shared()
        let scale = 1 / Float(hd).squareRoot()
        for w in layers {
            let q = try Kernels.linear(x, w.q, bias: w.qb), k = try Kernels.linear(x, w.k, bias: w.kb), v = try Kernels.linear(x, w.v, bias: w.vb)
            var context = Tensor(zeros: [total, h])
            for (si, s) in ids.enumerated() {
                let n = s.count, row0 = starts[si]
                var scores = [Float](repeating: 0, count: n * n)
                for head in 0..<heads {
                    q.data.withUnsafeBufferPointer { qp in
                        k.data.withUnsafeBufferPointer { kp in
                            scores.withUnsafeMutableBufferPointer { sp in
                                blas.gemm(transB: true, m: n, n: n, k: hd, alpha: scale, a: qp.baseAddress! + row0 * h + head * hd, lda: h,
                                          b: kp.baseAddress! + row0 * h + head * hd, ldb: h, c: sp.baseAddress!)
                                for j in 0..<n { Kernels.softmax(sp.baseAddress! + j * n, count: n) }
                            }
                        }
                    }
                    scores.withUnsafeBufferPointer { sp in
                        v.data.withUnsafeBufferPointer { vp in
                            context.data.withUnsafeMutableBufferPointer { cp in
                                blas.gemm(m: n, n: hd, k: n, a: sp.baseAddress!, b: vp.baseAddress! + row0 * h + head * hd, ldb: h,
                                          c: cp.baseAddress! + row0 * h + head * hd, ldc: h)
                            }
                        }
                    }
                }
            }
            var attended = try Kernels.linear(context, w.o, bias: w.ob)
            for i in 0..<attended.count { attended.data[i] += x.data[i] }
            x = layerNorm(attended, w.norm1, w.norm1b)
            var inner = try Kernels.linear(x, w.up, bias: w.upb)
            for i in 0..<inner.count { let a = inner.data[i]; inner.data[i] = 0.5 * a * (1 + erff(a * 0.70710678118654752)) }
            var out = try Kernels.linear(inner, w.down, bias: w.downb)
            for i in 0..<out.count { out.data[i] += x.data[i] }
            x = layerNorm(out, w.norm2, w.norm2b)
        }
        return ids.indices.map { si in
            let n = ids[si].count, row0 = starts[si]
            var e = [Float](repeating: pooling == .max ? -.infinity : 0, count: h)
            switch pooling {
            case .cls: for d in 0..<h { e[d] = x.data[row0 * h + d] }
            case .max: for j in 0..<n { for d in 0..<h { e[d] = max(e[d], x.data[(row0 + j) * h + d]) } }
            case .mean:
                for j in 0..<n { for d in 0..<h { e[d] += x.data[(row0 + j) * h + d] } }
                for d in 0..<h { e[d] /= Float(n) }
            }
            if normalize {
                let norm = max(e.reduce(0) { $0 + $1 * $1 }.squareRoot(), 1e-12)
                for d in 0..<h { e[d] /= norm }
            }
            return e
        }
    }

    /// LayerNorm per row: (x − mean) / sqrt(var + eps) · w + b.
    func layerNorm(_ x: Tensor, _ w: Tensor, _ b: Tensor) -> Tensor {
        let c = x.columns
        var y = x
        for r in 0..<x.rows {
            var mean: Float = 0
            for j in 0..<c { mean += x.data[r * c + j] }
            mean /= Float(c)
            var variance: Float = 0
            for j in 0..<c { let d = x.data[r * c + j] - mean; variance += d * d }
            let inv = 1 / (variance / Float(c) + eps).squareRoot()
            for j in 0..<c { y.data[r * c + j] = (x.data[r * c + j] - mean) * inv * w.data[j] + b.data[j] }
        }
        return y
    }
}

/// "a/b/c" → "c" (LLM imports no Pipeline).
enum Path {
    static func lastComponent(_ p: String) -> String {
        var s = Substring(p)
        while s.count > 1 && s.hasSuffix("/") { s = s.dropLast() }
        return s.split(separator: "/").last.map(String.init) ?? String(s)
    }
}
