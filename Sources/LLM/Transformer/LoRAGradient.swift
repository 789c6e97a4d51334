import NN

/// The rows of the last layer a reply's log q depends on, recorded while it is generated: the
/// residual stream entering the layer and the attention output before o_proj, one row a
/// sampled token (the row whose logits drew it). With the update on the last layer only,
/// everything above o_proj is position-wise, so these rows are all the gradient with respect
/// to A and B needs: no second pass over the prompt and the lower layers.
final class LoRACapture {
    private(set) var inputs: [Float] = [], attention: [Float] = []
    private(set) var rows = 0

    func append(input x: Tensor, attention a: Tensor, row r: Int) {
        inputs += x.data[(r * x.columns)..<((r + 1) * x.columns)]
        attention += a.data[(r * a.columns)..<((r + 1) * a.columns)]
        rows += 1
    }
}

/// A reply generated under a LoRA update with what joint RL needs of it: Σ log q over its
/// tokens (EOS included) under the distribution they were drawn from, and the gradient of that
/// sum with respect to the update's A and B.
public struct LoRAGradient: Sendable {
    public var result: GenerationResult
    public var logprob: Float
    public var gradientA: Tensor
    public var gradientB: Tensor
}

extension DecoderModel {
    /// Generates `request` (which carries the update) and differentiates its log q: in the same
    /// pass when the update patches the last layer only (`LoRACapture`), else with a taped
    /// pass over prompt + reply. Greedy requests get the plain log-softmax's sum.
    public func generateWithLoRAGradient(_ request: GenerationRequest) throws -> LoRAGradient {
        guard let lora = request.lora else { throw ModelError("generate", "a LoRA gradient needs a request with an update") }
        let greedy = request.temperature <= 0
        let temperature = greedy ? 1 : request.temperature, topP = greedy ? 1 : request.topP
        let capture = lora.layers == 1 && !layers.isEmpty ? LoRACapture() : nil
        let result = try generate([request], captures: [capture])[0]
        var grads: [String: Tensor] = [:]
        let logprob: Float
        if let capture {
            logprob = try tailGradient(capture, tokens: result.ids, lora: lora, temperature: temperature, topP: topP, rule: request.nucleusRule,
                                       grads: &grads)
        } else {
            let tape = try tapedForward(request.prompt + result.ids, lora: lora)
            let positions = result.ids.indices.map { (row: request.prompt.count + $0 - 1, token: result.ids[$0]) }
            let (value, dLogits) = DecoderModel.sampledLogProbability(logits: tape.logits, positions: positions, temperature: temperature,
                                                                       topP: topP, rule: request.nucleusRule)
            grads = try backward(tape, dLogits: dLogits, target: .lora)
            logprob = value
        }
        return LoRAGradient(result: result, logprob: logprob, gradientA: grads["lora.A"] ?? Tensor(zeros: lora.a.shape),
                            gradientB: grads["lora.B"] ?? Tensor(zeros: lora.b.shape))
    }

    /// From the captured rows: the last layer's o_proj (with the update), its MLP block, the
    /// final norm and the head, forward (taped) and back to A and B.
    private func tailGradient(_ capture: LoRACapture, tokens: [Int], lora: LoRAUpdate, temperature: Float, topP: Float, rule: NucleusRule,
                              grads: inout [String: Tensor]) throws -> Float {
        let m = capture.rows, last = layers.count - 1, w = layers[last]
        guard m > 0, m == tokens.count else { return 0 }
        let attention = Tensor(shape: [m, capture.attention.count / m], data: capture.attention)
        var middle = Tensor(shape: [m, config.hiddenSize], data: capture.inputs)
        var attentionOut = try Kernels.linear(attention, w.o, bias: w.oBias)
        try addLoRA(lora, input: attention, output: &attentionOut, rows: 0..<m)
        Kernels.add(&middle, attentionOut)
        let (mlpOut, mlpTape) = try mlpForward(last, middle, keepTape: true)
        var out = middle
        Kernels.add(&out, mlpOut)
        let normed = Kernels.rmsNorm(out, weight: finalNorm, eps: config.rmsEps)
        let logits = try Kernels.linear(normed, lmHead)
        let (logprob, dLogits) = DecoderModel.sampledLogProbability(logits: logits, positions: tokens.indices.map { ($0, tokens[$0]) },
                                                                     temperature: temperature, topP: topP, rule: rule)
        var noWeight: Tensor? = nil, noBias: Tensor? = nil
        let dNormed = try Backward.linear(dLogits, x: normed, w: lmHead, dw: &noWeight, db: &noBias, accumulate: false)
        var noNorm: Tensor? = nil
        var dx = Backward.rmsNorm(dNormed, x: out, weight: finalNorm, eps: config.rmsEps, dw: &noNorm)
        Kernels.add(&dx, try mlpBackward(last, mlpTape!, dOut: dx, slots: GradientSlots(weights: false), grads: &grads))
        _ = try loraBackward(lora, attention: attention, dOut: dx, grads: &grads)
        return logprob
    }
}
