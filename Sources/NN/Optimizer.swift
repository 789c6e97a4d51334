#if canImport(Glibc)
import Glibc
#endif

/// AdamW with decoupled weight decay, step for step as `torch.optim.AdamW` computes it:
///
///     p ← p · (1 − lr·λ);  m ← β1·m + (1−β1)·g;  v ← β2·v + (1−β2)·g²
///     p ← p − (lr / (1−β1ᵗ)) · m / (√v / √(1−β2ᵗ) + ε)
///
/// Parameters are named tensors; moments are kept per name and saved with `state`.
public struct AdamW: Sendable {
    public var beta1: Float, beta2: Float, eps: Float, weightDecay: Float
    public private(set) var step = 0
    var m: [String: Tensor] = [:], v: [String: Tensor] = [:]

    public init(beta1: Float = 0.9, beta2: Float = 0.999, eps: Float = 1e-8, weightDecay: Float = 0.01) {
        self.beta1 = beta1; self.beta2 = beta2; self.eps = eps; self.weightDecay = weightDecay
    }

    /// One update of every parameter that has a gradient, at learning rate `lr`.
    public mutating func update(_ params: inout [String: Tensor], gradients: [String: Tensor], lr: Float) {
        step += 1
        let bc1 = 1 - pow(beta1, Float(step)), bc2Sqrt = (1 - pow(beta2, Float(step))).squareRoot()
        let stepSize = lr / bc1
        for (name, g) in gradients {
            guard var p = params[name] else { continue }
            var mt = m[name] ?? Tensor(zeros: p.shape), vt = v[name] ?? Tensor(zeros: p.shape)
            for i in 0..<p.count {
                p.data[i] *= 1 - lr * weightDecay
                mt.data[i] = beta1 * mt.data[i] + (1 - beta1) * g.data[i]
                vt.data[i] = beta2 * vt.data[i] + (1 - beta2) * g.data[i] * g.data[i]
                p.data[i] -= stepSize * mt.data[i] / (vt.data[i].squareRoot() / bc2Sqrt + eps)
            }
            params[name] = p; m[name] = mt; v[name] = vt
        }
    }

    /// The moments and step, as tensors (`m.<name>`, `v.<name>`, `step`) for a checkpoint.
    public var state: [String: Tensor] {
        var out: [String: Tensor] = ["step": Tensor(shape: [1], data: [Float(step)])]
        for (k, t) in m { out["m." + k] = t }
        for (k, t) in v { out["v." + k] = t }
        return out
    }

    public mutating func restore(_ state: [String: Tensor]) {
        step = Int(state["step"]?.data.first ?? 0)
        m = [:]; v = [:]
        for (k, t) in state {
            if k.hasPrefix("m.") { m[String(k.dropFirst(2))] = t }
            if k.hasPrefix("v.") { v[String(k.dropFirst(2))] = t }
        }
    }
}

public enum Gradients {
    /// Scales all gradients so that their joint L2 norm is at most `maxNorm` (as
    /// `torch.nn.utils.clip_grad_norm_`: coefficient maxNorm / (norm + 1e-6), capped at 1).
    /// Returns the norm before clipping.
    @discardableResult
    public static func clip(_ grads: inout [String: Tensor], maxNorm: Float) -> Float {
        var sum: Double = 0
        for g in grads.values { for x in g.data { sum += Double(x) * Double(x) } }
        let norm = Float(sum.squareRoot())
        let coefficient = min(1, maxNorm / (norm + 1e-6))
        if coefficient < 1 {
            for k in grads.keys { grads[k]!.data = grads[k]!.data.map { $0 * coefficient } }
        }
        return norm
    }
}

/// Learning-rate multipliers by step, as transformers' schedulers define them.
public enum LearningRateSchedule: Sendable, Equatable {
    case constant
    /// Linear warm-up to 1, then linear decay to 0 at `total` (get_linear_schedule_with_warmup).
    case linear(warmup: Int, total: Int)
    /// Linear warm-up, then half a cosine to 0 at `total` (get_cosine_schedule_with_warmup).
    case cosine(warmup: Int, total: Int)
    /// From `from` to `to` linearly over `total` steps (the reference's RL decay, 1.0 → 0.1).
    case linearDecay(from: Float, to: Float, total: Int)

    public func multiplier(_ step: Int) -> Float {
        switch self {
        case .constant: return 1
        case .linear(let w, let t):
            if step < w { return Float(step) / Float(max(1, w)) }
            return max(0, Float(t - step) / Float(max(1, t - w)))
        case .cosine(let w, let t):
            if step < w { return Float(step) / Float(max(1, w)) }
            let progress = Double(step - w) / Double(max(1, t - w))
            return Float(max(0, 0.5 * (1 + cos(Double.pi * progress))))
        case .linearDecay(let a, let b, let t):
            return a + (b - a) * min(1, Float(step) / Float(max(1, t)))
        }
    }
}
