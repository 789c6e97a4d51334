public import LLM
import NN

/// How much one candidate's generated updates vary across questions (issue 28: is the
/// low-level router's update question-specific, or one fixed update whatever the question?).
/// Each question's update is the matrix X_q = α_q · A_q · B_q (hidden × width); with X̄ their
/// mean, the spread is the mean of ‖X_q − X̄‖ over ‖X̄‖ (Frobenius norms): 0 when every
/// question gets the same update. Computed from the Gram matrix ⟨X_q, X_q'⟩ = α_q α_q' ·
/// Σ (A_qᵀ A_q') ∘ (B_q B_q'ᵀ), two matrix products over the stacked factors, so the
/// hidden × width updates are never formed (a 4096 × 4096 update a question at the paper's shapes).
/// With the questions in groups (their types), each group's mean update and spread too: does
/// the update differ by question type (the planted world of docs/routing.md)?
public struct UpdateSpread: Sendable, Equatable {
    /// One group of questions' updates, measured against the mean over all of them.
    public struct Group: Sendable, Equatable {
        public var count: Int
        /// ‖X̄_g − X̄‖ / ‖X̄‖: how far the group's mean update is from the mean of all.
        public var shift: Double
        /// The mean over the group of ‖X_q − X̄_g‖ / ‖X̄‖: the spread within it.
        public var spread: Double
    }
    /// Updates measured.
    public var count: Int
    /// ‖X̄‖: the mean update's norm.
    public var meanUpdateNorm: Double
    /// The mean over questions of ‖X_q‖.
    public var updateNorm: Double
    /// The mean over questions of ‖X_q − X̄‖ / ‖X̄‖ (0 with a zero mean update).
    public var relative: Double
    /// By group name, when `groups` were given (empty otherwise).
    public var groups: [String: Group] = [:]

    /// The spread of `updates` (nil for none), and of each group when `groups` names one for
    /// each update. Their factors must agree in shape but rank.
    public init?(_ updates: [LoRAUpdate], groups names: [String]? = nil) throws {
        guard !updates.isEmpty else { return nil }
        precondition(names == nil || names!.count == updates.count, "a group name for each update")
        let g = try UpdateSpread.gram(updates), all = Array(updates.indices)
        // ⟨X̄_S, X̄_T⟩ from the Gram matrix.
        func inner(_ s: [Int], _ t: [Int]) -> Double {
            s.reduce(0.0) { sum, q in sum + t.reduce(0.0) { $0 + g[q][$1] } } / Double(s.count * t.count)
        }
        // ‖X_q − X̄_S‖ for each q in S, given ‖X̄_S‖² (computed once a set: the sums are O(n²)).
        func meanDistance(_ s: [Int], selfInner: Double) -> Double {
            s.map { q in max(0, g[q][q] - 2 * s.reduce(0.0) { $0 + g[q][$1] } / Double(s.count) + selfInner).squareRoot() }
                .reduce(0, +) / Double(s.count)
        }
        let meanSquare = max(0, inner(all, all))  // ‖X̄‖² = the mean of G
        count = updates.count
        meanUpdateNorm = meanSquare.squareRoot()
        updateNorm = all.map { max(0, g[$0][$0]).squareRoot() }.reduce(0, +) / Double(updates.count)
        let scale = meanUpdateNorm > 0 ? 1 / meanUpdateNorm : 0
        relative = meanDistance(all, selfInner: meanSquare) * scale
        for name in Set(names ?? []) {
            let members = all.filter { names![$0] == name }, own = inner(members, members)
            let shift = max(0, own - 2 * inner(members, all) + meanSquare).squareRoot()
            groups[name] = Group(count: members.count, shift: shift * scale, spread: meanDistance(members, selfInner: own) * scale)
        }
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
