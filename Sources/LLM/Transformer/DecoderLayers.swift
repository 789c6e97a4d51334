import NN
#if canImport(Glibc)
import Glibc
#endif

// The decoder's blocks as forward/backward pairs, in the manner of llm.c: each forward takes
// the residual stream and, when asked, fills a tape with what its backward needs; each backward
// takes the gradient of the block's output and the tape, adds the weights' gradients, and
// returns the gradient of its input. One forward serves generation (many segments, KV caches)
// and training (one sequence, taped). Shapes: rows = the batch's new tokens, h = hidden size,
// qw = heads·headDim, kw = kvHeads·headDim, i = intermediate size.

/// What the attention block keeps for its backward pass (one sequence of n tokens from
/// position 0).
struct AttentionTape {
    var input: Tensor                 // [n, h] the residual stream entering the layer
    var norm1: Tensor                 // [n, h]
    var q: Tensor, k: Tensor, v: Tensor  // [n, qw], [n, kw], [n, kw]; q and k rotated
    var probabilities: [[Float]]      // per head, [n, n]
    var attention: Tensor             // [n, qw] heads concatenated, before o_proj
}

/// What the MLP block keeps for its backward pass.
struct MLPTape {
    var middle: Tensor, norm2: Tensor  // [n, h] the residual stream after attention, and its norm
    var gate: Tensor, up: Tensor, activation: Tensor  // [n, i]
    var sigmoid: Tensor               // [n, i] σ(gate), kept so that backward spends no exponential
}

/// What a taped forward pass keeps of one decoder layer.
struct LayerTape {
    var attention: AttentionTape
    var mlp: MLPTape
}

/// Gradient slots of one backward pass: a weight's gradient is accumulated only when weights
/// are the target (`slot` gives nil otherwise, and the kernels then skip that product).
struct GradientSlots {
    let weights: Bool
    /// Where linear layers' weight gradients are left as factors instead of formed (training).
    var deferred: LinearWeightFactors? = nil
    /// A zeroed gradient for `t`, to accumulate into.
    func slot(_ t: Tensor) -> Tensor? { weights ? Tensor(zeros: t.shape) : nil }

    /// The backward of Y = X·Wᵀ (+ b) for the weight `name`: returns dX; W's gradient dYᵀ·X goes
    /// into `grads[name]` (one product writes it whole), or its factors into `deferred`, or,
    /// when weights are not the target, nowhere.
    func linear(_ name: String, _ dy: Tensor, x: Tensor, w: Tensor, db: inout Tensor?, grads: inout [String: Tensor]) throws -> Tensor {
        var dw: Tensor? = weights && deferred == nil ? Tensor(uninitialized: w.shape) : nil
        let dx = try Backward.linear(dy, x: x, w: w, dw: &dw, db: &db, accumulate: false)
        if let dw { grads[name] = dw } else if weights, let deferred { deferred.products[name] = (dy, x) }
        return dx
    }
}

/// Linear layers' weight gradients of one sequence's backward, kept as their factors (dY, X)
/// by weight name: a trainer summing a batch forms Σᵢ dYᵢᵀ·Xᵢ with one product per sequence
/// accumulating into one tensor (`LinearWeightFactors.accumulate`), where a gradient set per
/// sequence would be allocated, zeroed by OpenBLAS, written and then added.
public final class LinearWeightFactors: @unchecked Sendable {  // one sequence's backward writes it, alone
    var products: [String: (dy: Tensor, x: Tensor)] = [:]
    public init() {}
    public var names: [String] { Array(products.keys) }

    /// Sequences up to this many tokens are formed straight into the sum. OpenBLAS computes a
    /// product's inner dimension in blocks (320 with its Haswell kernels) and adds each block's
    /// partial sums into C, so for a longer sequence "C + its product" would not be the bits of
    /// "C + (its product formed alone)": such a sequence's gradient is formed alone, then added.
    static let formedLengthLimit = 256

    /// total += dYᵀ·X for each sequence's factors of `name`, in the order given (`total` nil:
    /// the first product writes it): bit for bit the sum of the gradients formed one by one
    /// and added in that order.
    public static func accumulate(_ name: String, of sequences: [LinearWeightFactors], into total: inout Tensor?) throws {
        let blas = try BLAS.shared()
        func product(_ dy: Tensor, _ x: Tensor, beta: Float, into c: inout Tensor) {
            dy.data.withUnsafeBufferPointer { dyp in
                x.data.withUnsafeBufferPointer { xp in
                    c.data.withUnsafeMutableBufferPointer { cp in
                        blas.gemm(transA: true, m: dy.columns, n: x.columns, k: dy.rows, a: dyp.baseAddress!, b: xp.baseAddress!,
                                  beta: beta, c: cp.baseAddress!)
                    }
                }
            }
        }
        for factors in sequences {
            guard let (dy, x) = factors.products[name] else { continue }
            if dy.rows <= formedLengthLimit, var sum = total.take() {
                product(dy, x, beta: 1, into: &sum)
                total = sum
            } else {
                var alone = Tensor(uninitialized: [dy.columns, x.columns])
                product(dy, x, beta: 0, into: &alone)
                if total != nil { Kernels.add(&total!, alone) } else { total = alone }
            }
        }
    }
}

extension DecoderModel {
    // MARK: Embedding

    /// tokens of every segment → x [rows, h]; `starts[s]` is segment s's first row.
    func embeddingForward(_ segments: [Segment]) throws -> (x: Tensor, starts: [Int]) {
        let c = config, h = c.hiddenSize
        var starts: [Int] = [], total = 0
        for s in segments {
            for t in s.tokens where t < 0 || t >= c.vocabSize { throw ModelError("forward", "token id \(t) is outside the vocabulary (\(c.vocabSize))") }
            starts.append(total); total += s.tokens.count
        }
        var x = Tensor(zeros: [total, h])
        for (si, s) in segments.enumerated() {
            for (j, t) in s.tokens.enumerated() {
                for d in 0..<h { x.data[(starts[si] + j) * h + d] = embedding.data[t * h + d] }
            }
        }
        return (x, starts)
    }

    /// dE[token] += dx[row] for every row (tokens of one sequence).
    func embeddingBackward(_ dx: Tensor, tokens: [Int], dEmbedding: inout Tensor) {
        let h = config.hiddenSize
        for (j, tok) in tokens.enumerated() { for d in 0..<h { dEmbedding.data[tok * h + d] += dx.data[j * h + d] } }
    }

    // MARK: Attention

    /// x [rows, h] → the attention block's output [rows, h] (before the residual add): RMSNorm,
    /// q/k/v projections, rotary embedding, each segment's keys and values appended to its cache,
    /// causal (and sliding-window) softmax attention per head over the cache, o_proj, and each
    /// segment's LoRA update on o_proj. With `keepTape` (one segment from position 0), also
    /// what the backward needs.
    func attentionForward(_ li: Int, _ x: Tensor, _ segments: [Segment], starts: [Int], keepTape: Bool) throws -> (out: Tensor, tape: AttentionTape?) {
        let c = config, w = layers[li], total = x.rows
        let hd = c.headDim, groups = c.heads / c.kvHeads, qWidth = c.heads * hd, kvWidth = c.kvHeads * hd
        let keep = keepTape
        precondition(!keep || (segments.count == 1 && segments[0].cache.length == 0), "a taped forward runs one sequence from position 0")
        let blas = try BLAS.shared()
        let normed = Kernels.rmsNorm(x, weight: w.inputNorm, eps: c.rmsEps)
        var q = try Kernels.linear(normed, w.q, bias: w.qBias)
        var k = try Kernels.linear(normed, w.k, bias: w.kBias)
        let v = try Kernels.linear(normed, w.v, bias: w.vBias)
        var attention = Tensor(uninitialized: [total, qWidth])  // every head writes its columns of every row (beta 0)
        var probabilities: [[Float]] = []
        let scale = 1 / Float(hd).squareRoot()
        for (si, s) in segments.enumerated() {
            let n = s.tokens.count, past = s.cache.length, row0 = starts[si]
            for j in 0..<n {
                rotate(&q.data, offset: (row0 + j) * qWidth, heads: c.heads, position: past + j)
                rotate(&k.data, offset: (row0 + j) * kvWidth, heads: c.kvHeads, position: past + j)
            }
            s.cache.keys[li] += k.data[(row0 * kvWidth)..<((row0 + n) * kvWidth)]
            s.cache.values[li] += v.data[(row0 * kvWidth)..<((row0 + n) * kvWidth)]
            let length = past + n, window = c.slidingWindows[li]
            var scores = [Float](repeating: 0, count: n * length)
            for head in 0..<c.heads {
                let g = head / groups
                q.data.withUnsafeBufferPointer { qp in
                    s.cache.keys[li].withUnsafeBufferPointer { kp in
                        scores.withUnsafeMutableBufferPointer { sp in
                            // scores [n, length] = scale · Q_head [n, hd] · K_gᵀ [hd, length], then masked softmax
                            blas.gemm(transB: true, m: n, n: length, k: hd, alpha: scale,
                                      a: qp.baseAddress! + row0 * qWidth + head * hd, lda: qWidth,
                                      b: kp.baseAddress! + g * hd, ldb: kvWidth, c: sp.baseAddress!)
                            for j in 0..<n {
                                let position = past + j
                                let first = window.map { max(0, position - $0 + 1) } ?? 0
                                Kernels.maskedSoftmax(sp.baseAddress! + j * length, count: length, visible: first...position)
                            }
                        }
                    }
                }
                scores.withUnsafeBufferPointer { sp in
                    s.cache.values[li].withUnsafeBufferPointer { vp in
                        attention.data.withUnsafeMutableBufferPointer { ap in
                            // O_head [n, hd] = P [n, length] · V_g [length, hd]
                            blas.gemm(m: n, n: hd, k: length, a: sp.baseAddress!, b: vp.baseAddress! + g * hd, ldb: kvWidth,
                                      c: ap.baseAddress! + row0 * qWidth + head * hd, ldc: qWidth)
                        }
                    }
                }
                if keep { probabilities.append(scores) }
            }
        }
        if li == layers.count - 1 {
            for (si, s) in segments.enumerated() where !s.tokens.isEmpty {
                s.capture?.append(input: x, attention: attention, row: starts[si] + s.tokens.count - 1)
            }
        }
        var out = try Kernels.linear(attention, w.o, bias: w.oBias)
        for (si, s) in segments.enumerated() {
            guard let lora = s.lora, lora.applies(toLayer: li, of: layers.count) else { continue }
            try addLoRA(lora, input: attention, output: &out, rows: starts[si]..<(starts[si] + s.tokens.count))
        }
        return (out, keep ? AttentionTape(input: x, norm1: normed, q: q, k: k, v: v, probabilities: probabilities, attention: attention) : nil)
    }

    /// dOut [n, h] (the gradient of the block's output) → the gradient of its input x, adding
    /// the weights' gradients (and the LoRA update's, `lora.A`/`lora.B`) to `grads`.
    /// `stopAtLoRA`: only the update's gradients are wanted, and this is its lowest layer, so
    /// nothing below o_proj is computed (returns nil).
    func attentionBackward(_ li: Int, _ t: AttentionTape, dOut: Tensor, lora: LoRAUpdate?, slots: GradientSlots, stopAtLoRA: Bool,
                           grads: inout [String: Tensor]) throws -> Tensor? {
        let c = config, w = layers[li], n = t.input.rows, p = "model.layers.\(li)."
        let hd = c.headDim, groups = c.heads / c.kvHeads, qWidth = c.heads * hd, kvWidth = c.kvHeads * hd
        let blas = try BLAS.shared()
        // o_proj (+ alpha · attention Bᵀ Aᵀ)
        var dOBias = w.oBias.flatMap(slots.slot)
        var dAttention = try slots.linear(p + "self_attn.o_proj.weight", dOut, x: t.attention, w: w.o, db: &dOBias, grads: &grads)
        if let lora, lora.applies(toLayer: li, of: layers.count) {
            Kernels.add(&dAttention, try loraBackward(lora, attention: t.attention, dOut: dOut, grads: &grads))
            if stopAtLoRA { return nil }
        }
        // Per head: S = scale · Q Kᵀ (masked), P = softmax(S), O = P V.
        var dQ = Tensor(zeros: t.q.shape), dK = Tensor(zeros: t.k.shape), dV = Tensor(zeros: t.v.shape)
        let scale = 1 / Float(hd).squareRoot()
        var dP = [Float](repeating: 0, count: n * n), dS = [Float](repeating: 0, count: n * n)
        for head in 0..<c.heads {
            let g = head / groups
            let probs = t.probabilities[head]
            dAttention.data.withUnsafeBufferPointer { dap in
                t.v.data.withUnsafeBufferPointer { vp in
                    dP.withUnsafeMutableBufferPointer { dpp in
                        // dP = dO_h · V_gᵀ
                        blas.gemm(transB: true, m: n, n: n, k: hd, a: dap.baseAddress! + head * hd, lda: qWidth,
                                  b: vp.baseAddress! + g * hd, ldb: kvWidth, c: dpp.baseAddress!)
                    }
                }
                probs.withUnsafeBufferPointer { pp in
                    dV.data.withUnsafeMutableBufferPointer { dvp in
                        // dV_g += Pᵀ · dO_h
                        blas.gemm(transA: true, m: n, n: hd, k: n, a: pp.baseAddress!, b: dap.baseAddress! + head * hd, ldb: qWidth,
                                  beta: 1, c: dvp.baseAddress! + g * hd, ldc: kvWidth)
                    }
                }
            }
            dP.withUnsafeBufferPointer { dpp in
                probs.withUnsafeBufferPointer { pp in
                    dS.withUnsafeMutableBufferPointer { dsp in
                        for j in 0..<n { Backward.softmax(dpp.baseAddress! + j * n, p: pp.baseAddress! + j * n, ds: dsp.baseAddress! + j * n, count: n) }
                    }
                }
            }
            dS.withUnsafeBufferPointer { dsp in
                t.k.data.withUnsafeBufferPointer { kp in
                    dQ.data.withUnsafeMutableBufferPointer { dqp in
                        blas.gemm(m: n, n: hd, k: n, alpha: scale, a: dsp.baseAddress!, b: kp.baseAddress! + g * hd, ldb: kvWidth,
                                  beta: 1, c: dqp.baseAddress! + head * hd, ldc: qWidth)
                    }
                }
                t.q.data.withUnsafeBufferPointer { qp in
                    dK.data.withUnsafeMutableBufferPointer { dkp in
                        blas.gemm(transA: true, m: n, n: hd, k: n, alpha: scale, a: dsp.baseAddress!, b: qp.baseAddress! + head * hd,
                                  ldb: qWidth, beta: 1, c: dkp.baseAddress! + g * hd, ldc: kvWidth)
                    }
                }
            }
        }
        for j in 0..<n {  // the rotary embedding is a rotation: its backward rotates back
            rotate(&dQ.data, offset: j * qWidth, heads: c.heads, position: j, inverse: true)
            rotate(&dK.data, offset: j * kvWidth, heads: c.kvHeads, position: j, inverse: true)
        }
        var dIn = slots.slot(w.inputNorm)
        var dBq = w.qBias.flatMap(slots.slot), dBk = w.kBias.flatMap(slots.slot), dBv = w.vBias.flatMap(slots.slot)
        var dNorm1 = try slots.linear(p + "self_attn.q_proj.weight", dQ, x: t.norm1, w: w.q, db: &dBq, grads: &grads)
        let fromK = try slots.linear(p + "self_attn.k_proj.weight", dK, x: t.norm1, w: w.k, db: &dBk, grads: &grads)
        let fromV = try slots.linear(p + "self_attn.v_proj.weight", dV, x: t.norm1, w: w.v, db: &dBv, grads: &grads)
        dNorm1.data.withUnsafeMutableBufferPointer { np in  // (k + v) first, as before: the same sums bit for bit
            fromK.data.withUnsafeBufferPointer { kp in fromV.data.withUnsafeBufferPointer { vp in for i in 0..<np.count { np[i] += kp[i] + vp[i] } } }
        }
        let dInput = Backward.rmsNorm(dNorm1, x: t.input, weight: w.inputNorm, eps: c.rmsEps, dw: &dIn)
        let named: [(String, Tensor?)] = [
            ("self_attn.o_proj.bias", dOBias), ("self_attn.q_proj.bias", dBq), ("self_attn.k_proj.bias", dBk), ("self_attn.v_proj.bias", dBv),
            ("input_layernorm.weight", dIn)]
        for (name, g) in named { if let g { grads[p + name] = g } }
        return dInput
    }

    /// The update's part of o_proj's backward: adds to `lora.A` and `lora.B` in `grads` and
    /// returns its share of the gradient of the attention output (before o_proj).
    func loraBackward(_ lora: LoRAUpdate, attention: Tensor, dOut: Tensor, grads: inout [String: Tensor]) throws -> Tensor {
        var none: Tensor? = nil
        let u = try Kernels.linear(attention, lora.b)                      // [n, r]
        var dA: Tensor? = grads["lora.A"] ?? Tensor(zeros: lora.a.shape)
        var dB: Tensor? = grads["lora.B"] ?? Tensor(zeros: lora.b.shape)
        var scaled = dOut
        for i in 0..<scaled.count { scaled.data[i] *= lora.alpha }
        let dU = try Backward.linear(scaled, x: u, w: lora.a, dw: &dA, db: &none)   // dA += α dYᵀ U
        let dFromLoRA = try Backward.linear(dU, x: attention, w: lora.b, dw: &dB, db: &none)
        grads["lora.A"] = dA; grads["lora.B"] = dB
        return dFromLoRA
    }

    // MARK: MLP

    /// x [rows, h] → the MLP block's output [rows, h] (before the residual add):
    /// down(silu(gate(norm(x))) ⊙ up(norm(x))).
    func mlpForward(_ li: Int, _ x: Tensor, keepTape: Bool) throws -> (out: Tensor, tape: MLPTape?) {
        let c = config, w = layers[li]
        let normed = Kernels.rmsNorm(x, weight: w.postNorm, eps: c.rmsEps)
        let gate = try Kernels.linear(normed, w.gate)
        let up = try Kernels.linear(normed, w.up)
        let (activation, sigmoid) = Kernels.swiGLU(gate: gate, up: up, keepSigmoid: keepTape)
        let tape = sigmoid.map { MLPTape(middle: x, norm2: normed, gate: gate, up: up, activation: activation, sigmoid: $0) }
        return (try Kernels.linear(activation, w.down), tape)
    }

    /// dOut [n, h] → the gradient of the MLP block's input, adding the weights' gradients.
    func mlpBackward(_ li: Int, _ t: MLPTape, dOut: Tensor, slots: GradientSlots, grads: inout [String: Tensor]) throws -> Tensor {
        let c = config, w = layers[li], p = "model.layers.\(li)."
        var none: Tensor? = nil
        var dPost = slots.slot(w.postNorm)
        let dAct = try slots.linear(p + "mlp.down_proj.weight", dOut, x: t.activation, w: w.down, db: &none, grads: &grads)
        let (dGatePre, dUpOut) = Backward.swiGLU(dAct, gate: t.gate, up: t.up, sigmoid: t.sigmoid)
        var dNorm2 = try slots.linear(p + "mlp.gate_proj.weight", dGatePre, x: t.norm2, w: w.gate, db: &none, grads: &grads)
        Kernels.add(&dNorm2, try slots.linear(p + "mlp.up_proj.weight", dUpOut, x: t.norm2, w: w.up, db: &none, grads: &grads))
        let dMiddle = Backward.rmsNorm(dNorm2, x: t.middle, weight: w.postNorm, eps: c.rmsEps, dw: &dPost)
        if let dPost { grads[p + "post_attention_layernorm.weight"] = dPost }
        return dMiddle
    }

    // MARK: The whole stack

    /// Runs the new tokens of `segments` through every layer (appending to their caches) and
    /// returns the residual stream after the last layer, [rows, h]. `tapes`, when not nil,
    /// receives every layer's tape (one segment from position 0).
    func layersForward(_ segments: [Segment], tapes: inout [LayerTape]?) throws -> (x: Tensor, starts: [Int]) {
        var (x, starts) = try embeddingForward(segments)
        for li in layers.indices {
            let attention = try attentionForward(li, x, segments, starts: starts, keepTape: tapes != nil)
            Kernels.add(&x, attention.out)
            let mlp = try mlpForward(li, x, keepTape: tapes != nil)
            Kernels.add(&x, mlp.out)
            if let a = attention.tape, let m = mlp.tape { tapes?.append(LayerTape(attention: a, mlp: m)) }
        }
        for s in segments { s.cache.advance(by: s.tokens.count) }
        return (x, starts)
    }
}
