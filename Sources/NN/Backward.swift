#if canImport(Glibc)
import Glibc
#endif

/// Backward passes of the kernels in `Kernels`, each the exact derivative of its forward
/// (checked against finite differences in NNTests).
public enum Backward {
    /// For Y = X·Wᵀ (+ b): returns dX = dY·W and accumulates dW += dYᵀ·X (and db += Σ dY);
    /// with `accumulate` false, dW = dYᵀ·X overwrites `dw` (which may be uninitialised).
    public static func linear(_ dy: Tensor, x: Tensor, w: Tensor, dw: inout Tensor?, db: inout Tensor?, accumulate: Bool = true) throws -> Tensor {
        let blas = try BLAS.shared()
        var dx = Tensor(uninitialized: [dy.rows, w.columns])  // written whole by the product (beta 0)
        dy.data.withUnsafeBufferPointer { dyp in
            w.data.withUnsafeBufferPointer { wp in
                dx.data.withUnsafeMutableBufferPointer { dxp in
                    blas.gemm(m: dy.rows, n: w.columns, k: w.rows, a: dyp.baseAddress!, b: wp.baseAddress!, c: dxp.baseAddress!)
                }
            }
        }
        if dw != nil {
            dy.data.withUnsafeBufferPointer { dyp in
                x.data.withUnsafeBufferPointer { xp in
                    dw!.data.withUnsafeMutableBufferPointer { dwp in
                        blas.gemm(transA: true, m: w.rows, n: w.columns, k: dy.rows, a: dyp.baseAddress!, b: xp.baseAddress!,
                                  beta: accumulate ? 1 : 0, c: dwp.baseAddress!)
                    }
                }
            }
        }
        if var bias = db.take() {
            let c = dy.columns
            dy.data.withUnsafeBufferPointer { dyp in
                bias.data.withUnsafeMutableBufferPointer { bp in
                    for r in 0..<dy.rows { for j in 0..<c { bp[j] += dyp[r * c + j] } }
                }
            }
            db = bias
        }
        return dx
    }

    /// For y = w ⊙ x / sqrt(mean(x²) + eps) per row: returns dx and accumulates dw.
    public static func rmsNorm(_ dy: Tensor, x: Tensor, weight: Tensor, eps: Float, dw: inout Tensor?) -> Tensor {
        let c = x.columns, rows = x.rows
        var dx = Tensor(uninitialized: x.shape)  // every element is written below
        var gradient = dw.take()  // uniquely held while it is written (no copy check per element)
        x.data.withUnsafeBufferPointer { xp in
            dy.data.withUnsafeBufferPointer { dyp in
                weight.data.withUnsafeBufferPointer { wp in
                    dx.data.withUnsafeMutableBufferPointer { dxp in
                        for r in 0..<rows {
                            let x = xp.baseAddress! + r * c, dy = dyp.baseAddress! + r * c, dx = dxp.baseAddress! + r * c
                            var ss: Float = 0
                            for j in 0..<c { ss += x[j] * x[j] }
                            let inv = 1 / (ss / Float(c) + eps).squareRoot()
                            var dot: Float = 0  // Σ_j w_j dy_j x_j
                            for j in 0..<c { dot += wp[j] * dy[j] * x[j] }
                            let k = inv * inv * inv * dot / Float(c)
                            for j in 0..<c { dx[j] = inv * wp[j] * dy[j] - k * x[j] }
                            if gradient != nil {
                                gradient!.data.withUnsafeMutableBufferPointer { gp in for j in 0..<c { gp[j] += dy[j] * x[j] * inv } }
                            }
                        }
                    }
                }
            }
        }
        dw = gradient
        return dx
    }

    /// For a = silu(g) ⊙ u: dg and du from da, given σ(g) from the forward pass
    /// (silu = g·σ(g), silu' = σ(g)(1 + g(1 − σ(g)))).
    public static func swiGLU(_ da: Tensor, gate: Tensor, up: Tensor, sigmoid: Tensor) -> (dGate: Tensor, dUp: Tensor) {
        var dGate = Tensor(uninitialized: da.shape), dUp = Tensor(uninitialized: da.shape)  // written whole below
        da.data.withUnsafeBufferPointer { dap in
            gate.data.withUnsafeBufferPointer { gp in
                up.data.withUnsafeBufferPointer { upp in
                    sigmoid.data.withUnsafeBufferPointer { sp in
                        dGate.data.withUnsafeMutableBufferPointer { dgp in
                            dUp.data.withUnsafeMutableBufferPointer { dup in
                                for i in 0..<dap.count {
                                    let g = gp[i], s = sp[i]
                                    dgp[i] = dap[i] * upp[i] * s * (1 + g * (1 - s))
                                    dup[i] = dap[i] * g * s
                                }
                            }
                        }
                    }
                }
            }
        }
        return (dGate, dUp)
    }

    /// d silu(g)/dg.
    public static func siluDerivative(_ g: Float) -> Float {
        let s = 1 / (1 + expf(-g))
        return s * (1 + g * (1 - s))
    }

    /// For p = softmax(s) per row: ds = p ⊙ (dp − Σ dp⊙p).
    public static func softmax(_ dp: UnsafePointer<Float>, p: UnsafePointer<Float>, ds: UnsafeMutablePointer<Float>, count: Int) {
        var dot: Float = 0
        for i in 0..<count { dot += dp[i] * p[i] }
        for i in 0..<count { ds[i] = p[i] * (dp[i] - dot) }
    }
}
