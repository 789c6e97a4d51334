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

    /// One update of every parameter that has a gradient, at learning rate `lr`, in place
    /// (parameters split over `threads` threads).
    /// `gradientScale` multiplies every gradient as it is read (batch averaging and clipping
    /// without passes of their own).
    public mutating func update(_ params: inout [String: Tensor], gradients: [String: Tensor], lr: Float, gradientScale: Float = 1,
                                threads: Int = 1) {
        step += 1
        let bc1 = 1 - pow(beta1, Float(step)), bc2Sqrt = (1 - pow(beta2, Float(step))).squareRoot()
        let stepSize = lr / bc1, decay = 1 - lr * weightDecay
        let b1 = beta1, b2 = beta2, eps = self.eps, k = gradientScale
        let names = gradients.keys.filter { params[$0] != nil }.sorted()
        for name in names where m[name] == nil {
            m[name] = Tensor(zeros: params[name]!.shape); v[name] = Tensor(zeros: params[name]!.shape)
        }
        // Each name's arrays, taken out of the dictionaries (so uniquely referenced and updated in
        // place), are updated by one thread.
        final class Slot: @unchecked Sendable {
            var p: Tensor, m: Tensor, v: Tensor
            let g: Tensor
            init(p: Tensor, m: Tensor, v: Tensor, g: Tensor) { self.p = p; self.m = m; self.v = v; self.g = g }
        }
        let slots = names.map { Slot(p: params.removeValue(forKey: $0)!, m: m.removeValue(forKey: $0)!, v: v.removeValue(forKey: $0)!, g: gradients[$0]!) }
        try? Parallel.forEach(slots.count, threads: threads) { i in
            let s = slots[i]
            s.g.data.withUnsafeBufferPointer { g in
                s.p.data.withUnsafeMutableBufferPointer { p in
                    s.m.data.withUnsafeMutableBufferPointer { m in
                        s.v.data.withUnsafeMutableBufferPointer { v in
                            // Eight lanes at a time, then the tail: the same operations in the same
                            // order per element (no fused multiply-add), so the same bits as the
                            // scalar loop, which stays as the reference for the tail.
                            let n = p.count, lanes = n - n % 8
                            let gb = UnsafeRawPointer(g.baseAddress!), pb = UnsafeMutableRawPointer(p.baseAddress!)
                            let mb = UnsafeMutableRawPointer(m.baseAddress!), vb = UnsafeMutableRawPointer(v.baseAddress!)
                            var j = 0
                            while j < lanes {
                                let offset = j * MemoryLayout<Float>.stride
                                let gj = gb.loadUnaligned(fromByteOffset: offset, as: SIMD8<Float>.self) * k
                                var pj = pb.loadUnaligned(fromByteOffset: offset, as: SIMD8<Float>.self) * decay
                                let mj = b1 * mb.loadUnaligned(fromByteOffset: offset, as: SIMD8<Float>.self) + (1 - b1) * gj
                                let vj = b2 * vb.loadUnaligned(fromByteOffset: offset, as: SIMD8<Float>.self) + (1 - b2) * gj * gj
                                pj -= stepSize * mj / (vj.squareRoot() / bc2Sqrt + eps)
                                pb.storeBytes(of: pj, toByteOffset: offset, as: SIMD8<Float>.self)
                                mb.storeBytes(of: mj, toByteOffset: offset, as: SIMD8<Float>.self)
                                vb.storeBytes(of: vj, toByteOffset: offset, as: SIMD8<Float>.self)
                                j += 8
                            }
                            for j in lanes..<n {
                                let gj = g[j] * k
                                p[j] *= decay
                                m[j] = b1 * m[j] + (1 - b1) * gj
                                v[j] = b2 * v[j] + (1 - b2) * gj * gj
                                p[j] -= stepSize * m[j] / (v[j].squareRoot() / bc2Sqrt + eps)
                            }
                        }
                    }
                }
            }
        }
        for (i, name) in names.enumerated() { params[name] = slots[i].p; m[name] = slots[i].m; v[name] = slots[i].v }
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
    /// The joint L2 norm of all gradients (names summed in parallel, in Double).
    public static func norm(_ grads: [String: Tensor], threads: Int = 1) -> Float {
        let tensors = grads.keys.sorted().map { grads[$0]! }
        final class Sums: @unchecked Sendable { let lock = Lock(); var values: [Double]; init(_ n: Int) { values = Array(repeating: 0, count: n) } }
        let sums = Sums(tensors.count)
        try? Parallel.forEach(tensors.count, threads: threads) { i in
            var s: Double = 0
            tensors[i].data.withUnsafeBufferPointer { for x in $0 { s += Double(x) * Double(x) } }
            sums.lock.withLock { sums.values[i] = s }
        }
        return Float(sums.values.reduce(0, +).squareRoot())
    }

    /// The multiplier `clip` would apply for gradients of norm `norm`.
    public static func clipCoefficient(norm: Float, maxNorm: Float) -> Float { min(1, maxNorm / (norm + 1e-6)) }

    /// Scales all gradients so that their joint L2 norm is at most `maxNorm` (as
    /// `torch.nn.utils.clip_grad_norm_`: coefficient maxNorm / (norm + 1e-6), capped at 1).
    /// Returns the norm before clipping.
    @discardableResult
    public static func clip(_ grads: inout [String: Tensor], maxNorm: Float) -> Float {
        let norm = norm(grads)
        let coefficient = clipCoefficient(norm: norm, maxNorm: maxNorm)
        if coefficient < 1 {
            for k in grads.keys { grads[k]!.data.withUnsafeMutableBufferPointer { for i in $0.indices { $0[i] *= coefficient } } }
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
