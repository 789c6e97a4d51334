import NN
#if canImport(Glibc)
import Glibc
#endif

/// HAPS's low-level router for one candidate model (the reference's rl_batch.py; docs/routing.md, Joint RL): from the router's
/// pooled hidden state, an MLP of `Linear(·, hidden)+ReLU` layers and two heads give a
/// question-specific LoRA update: A (D × r) and B (r × D), applied as alpha·A·B to the
/// candidate's `o_proj`. Weights are named as torch's state dict names them (`mlp.0.weight`,
/// `mlp.2.bias`, `head_a.weight`, ...), so checkpoints convert both ways.
///
///     let g = ParameterGenerator(inputSize: 2048, targetSize: 4096, rank: 8, seed: 43)
///     let (a, b, tape) = try g.forward(pooled)
///     let (grads, dPooled) = try g.backward(tape, dA: dA, dB: dB)
public struct ParameterGenerator: Sendable {
    /// The MLP's layers, then the heads: `mlp.<2i>.weight|bias`, `head_a.*`, `head_b.*`.
    public var weights: [String: Tensor]
    public let inputSize: Int, hiddenSize: Int, layers: Int, targetSize: Int, rank: Int

    /// What `backward` needs of a forward pass.
    public struct Tape: Sendable {
        var inputs: [Tensor]   // each linear layer's input, [1, in]
        var activations: [Tensor]  // each MLP layer's output before ReLU, [1, hidden]
    }

    static func layerName(_ i: Int) -> String { "mlp.\(2 * i)" }

    /// Xavier-uniform weights and zero biases, from `seed`: the same seed gives every
    /// candidate's generator the same start, as the reference's `set_seed(43)` before each does.
    public init(inputSize: Int, hiddenSize: Int = 256, layers: Int = 2, targetSize: Int, rank: Int, seed: UInt64) {
        self.inputSize = inputSize; self.hiddenSize = hiddenSize; self.layers = layers; self.targetSize = targetSize; self.rank = rank
        var rng = SamplingRandom(seed: seed)
        func xavier(_ out: Int, _ inp: Int) -> Tensor {
            let limit = (6 / Float(inp + out)).squareRoot()
            return Tensor(shape: [out, inp], data: (0..<(out * inp)).map { _ in (rng.unit() * 2 - 1) * limit })
        }
        var w: [String: Tensor] = [:]
        var width = inputSize
        for i in 0..<layers {
            w[ParameterGenerator.layerName(i) + ".weight"] = xavier(hiddenSize, width)
            w[ParameterGenerator.layerName(i) + ".bias"] = Tensor(zeros: [hiddenSize])
            width = hiddenSize
        }
        w["head_a.weight"] = xavier(targetSize * rank, hiddenSize); w["head_a.bias"] = Tensor(zeros: [targetSize * rank])
        w["head_b.weight"] = xavier(rank * targetSize, hiddenSize); w["head_b.bias"] = Tensor(zeros: [rank * targetSize])
        weights = w
    }

    /// A generator from named weights (a checkpoint, or torch's state dict); shapes are read
    /// from them and checked.
    public init(weights: [String: Tensor], rank: Int) throws {
        var layers = 0
        while weights[ParameterGenerator.layerName(layers) + ".weight"] != nil { layers += 1 }
        guard layers > 0, let first = weights["mlp.0.weight"], let a = weights["head_a.weight"], weights["head_b.weight"] != nil else {
            throw ModelError("generator", "needs mlp.0.weight ... head_a.weight, head_b.weight (torch's state-dict names)")
        }
        guard rank > 0, a.rows % rank == 0 else { throw ModelError("generator", "head_a has \(a.rows) outputs, not a multiple of rank \(rank)") }
        self.weights = weights; self.layers = layers; self.rank = rank
        inputSize = first.columns; hiddenSize = first.rows; targetSize = a.rows / rank
        for name in (0..<layers).flatMap({ [ParameterGenerator.layerName($0) + ".weight", ParameterGenerator.layerName($0) + ".bias"] })
            + ["head_a.bias", "head_b.weight", "head_b.bias"] where weights[name] == nil {
            throw ModelError("generator", "no tensor \(name)")
        }
    }

    /// A (targetSize × rank) and B (rank × targetSize) for a pooled state of `inputSize`.
    public func forward(_ pooled: [Float]) throws -> (a: Tensor, b: Tensor, tape: Tape) {
        precondition(pooled.count == inputSize, "the generator reads \(inputSize) values, got \(pooled.count)")
        var x = Tensor(shape: [1, inputSize], data: pooled)
        var tape = Tape(inputs: [], activations: [])
        for i in 0..<layers {
            let n = ParameterGenerator.layerName(i)
            tape.inputs.append(x)
            let pre = try Kernels.linear(x, weights[n + ".weight"]!, bias: weights[n + ".bias"])
            tape.activations.append(pre)
            x = Tensor(shape: pre.shape, data: pre.data.map { max(0, $0) })
        }
        tape.inputs.append(x)
        let a = try Kernels.linear(x, weights["head_a.weight"]!, bias: weights["head_a.bias"])
        let b = try Kernels.linear(x, weights["head_b.weight"]!, bias: weights["head_b.bias"])
        return (Tensor(shape: [targetSize, rank], data: a.data), Tensor(shape: [rank, targetSize], data: b.data), tape)
    }

    /// Given a scalar's gradients with respect to A and B: its gradients with respect to every
    /// weight (by name) and to the pooled state (what flows back into the router backbone).
    public func backward(_ tape: Tape, dA: Tensor, dB: Tensor) throws -> (gradients: [String: Tensor], dPooled: [Float]) {
        var grads: [String: Tensor] = [:]
        let z = tape.inputs[layers]
        func head(_ name: String, _ d: Tensor) throws -> Tensor {
            var dw: Tensor? = Tensor(zeros: weights[name + ".weight"]!.shape), db: Tensor? = Tensor(zeros: weights[name + ".bias"]!.shape)
            let dz = try Backward.linear(Tensor(shape: [1, d.count], data: d.data), x: z, w: weights[name + ".weight"]!, dw: &dw, db: &db)
            grads[name + ".weight"] = dw; grads[name + ".bias"] = db
            return dz
        }
        var dx = try head("head_a", dA)
        Kernels.add(&dx, try head("head_b", dB))
        for i in stride(from: layers - 1, through: 0, by: -1) {
            let n = ParameterGenerator.layerName(i)
            let pre = tape.activations[i]
            let dPre = Tensor(shape: dx.shape, data: zip(dx.data, pre.data).map { $1 > 0 ? $0 : 0 })  // ReLU
            var dw: Tensor? = Tensor(zeros: weights[n + ".weight"]!.shape), db: Tensor? = Tensor(zeros: weights[n + ".bias"]!.shape)
            dx = try Backward.linear(dPre, x: tape.inputs[i], w: weights[n + ".weight"]!, dw: &dw, db: &db)
            grads[n + ".weight"] = dw; grads[n + ".bias"] = db
        }
        return (grads, dx.data)
    }
}

extension DecoderModel {
    /// The mean over positions of the last hidden states (after the final norm): the router's
    /// pooled state that the parameter generators read. `positions`: only those (the
    /// question's tokens, `pooling` "question"); nil: every position, as the reference.
    public static func pooled(_ tape: DecoderTape, positions: Range<Int>? = nil) -> [Float] {
        let h = tape.hiddenStates, d = h.columns, span = positions ?? 0..<h.rows
        precondition(!span.isEmpty && span.upperBound <= h.rows, "pooled positions \(span) of \(h.rows)")
        var out = [Float](repeating: 0, count: d)
        for t in span { for j in 0..<d { out[j] += h.data[t * d + j] } }
        return out.map { $0 / Float(span.count) }
    }

    /// Gradients of the router's weights from a scalar's gradient with respect to its pooled
    /// state (each pooled position's share is 1/n, the others' 0).
    public func backward(_ tape: DecoderTape, dPooled: [Float], positions: Range<Int>? = nil) throws -> [String: Tensor] {
        let n = tape.hiddenStates.rows, d = dPooled.count, span = positions ?? 0..<n
        var dHidden = Tensor(zeros: [n, d])
        for t in span { for j in 0..<d { dHidden.data[t * d + j] = dPooled[j] / Float(span.count) } }
        return try backward(tape, dHiddenStates: dHidden)
    }
}
