import NN
#if canImport(Glibc)
import Glibc
#endif

/// What a taped forward pass keeps of one decoder layer for its backward pass.
struct LayerTape {
    var input: Tensor, norm1: Tensor
    var q: Tensor, k: Tensor, v: Tensor          // q and k after the rotary embedding
    var probabilities: [[Float]]                 // per head, n × n
    var attention: Tensor                        // heads concatenated, before o_proj
    var middle: Tensor, norm2: Tensor
    var gate: Tensor, up: Tensor, activation: Tensor
}

/// A forward pass of one whole sequence (no cache) that keeps what backward needs.
public struct DecoderTape {
    public let tokens: [Int]
    public let lora: LoRAUpdate?
    var layers: [LayerTape]
    var output: Tensor, finalNorm: Tensor
    /// Logits of every position, [n × vocab].
    public let logits: Tensor
}

/// Which gradients to compute: every weight (training) or only a LoRA update's A and B, in
/// which case backward stops below the lowest layer the update touches.
public enum GradientTarget: Sendable { case weights, lora }

extension DecoderModel {
    /// Runs `tokens` (positions 0 ..< n) through the decoder, keeping activations for `backward`.
    public func tapedForward(_ tokens: [Int], lora: LoRAUpdate? = nil) throws -> DecoderTape {
        let c = config, n = tokens.count, h = c.hiddenSize, hd = c.headDim, groups = c.heads / c.kvHeads
        let qWidth = c.heads * hd, kvWidth = c.kvHeads * hd
        let blas = try BLAS.shared()
        var x = Tensor(zeros: [n, h])
        for (j, t) in tokens.enumerated() {
            guard t >= 0 && t < c.vocabSize else { throw ModelError("forward", "token id \(t) is outside the vocabulary (\(c.vocabSize))") }
            for d in 0..<h { x.data[j * h + d] = embedding.data[t * h + d] }
        }
        var tapes: [LayerTape] = []
        for (li, w) in layers.enumerated() {
            let input = x
            let norm1 = Kernels.rmsNorm(x, weight: w.inputNorm, eps: c.rmsEps)
            var q = try Kernels.linear(norm1, w.q, bias: w.qBias)
            var k = try Kernels.linear(norm1, w.k, bias: w.kBias)
            let v = try Kernels.linear(norm1, w.v, bias: w.vBias)
            for j in 0..<n {
                rotate(&q.data, offset: j * qWidth, heads: c.heads, position: j)
                rotate(&k.data, offset: j * kvWidth, heads: c.kvHeads, position: j)
            }
            var attention = Tensor(zeros: [n, qWidth])
            var probabilities: [[Float]] = []
            let scale = 1 / Float(hd).squareRoot()
            for head in 0..<c.heads {
                let g = head / groups
                var p = [Float](repeating: 0, count: n * n)
                q.data.withUnsafeBufferPointer { qp in
                    k.data.withUnsafeBufferPointer { kp in
                        p.withUnsafeMutableBufferPointer { pp in
                            blas.gemm(transB: true, m: n, n: n, k: hd, alpha: scale, a: qp.baseAddress! + head * hd, lda: qWidth,
                                      b: kp.baseAddress! + g * hd, ldb: kvWidth, c: pp.baseAddress!)
                            for j in 0..<n {
                                let first = c.slidingWindows[li].map { max(0, j - $0 + 1) } ?? 0
                                Kernels.maskedSoftmax(pp.baseAddress! + j * n, count: n, visible: first...j)
                            }
                        }
                    }
                }
                p.withUnsafeBufferPointer { pp in
                    v.data.withUnsafeBufferPointer { vp in
                        attention.data.withUnsafeMutableBufferPointer { ap in
                            blas.gemm(m: n, n: hd, k: n, a: pp.baseAddress!, b: vp.baseAddress! + g * hd, ldb: kvWidth,
                                      c: ap.baseAddress! + head * hd, ldc: qWidth)
                        }
                    }
                }
                probabilities.append(p)
            }
            var out = try Kernels.linear(attention, w.o, bias: w.oBias)
            if let lora, lora.applies(toLayer: li, of: layers.count) { try addLoRA(lora, input: attention, output: &out, rows: 0..<n) }
            for i in 0..<x.count { x.data[i] += out.data[i] }
            let middle = x
            let norm2 = Kernels.rmsNorm(x, weight: w.postNorm, eps: c.rmsEps)
            let gate = try Kernels.linear(norm2, w.gate)
            let up = try Kernels.linear(norm2, w.up)
            var activation = gate
            for i in 0..<gate.count { activation.data[i] = Kernels.silu(gate.data[i]) * up.data[i] }
            let mlp = try Kernels.linear(activation, w.down)
            for i in 0..<x.count { x.data[i] += mlp.data[i] }
            tapes.append(LayerTape(input: input, norm1: norm1, q: q, k: k, v: v, probabilities: probabilities, attention: attention,
                                   middle: middle, norm2: norm2, gate: gate, up: up, activation: activation))
        }
        let finalNorm = Kernels.rmsNorm(x, weight: self.finalNorm, eps: c.rmsEps)
        return DecoderTape(tokens: tokens, lora: lora, layers: tapes, output: x, finalNorm: finalNorm,
                           logits: try Kernels.linear(finalNorm, lmHead))
    }

    /// Gradients of a scalar with respect to the weights (by their Hugging Face names) or to the
    /// tape's LoRA update (`lora.A`, `lora.B`), given its gradient with respect to the logits.
    public func backward(_ tape: DecoderTape, dLogits: Tensor, target: GradientTarget) throws -> [String: Tensor] {
        let c = config, n = tape.tokens.count, hd = c.headDim, groups = c.heads / c.kvHeads
        let qWidth = c.heads * hd, kvWidth = c.kvHeads * hd
        let weights = target == .weights
        var grads: [String: Tensor] = [:]
        func slot(_ t: Tensor) -> Tensor? { weights ? Tensor(zeros: t.shape) : nil }
        var none: Tensor? = nil
        var dHead = slot(lmHead), dFinal = slot(finalNorm)
        let dNormF = try Backward.linear(dLogits, x: tape.finalNorm, w: lmHead, dw: &dHead, db: &none)
        var dx = Backward.rmsNorm(dNormF, x: tape.output, weight: finalNorm, eps: c.rmsEps, dw: &dFinal)
        var dEmbedding = slot(embedding)
        if weights {
            grads["model.norm.weight"] = dFinal
            if c.tieEmbeddings { dEmbedding = dHead } else { grads["lm_head.weight"] = dHead }
        }
        let lowest = tape.lora.map { layers.count - $0.layers } ?? layers.count
        let blas = try BLAS.shared()
        for li in stride(from: layers.count - 1, through: 0, by: -1) {
            if !weights && li < lowest { break }  // nothing below the update depends on it
            let w = layers[li], t = tape.layers[li]
            let p = "model.layers.\(li)."
            // MLP: x += down(silu(gate) ⊙ up)
            var dDown = slot(w.down), dGate = slot(w.gate), dUp = slot(w.up), dPost = slot(w.postNorm)
            let dAct = try Backward.linear(dx, x: t.activation, w: w.down, dw: &dDown, db: &none)
            var dGatePre = dAct, dUpOut = dAct
            for i in 0..<dAct.count {  // one exponential per element: silu = g·σ(g), silu' = σ(g)(1 + g(1 − σ(g)))
                let g = t.gate.data[i], s = 1 / (1 + expf(-g))
                dGatePre.data[i] = dAct.data[i] * t.up.data[i] * s * (1 + g * (1 - s))
                dUpOut.data[i] = dAct.data[i] * g * s
            }
            var dNorm2 = try Backward.linear(dGatePre, x: t.norm2, w: w.gate, dw: &dGate, db: &none)
            let dNorm2Up = try Backward.linear(dUpOut, x: t.norm2, w: w.up, dw: &dUp, db: &none)
            for i in 0..<dNorm2.count { dNorm2.data[i] += dNorm2Up.data[i] }
            let dMid = Backward.rmsNorm(dNorm2, x: t.middle, weight: w.postNorm, eps: c.rmsEps, dw: &dPost)
            for i in 0..<dx.count { dx.data[i] += dMid.data[i] }
            // Attention output: x += o(attention) (+ alpha · attention Bᵀ Aᵀ)
            var dO = slot(w.o), dOBias = w.oBias.flatMap(slot)
            var dAttention = try Backward.linear(dx, x: t.attention, w: w.o, dw: &dO, db: &dOBias)
            if let lora = tape.lora, lora.applies(toLayer: li, of: layers.count) {
                let u = try Kernels.linear(t.attention, lora.b)                      // [n × r]
                var dA: Tensor? = grads["lora.A"] ?? Tensor(zeros: lora.a.shape)
                var dB: Tensor? = grads["lora.B"] ?? Tensor(zeros: lora.b.shape)
                var scaled = dx
                for i in 0..<scaled.count { scaled.data[i] *= lora.alpha }
                let dU = try Backward.linear(scaled, x: u, w: lora.a, dw: &dA, db: &none)   // dA += α dYᵀ U
                let dFromLoRA = try Backward.linear(dU, x: t.attention, w: lora.b, dw: &dB, db: &none)
                for i in 0..<dAttention.count { dAttention.data[i] += dFromLoRA.data[i] }
                grads["lora.A"] = dA; grads["lora.B"] = dB
                if !weights && li == lowest { break }
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
            var dWq = slot(w.q), dWk = slot(w.k), dWv = slot(w.v), dIn = slot(w.inputNorm)
            var dBq = w.qBias.flatMap(slot), dBk = w.kBias.flatMap(slot), dBv = w.vBias.flatMap(slot)
            var dNorm1 = try Backward.linear(dQ, x: t.norm1, w: w.q, dw: &dWq, db: &dBq)
            let fromK = try Backward.linear(dK, x: t.norm1, w: w.k, dw: &dWk, db: &dBk)
            let fromV = try Backward.linear(dV, x: t.norm1, w: w.v, dw: &dWv, db: &dBv)
            for i in 0..<dNorm1.count { dNorm1.data[i] += fromK.data[i] + fromV.data[i] }
            let dInput = Backward.rmsNorm(dNorm1, x: t.input, weight: w.inputNorm, eps: c.rmsEps, dw: &dIn)
            for i in 0..<dx.count { dx.data[i] += dInput.data[i] }
            if weights {
                let named: [(String, Tensor?)] = [
                    ("mlp.down_proj.weight", dDown), ("mlp.gate_proj.weight", dGate), ("mlp.up_proj.weight", dUp),
                    ("post_attention_layernorm.weight", dPost), ("self_attn.o_proj.weight", dO), ("self_attn.o_proj.bias", dOBias),
                    ("self_attn.q_proj.weight", dWq), ("self_attn.k_proj.weight", dWk), ("self_attn.v_proj.weight", dWv),
                    ("self_attn.q_proj.bias", dBq), ("self_attn.k_proj.bias", dBk), ("self_attn.v_proj.bias", dBv),
                    ("input_layernorm.weight", dIn)]
                for (name, g) in named { if let g { grads[p + name] = g } }
            }
        }
        if weights, var dE = dEmbedding {
            let h = c.hiddenSize
            for (j, tok) in tape.tokens.enumerated() { for d in 0..<h { dE.data[tok * h + d] += dx.data[j * h + d] } }
            grads["model.embed_tokens.weight"] = dE
        }
        return grads
    }

    /// The mean next-token cross-entropy of a sequence (transformers' causal LM loss) and its
    /// gradient with respect to the logits. `targetsFrom`: only tokens at this index and after
    /// are predicted (a prompt's tokens are context, not targets); 1 means every token.
    public static func nextTokenLoss(logits: Tensor, tokens: [Int], targetsFrom: Int = 1) -> (loss: Float, dLogits: Tensor) {
        let v = logits.columns, n = tokens.count
        var d = Tensor(zeros: logits.shape)
        let first = max(1, targetsFrom)
        guard n > first else { return (0, d) }
        var loss: Float = 0
        let scale = 1 / Float(n - first)
        logits.data.withUnsafeBufferPointer { lp in
            d.data.withUnsafeMutableBufferPointer { dp in
                for j in (first - 1)..<(n - 1) {
                    // One pass of exponentials: d = softmax(row) / (n − 1), minus 1/(n − 1) at the target.
                    let row = lp.baseAddress! + j * v, out = dp.baseAddress! + j * v
                    var m = -Float.infinity
                    for i in 0..<v { m = max(m, row[i]) }
                    var sum: Float = 0
                    for i in 0..<v { let e = expf(row[i] - m); out[i] = e; sum += e }
                    loss -= row[tokens[j + 1]] - (m + logf(sum))
                    let k = scale / sum
                    for i in 0..<v { out[i] *= k }
                    out[tokens[j + 1]] -= scale
                }
            }
        }
        return (loss * scale, d)
    }

    /// Σ over `positions` of log p(token) under softmax(logits / T) restricted to the top-p
    /// nucleus and renormalised (REFERENCE.md §6), with its gradient with respect to the logits:
    /// ∂/∂z_i = ([i = token] − [i ∈ nucleus] p_i / mass) / T.
    public static func sampledLogProbability(logits: Tensor, positions: [(row: Int, token: Int)], temperature: Float,
                                             topP: Float) -> (value: Float, dLogits: Tensor) {
        let v = logits.columns
        var d = Tensor(zeros: logits.shape)
        var total: Float = 0
        for (row, token) in positions {
            var probs = (0..<v).map { logits.data[row * v + $0] / temperature }
            probs.withUnsafeMutableBufferPointer { Kernels.softmax($0.baseAddress!, count: v) }
            let (kept, mass) = TokenSampler.nucleus(probs, topP: topP)
            total += logf(probs[token] / mass)
            for i in kept { d.data[row * v + i] -= probs[i] / mass / temperature }
            d.data[row * v + token] += 1 / temperature
        }
        return (total, d)
    }
}
