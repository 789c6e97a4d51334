#if canImport(Glibc)
import Glibc
#endif

/// Backward passes of the kernels in `Kernels`, each the exact derivative of its forward
/// (checked against finite differences in NNTests).
public enum Backward {
    /// For Y = X·Wᵀ (+ b): returns dX = dY·W and accumulates dW += dYᵀ·X (and db += Σ dY).
    public static func linear(_ dy: Tensor, x: Tensor, w: Tensor, dw: inout Tensor?, db: inout Tensor?) throws -> Tensor {
        let blas = try BLAS.shared()
        var dx = Tensor(zeros: [dy.rows, w.columns])
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
                                  beta: 1, c: dwp.baseAddress!)
                    }
                }
            }
        }
        if db != nil {
            let c = dy.columns
            for r in 0..<dy.rows { for j in 0..<c { db!.data[j] += dy.data[r * c + j] } }
        }
        return dx
    }

    /// For y = w ⊙ x / sqrt(mean(x²) + eps) per row: returns dx and accumulates dw.
    public static func rmsNorm(_ dy: Tensor, x: Tensor, weight: Tensor, eps: Float, dw: inout Tensor?) -> Tensor {
        let c = x.columns
        var dx = Tensor(zeros: x.shape)
        for r in 0..<x.rows {
            var ss: Float = 0
            for j in 0..<c { ss += x.data[r * c + j] * x.data[r * c + j] }
            let inv = 1 / (ss / Float(c) + eps).squareRoot()
            var dot: Float = 0  // Σ_j w_j dy_j x_j
            for j in 0..<c { dot += weight.data[j] * dy.data[r * c + j] * x.data[r * c + j] }
            let k = inv * inv * inv * dot / Float(c)
            for j in 0..<c {
                dx.data[r * c + j] = inv * weight.data[j] * dy.data[r * c + j] - k * x.data[r * c + j]
                if dw != nil { dw!.data[j] += dy.data[r * c + j] * x.data[r * c + j] * inv }
            }
        }
        return dx
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
