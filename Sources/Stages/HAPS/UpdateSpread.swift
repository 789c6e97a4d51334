public import LLM
import NN

/// How much one candidate's generated updates vary across questions (issue 28: is the
/// low-level router's update question-specific, or one fixed update whatever the question?).
/// Each question's update is the matrix X_q = α_q · A_q · B_q (hidden × width); with X̄ their
/// mean, the spread is the mean of ‖X_q − X̄‖ over ‖X̄‖ (Frobenius norms): 0 when every
/// question gets the same update. Computed from the Gram matrix ⟨X_q, X_q'⟩ = α_q α_q' ·
/// Σ (A_qᵀ A_q') ∘ (B_q B_q'ᵀ), two matrix products over the stacked factors, so the
/// hidden × width updates are never formed (a 4096 × 4096 update a question at the paper's shapes).
public struct UpdateSpread: Sendable, Equatable {
    /// Updates measured.
    public var count: Int
    /// ‖X̄‖: the mean update's norm.
    public var meanUpdateNorm: Double
    /// The mean over questions of ‖X_q‖.
    public var updateNorm: Double
    /// The mean over questions of ‖X_q − X̄‖ / ‖X̄‖ (0 with a zero mean update).
    public var relative: Double

    /// The spread of `updates` (nil for none). Their factors must agree in shape but rank.
    public init?(_ updates: [LoRAUpdate]) throws {
        guard !updates.isEmpty else { return nil }
        let g = try UpdateSpread.gram(updates), n = Double(updates.count)
        let rowMeans = g.map { $0.reduce(0, +) / n }
        let meanSquare = max(0, rowMeans.reduce(0, +) / n)  // ‖X̄‖² = the mean of G
        let distances = g.indices.map { q in max(0, g[q][q] - 2 * rowMeans[q] + meanSquare).squareRoot() }
        count = updates.count
        meanUpdateNorm = meanSquare.squareRoot()
        updateNorm = g.indices.map { max(0, g[$0][$0]).squareRoot() }.reduce(0, +) / n
        relative = meanUpdateNorm > 0 ? distances.reduce(0, +) / n / meanUpdateNorm : 0
    }

    /// ⟨X_q, X_q'⟩ for every pair, in double precision from float32 products.
    static func gram(_ updates: [LoRAUpdate]) throws -> [[Double]] {
        let hidden = updates[0].a.rows, width = updates[0].b.columns
        precondition(updates.allSatisfy { $0.a.rows == hidden && $0.b.columns == width }, "updates of one candidate share their shape")
        let ranks = updates.map(\.a.columns), total = ranks.reduce(0, +)
        let offsets = ranks.indices.map { ranks[..<$0].reduce(0, +) }
        // A's side by side (hidden × total), B's one under another (total × width).
        var stackedA = [Float](repeating: 0, count: hidden * total), stackedB = [Float](repeating: 0, count: total * width)
        for (q, u) in updates.enumerated() {
            for i in 0..<hidden { for j in 0..<ranks[q] { stackedA[i * total + offsets[q] + j] = u.a.data[i * ranks[q] + j] } }
            for j in 0..<ranks[q] { for k in 0..<width { stackedB[(offsets[q] + j) * width + k] = u.b.data[j * width + k] } }
        }
        var ata = [Float](repeating: 0, count: total * total), bbt = [Float](repeating: 0, count: total * total)
        let blas = try BLAS.shared()
        stackedA.withUnsafeBufferPointer { a in
            ata.withUnsafeMutableBufferPointer { c in blas.gemm(transA: true, m: total, n: total, k: hidden, a: a.baseAddress!, lda: total, b: a.baseAddress!, ldb: total, c: c.baseAddress!) }
        }
        stackedB.withUnsafeBufferPointer { b in
            bbt.withUnsafeMutableBufferPointer { c in blas.gemm(transB: true, m: total, n: total, k: width, a: b.baseAddress!, lda: width, b: b.baseAddress!, ldb: width, c: c.baseAddress!) }
        }
        return updates.indices.map { q in
            updates.indices.map { p in
                var sum = 0.0
                for i in 0..<ranks[q] {
                    for j in 0..<ranks[p] {
                        let at = (offsets[q] + i) * total + offsets[p] + j
                        sum += Double(ata[at]) * Double(bbt[at])
                    }
                }
                return Double(updates[q].alpha) * Double(updates[p].alpha) * sum
            }
        }
    }
}
