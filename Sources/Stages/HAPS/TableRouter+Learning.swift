#if canImport(Glibc)
import Glibc
#endif
import NN
import Pipeline

/// A row-major matrix of Doubles and the products the table routers learn and route with,
/// through OpenBLAS's dgemm: their sums over the embedding's 384 numbers and the table's
/// thousands of questions are matrix products, and written as loops they took minutes on a
/// RouterBench-sized table (bench/routers).
struct DoubleMatrix: Equatable {
    var rows: Int, columns: Int
    var data: [Double]

    init(rows: Int, columns: Int, repeating value: Double = 0) {
        self.rows = rows; self.columns = columns; data = Array(repeating: value, count: rows * columns)
    }

    init(rows: Int, columns: Int, data: [Double]) {
        precondition(data.count == rows * columns)
        self.rows = rows; self.columns = columns; self.data = data
    }

    /// Rows of equal length (Floats widened exactly).
    init<S: Sequence>(_ rows: S, columns: Int) where S.Element == [Float] {
        var data: [Double] = []
        var n = 0
        for r in rows { precondition(r.count == columns); data.append(contentsOf: r.lazy.map(Double.init)); n += 1 }
        self.init(rows: n, columns: columns, data: data)
    }

    init(_ t: Tensor) { self.init(rows: t.shape[0], columns: t.shape.count > 1 ? t.shape[1] : 1, data: t.data.map(Double.init)) }

    subscript(r: Int, c: Int) -> Double {
        get { data[r * columns + c] }
        set { data[r * columns + c] = newValue }
    }

    var tensor: Tensor { Tensor(shape: [rows, columns], data: data.map(Float.init)) }

    /// op(a) · op(b), where op transposes when asked.
    static func product(_ a: DoubleMatrix, _ b: DoubleMatrix, transposeA ta: Bool = false, transposeB tb: Bool = false) throws -> DoubleMatrix {
        let m = ta ? a.columns : a.rows, k = ta ? a.rows : a.columns
        let n = tb ? b.rows : b.columns
        precondition(k == (tb ? b.columns : b.rows), "inner dimensions differ")
        var c = DoubleMatrix(rows: m, columns: n)
        let blas = try BLAS.shared()
        a.data.withUnsafeBufferPointer { ap in
            b.data.withUnsafeBufferPointer { bp in
                c.data.withUnsafeMutableBufferPointer { cp in
                    blas.dgemm(transA: ta, transB: tb, m: m, n: n, k: k, a: ap.baseAddress!, lda: a.columns,
                               b: bp.baseAddress!, ldb: b.columns, c: cp.baseAddress!)
                }
            }
        }
        return c
    }

    /// Adds `v` to every row.
    mutating func addRow(_ v: [Double]) {
        for r in 0..<rows { for c in 0..<columns { data[r * columns + c] += v[c] } }
    }

    /// The sum of each column.
    var columnSums: [Double] {
        var s = [Double](repeating: 0, count: columns)
        for r in 0..<rows { for c in 0..<columns { s[c] += data[r * columns + c] } }
        return s
    }

    func row(_ r: Int) -> [Double] { Array(data[(r * columns)..<((r + 1) * columns)]) }
}

extension TableRouter {
    /// Softmax regression on embeddings; each question's target is uniform over its best
    /// actions (questions where every action scores the same teach nothing and are left out).
    /// Full-batch gradient descent with L2, deterministic.
    static func trainLogistic(_ x: [[Float]], _ f1: [[Double]], settings: Settings) throws -> [String: Tensor] {
        let actions = f1[0].count, d = x[0].count
        var rows: [Int] = [], targets: [Double] = []
        for (i, row) in f1.enumerated() {
            let best = row.max()!
            guard row.contains(where: { best - $0 > 1e-12 }) else { continue }
            let tied = row.map { best - $0 <= 1e-12 ? 1.0 : 0.0 }
            let n = tied.reduce(0, +)
            rows.append(i); targets.append(contentsOf: tied.map { $0 / n })
        }
        var w = DoubleMatrix(rows: actions, columns: d), b = [Double](repeating: 0, count: actions)
        guard !rows.isEmpty else { return ["weight": w.tensor, "bias": Tensor(zeros: [actions])] }
        let inputs = DoubleMatrix(rows.lazy.map { x[$0] }, columns: d)
        let n = Double(rows.count), rate = settings.learningRate * 20
        for _ in 0..<settings.steps {
            var g = try DoubleMatrix.product(inputs, w, transposeB: true)  // logits [rows, actions]
            g.addRow(b)
            for r in 0..<g.rows {
                let p = softmax(g.row(r))
                for a in 0..<actions { g[r, a] = (p[a] - targets[r * actions + a]) / n }
            }
            let gw = try DoubleMatrix.product(g, inputs, transposeA: true)  // [actions, d]
            let gb = g.columnSums
            for i in w.data.indices { w.data[i] -= rate * (gw.data[i] + settings.l2 * w.data[i]) }
            for a in b.indices { b[a] -= rate * gb[a] }
        }
        return ["weight": w.tensor, "bias": Tensor(shape: [actions], data: b.map(Float.init))]
    }

    /// RouteLLM-style matrix factorisation: the F1 of action a on question q is modelled as
    /// u_a · (P e_q) + b_a (a learned projection of the question's embedding against a learned
    /// vector per action), fit by least squares over every question × action with Adam.
    static func trainMF(_ x: [[Float]], _ f1: [[Double]], settings: Settings) throws -> [String: Tensor] {
        let actions = f1[0].count, d = x[0].count, r = settings.rank
        var rng = SeededRandom(seed: settings.seed)
        func gaussian() -> Double {
            let u1 = max(Double(rng.next() >> 11) / Double(1 << 53), 1e-12), u2 = Double(rng.next() >> 11) / Double(1 << 53)
            return (-2 * Glibc.log(u1)).squareRoot() * cos(2 * .pi * u2)
        }
        var p = DoubleMatrix(rows: r, columns: d, data: (0..<(r * d)).map { _ in gaussian() * 0.1 })
        var u = DoubleMatrix(rows: actions, columns: r, data: (0..<(actions * r)).map { _ in gaussian() * 0.1 })
        var b = (0..<actions).map { a in f1.reduce(0) { $0 + $1[a] } / Double(f1.count) }
        let inputs = DoubleMatrix(x, columns: d), targets = f1.flatMap { $0 }
        var adam = [AdamState](repeating: AdamState(), count: 3)
        let n = Double(f1.count * actions), rate = settings.learningRate * 0.2
        for step in 1...max(1, settings.steps) {
            let z = try DoubleMatrix.product(inputs, p, transposeB: true)  // [questions, rank]
            var g = try DoubleMatrix.product(z, u, transposeB: true)       // predicted F1 [questions, actions]
            g.addRow(b)
            for i in g.data.indices { g.data[i] = 2 * (g.data[i] - targets[i]) / n }
            let gb = g.columnSums
            var gu = try DoubleMatrix.product(g, z, transposeA: true)      // [actions, rank]
            let dz = try DoubleMatrix.product(g, u)                        // [questions, rank]
            var gp = try DoubleMatrix.product(dz, inputs, transposeA: true) // [rank, d]
            for i in gp.data.indices { gp.data[i] += settings.l2 * p.data[i] }
            for i in gu.data.indices { gu.data[i] += settings.l2 * u.data[i] }
            adam[0].step(&p.data, gp.data, lr: rate, t: step)
            adam[1].step(&u.data, gu.data, lr: rate, t: step)
            adam[2].step(&b, gb, lr: rate, t: step)
        }
        return ["projection": p.tensor, "actions": u.tensor, "bias": Tensor(shape: [actions], data: b.map(Float.init))]
    }

    /// Adam's moments for one parameter vector (β 0.9, 0.999).
    struct AdamState {
        var m: [Double] = [], v: [Double] = []
        mutating func step(_ x: inout [Double], _ g: [Double], lr: Double, t: Int) {
            if m.isEmpty { m = Array(repeating: 0, count: x.count); v = m }
            let c1 = 1 - Glibc.pow(0.9, Double(t)), c2 = 1 - Glibc.pow(0.999, Double(t))
            for i in x.indices {
                m[i] = 0.9 * m[i] + 0.1 * g[i]
                v[i] = 0.999 * v[i] + 0.001 * g[i] * g[i]
                x[i] -= lr * (m[i] / c1) / ((v[i] / c2).squareRoot() + 1e-8)
            }
        }
    }

    static func softmax(_ z: [Double]) -> [Double] {
        let m = z.max() ?? 0
        let e = z.map { Glibc.exp($0 - m) }
        let s = e.reduce(0, +)
        return e.map { $0 / s }
    }

    /// The indices of the `k` largest of `scores`, largest first, the lower index first among
    /// equals (what a stable sort by score, descending, would put first).
    static func topK(_ scores: UnsafeBufferPointer<Double>, _ k: Int) -> [Int] {
        var best: [(score: Double, index: Int)] = []
        best.reserveCapacity(k + 1)
        for (i, s) in scores.enumerated() {
            if best.count == k, s <= best[k - 1].score { continue }
            var at = best.count
            while at > 0 && best[at - 1].score < s { at -= 1 }
            best.insert((s, i), at: at)
            if best.count > k { best.removeLast() }
        }
        return best.map(\.index)
    }
}
