import NN
#if canImport(Glibc)
import Glibc
#endif

/// A forward pass of one whole sequence (no cache) that keeps what backward needs.
public struct DecoderTape {
    public let tokens: [Int]
    public let lora: LoRAUpdate?
    var layers: [LayerTape]
    /// The residual stream after the last layer and its final norm, [n, h].
    var output: Tensor, finalNorm: Tensor
    /// Logits of every position, [n, vocab].
    public let logits: Tensor
    /// The last hidden states (after the final norm), [n, h].
    public var hiddenStates: Tensor { finalNorm }
}

/// Which gradients to compute: every weight (training) or only a LoRA update's A and B, in
/// which case backward stops below the lowest layer the update touches.
public enum GradientTarget: Sendable { case weights, lora }

extension DecoderModel {
    /// Runs `tokens` (positions 0 ..< n) through the decoder, keeping activations for `backward`:
    /// the same forward as generation (`layersForward`), on a fresh cache, with tapes.
    public func tapedForward(_ tokens: [Int], lora: LoRAUpdate? = nil) throws -> DecoderTape {
        var tapes: [LayerTape]? = []
        let (x, _) = try layersForward([Segment(tokens: tokens, cache: KVCache(layers: layers.count), lora: lora)], tapes: &tapes)
        let finalNorm = Kernels.rmsNorm(x, weight: self.finalNorm, eps: config.rmsEps)
        return DecoderTape(tokens: tokens, lora: lora, layers: tapes ?? [], output: x, finalNorm: finalNorm,
                           logits: try Kernels.linear(finalNorm, lmHead))
    }

    /// Gradients of a scalar with respect to the weights (by their Hugging Face names) or to the
    /// tape's LoRA update (`lora.A`, `lora.B`), given its gradient with respect to the logits:
    /// the head's backward, then each layer's blocks in reverse (`mlpBackward`,
    /// `attentionBackward`), then the embedding's. With `deferring`, the linear layers' weight
    /// gradients are left there as factors (`LinearWeightFactors`) and not in the result.
    public func backward(_ tape: DecoderTape, dLogits: Tensor, target: GradientTarget,
                         deferring: LinearWeightFactors? = nil) throws -> [String: Tensor] {
        var slots = GradientSlots(weights: target == .weights)
        var grads: [String: Tensor] = [:]
        var none: Tensor? = nil
        var dEmbedding: Tensor? = nil
        let dNormF: Tensor
        if config.tieEmbeddings && slots.weights {  // the embedding's gradient starts as the head's, formed here
            var dHead: Tensor? = Tensor(uninitialized: lmHead.shape)
            dNormF = try Backward.linear(dLogits, x: tape.finalNorm, w: lmHead, dw: &dHead, db: &none, accumulate: false)
            dEmbedding = dHead
        } else {
            slots.deferred = deferring
            dNormF = try slots.linear("lm_head.weight", dLogits, x: tape.finalNorm, w: lmHead, db: &none, grads: &grads)
            dEmbedding = slots.slot(embedding)
        }
        slots.deferred = deferring
        try backwardBelowTheHead(tape, dHiddenStates: dNormF, slots: slots, dEmbedding: dEmbedding, grads: &grads)
        return grads
    }

    /// Gradients of every weight but the head's, given a scalar's gradient with respect to the
    /// last hidden states (after the final norm, `DecoderTape.hiddenStates`): what a model
    /// read for its hidden states (the router's pooled state, read by the parameter generators)
    /// gets back.
    public func backward(_ tape: DecoderTape, dHiddenStates: Tensor) throws -> [String: Tensor] {
        let slots = GradientSlots(weights: true)
        var grads: [String: Tensor] = [:]
        try backwardBelowTheHead(tape, dHiddenStates: dHiddenStates, slots: slots, dEmbedding: slots.slot(embedding), grads: &grads)
        return grads
    }

    /// The final norm's backward, each layer's blocks in reverse, then the embedding's.
    private func backwardBelowTheHead(_ tape: DecoderTape, dHiddenStates: Tensor, slots: GradientSlots, dEmbedding: Tensor?,
                                      grads: inout [String: Tensor]) throws {
        var dFinal = slots.slot(finalNorm), dEmbedding = dEmbedding
        var dx = Backward.rmsNorm(dHiddenStates, x: tape.output, weight: finalNorm, eps: config.rmsEps, dw: &dFinal)
        if slots.weights { grads["model.norm.weight"] = dFinal }
        let lowest = tape.lora.map { layers.count - $0.layers } ?? layers.count
        for li in stride(from: layers.count - 1, through: 0, by: -1) {
            if !slots.weights && li < lowest { break }  // nothing below the update depends on it
            let t = tape.layers[li]
            Kernels.add(&dx, try mlpBackward(li, t.mlp, dOut: dx, slots: slots, grads: &grads))
            guard let dInput = try attentionBackward(li, t.attention, dOut: dx, lora: tape.lora, slots: slots,
                                                     stopAtLoRA: !slots.weights && li == lowest, grads: &grads) else { break }
            Kernels.add(&dx, dInput)
        }
        if slots.weights, var dE = dEmbedding {
            dEmbedding = nil  // when tied, the head's gradient: held once, added to in place
            embeddingBackward(dx, tokens: tape.tokens, dEmbedding: &dE)
            grads["model.embed_tokens.weight"] = dE
        }
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
    /// nucleus and renormalised (the reference's rl_batch.py; docs/routing.md), with its gradient with respect to the logits:
    /// ∂/∂z_i = ([i = token] − [i ∈ nucleus] p_i / mass) / T.
    public static func sampledLogProbability(logits: Tensor, positions: [(row: Int, token: Int)], temperature: Float,
                                             topP: Float, rule: NucleusRule = .standard) -> (value: Float, dLogits: Tensor) {
        let v = logits.columns
        var d = Tensor(zeros: logits.shape)
        var total: Float = 0
        for (row, token) in positions {
            var probs = (0..<v).map { logits.data[row * v + $0] / temperature }
            probs.withUnsafeMutableBufferPointer { Kernels.softmax($0.baseAddress!, count: v) }
            let (kept, mass) = TokenSampler.nucleus(probs, topP: topP, rule: rule)
            total += logf(probs[token] / mass)
            for i in kept { d.data[row * v + i] -= probs[i] / mass / temperature }
            d.data[row * v + token] += 1 / temperature
        }
        return (total, d)
    }
}
