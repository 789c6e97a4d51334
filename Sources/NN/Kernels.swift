#if canImport(Glibc)
import Glibc
#endif

/// The forward kernels a Llama-family decoder needs, on contiguous Float32 rows. Backward
/// passes live beside them in `Backward.swift`; each is checked against finite differences.
public enum Kernels {
    /// Y[rows×out] = X[rows×in] · Wᵀ (+ bias): a linear layer with PyTorch's weight layout [out, in].
    public static func linear(_ x: Tensor, _ w: Tensor, bias: Tensor? = nil) throws -> Tensor {
        precondition(x.columns == w.columns, "linear: input has \(x.columns) features, weight expects \(w.columns)")
        let blas = try BLAS.shared()
        var y = Tensor(uninitialized: [x.rows, w.rows])  // written whole by the product (beta 0)
        x.data.withUnsafeBufferPointer { xp in
            w.data.withUnsafeBufferPointer { wp in
                y.data.withUnsafeMutableBufferPointer { yp in
                    blas.gemm(transB: true, m: x.rows, n: w.rows, k: x.columns, a: xp.baseAddress!, b: wp.baseAddress!, c: yp.baseAddress!)
                }
            }
        }
        if let bias { addRowVector(&y, bias) }
        return y
    }

    /// Adds `v` to every row of `x`.
    public static func addRowVector(_ x: inout Tensor, _ v: Tensor) {
        let c = x.columns
        precondition(v.count == c)
        x.data.withUnsafeMutableBufferPointer { xp in
            v.data.withUnsafeBufferPointer { vp in
                for r in 0..<(xp.count / c) { for j in 0..<c { xp[r * c + j] += vp[j] } }
            }
        }
    }

    /// RMSNorm as Hugging Face computes it: x / sqrt(mean(x²) + eps) · weight, per row.
    public static func rmsNorm(_ x: Tensor, weight: Tensor, eps: Float) -> Tensor {
        let c = x.columns
        var y = x
        y.data.withUnsafeMutableBufferPointer { yp in
            weight.data.withUnsafeBufferPointer { wp in
                for r in 0..<(yp.count / c) {
                    var ss: Float = 0
                    for j in 0..<c { ss += yp[r * c + j] * yp[r * c + j] }
                    let inv = 1 / (ss / Float(c) + eps).squareRoot()
                    for j in 0..<c { yp[r * c + j] = wp[j] * (yp[r * c + j] * inv) }
                }
            }
        }
        return y
    }

    /// x += scale·y, element by element (a scaled gradient summed into another).
    public static func addScaled(_ x: inout Tensor, _ y: Tensor, _ scale: Float) {
        precondition(x.count == y.count, "addScaled: \(x.shape) + \(y.shape)")
        x.data.withUnsafeMutableBufferPointer { xp in
            y.data.withUnsafeBufferPointer { yp in for i in 0..<xp.count { xp[i] += scale * yp[i] } }
        }
    }

    public static func silu(_ v: Float) -> Float { v / (1 + expf(-v)) }

    /// x += y, element by element (a residual connection).
    public static func add(_ x: inout Tensor, _ y: Tensor) {
        precondition(x.count == y.count, "add: \(x.shape) + \(y.shape)")
        x.data.withUnsafeMutableBufferPointer { xp in
            y.data.withUnsafeBufferPointer { yp in for i in 0..<xp.count { xp[i] += yp[i] } }
        }
    }

    /// silu(gate) ⊙ up, the gated MLP's activation: [rows, i] from two [rows, i]. With
    /// `keepSigmoid`, also σ(gate) from the same exponential, for the backward pass (the bits
    /// of `1 / (1 + expf(-g))`, as the backward would compute them).
    public static func swiGLU(gate: Tensor, up: Tensor, keepSigmoid: Bool) -> (activation: Tensor, sigmoid: Tensor?) {
        var out = Tensor(uninitialized: gate.shape)  // written whole below
        var sig = keepSigmoid ? Tensor(uninitialized: gate.shape) : nil
        out.data.withUnsafeMutableBufferPointer { op in
            gate.data.withUnsafeBufferPointer { gp in
                up.data.withUnsafeBufferPointer { upp in
                    if sig == nil {
                        for i in 0..<op.count { op[i] = silu(gp[i]) * upp[i] }
                    } else {
                        sig!.data.withUnsafeMutableBufferPointer { sp in
                            for i in 0..<op.count {
                                let g = gp[i], e = expf(-g)
                                op[i] = g / (1 + e) * upp[i]  // silu(g) · up, as above
                                sp[i] = 1 / (1 + e)
                            }
                        }
                    }
                }
            }
        }
        return (out, sig)
    }

    /// Softmax of `count` values in place (max-subtracted).
    public static func softmax(_ p: UnsafeMutablePointer<Float>, count: Int) {
        guard count > 0 else { return }
        var m = -Float.infinity
        for i in 0..<count { m = max(m, p[i]) }
        var sum: Float = 0
        for i in 0..<count { let e = expf(p[i] - m); p[i] = e; sum += e }
        let inv = 1 / sum
        for i in 0..<count { p[i] *= inv }
    }

    /// A causal (and windowed) attention row: softmax over `visible` only, zero elsewhere, so
    /// no exponential is spent on masked positions.
    public static func maskedSoftmax(_ row: UnsafeMutablePointer<Float>, count: Int, visible: ClosedRange<Int>) {
        for i in 0..<visible.lowerBound { row[i] = 0 }
        softmax(row + visible.lowerBound, count: visible.count)
        if visible.upperBound + 1 < count { for i in (visible.upperBound + 1)..<count { row[i] = 0 } }
    }

    /// log Σ exp of a row (for log-softmax).
    public static func logSumExp(_ p: UnsafePointer<Float>, count: Int) -> Float {
        var m = -Float.infinity
        for i in 0..<count { m = max(m, p[i]) }
        var sum: Float = 0
        for i in 0..<count { sum += expf(p[i] - m) }
        return m + logf(sum)
    }
}
