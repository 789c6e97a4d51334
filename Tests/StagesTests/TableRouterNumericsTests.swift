import XCTest
import Pipeline
@testable import Stages
import NN

/// The table routers learn and route through BLAS (`DoubleMatrix`); these keep the plain loops
/// they replaced as the reference (llm.c's habit) and check that both learn the same weights
/// (to rounding) and route every question alike, on a random table with ties.
final class TableRouterNumericsTests: XCTestCase {
    let space = ActionSpace()

    func table(questions n: Int, d: Int, seed: UInt64) -> (ScoreMatrix, [[Float]]) {
        var rng = SeededRandom(seed: seed)
        func uniform() -> Double { Double(rng.next() >> 11) / Double(1 << 53) }
        let embeddings: [[Float]] = (0..<n).map { _ in (0..<d).map { _ in Float(uniform() * 2 - 1) } }
        // F1 in fifths: many ties, some questions with every action alike.
        let f1 = (0..<n).map { _ in space.indices.map { _ in Double(Int(uniform() * 5)) / 4 } }
        return (ScoreMatrix(space: space, questions: (0..<n).map { "q\($0)" }, f1: f1), embeddings)
    }

    // MARK: The reference loops

    func referenceLogistic(_ x: [[Float]], _ f1: [[Double]], _ s: TableRouter.Settings) -> (w: [Double], b: [Double]) {
        let actions = f1[0].count, d = x[0].count
        var rows: [Int] = [], targets: [[Double]] = []
        for (i, row) in f1.enumerated() {
            let best = row.max()!
            guard row.contains(where: { best - $0 > 1e-12 }) else { continue }
            let tied = row.map { best - $0 <= 1e-12 ? 1.0 : 0.0 }
            rows.append(i); targets.append(tied.map { $0 / tied.reduce(0, +) })
        }
        var w = [Double](repeating: 0, count: actions * d), b = [Double](repeating: 0, count: actions)
        let n = Double(rows.count)
        for _ in 0..<s.steps {
            var gw = [Double](repeating: 0, count: actions * d), gb = [Double](repeating: 0, count: actions)
            for (r, i) in rows.enumerated() {
                var logits = b
                for a in 0..<actions { for j in 0..<d { logits[a] += w[a * d + j] * Double(x[i][j]) } }
                let p = TableRouter.softmax(logits)
                for a in 0..<actions {
                    let g = (p[a] - targets[r][a]) / n
                    gb[a] += g
                    for j in 0..<d { gw[a * d + j] += g * Double(x[i][j]) }
                }
            }
            for i in w.indices { w[i] -= s.learningRate * 20 * (gw[i] + s.l2 * w[i]) }
            for a in b.indices { b[a] -= s.learningRate * 20 * gb[a] }
        }
        return (w, b)
    }

    func referenceMF(_ x: [[Float]], _ f1: [[Double]], _ s: TableRouter.Settings) -> [Double] {
        let actions = f1[0].count, d = x[0].count, r = s.rank
        var rng = SeededRandom(seed: s.seed)
        func gaussian() -> Double {
            let u1 = max(Double(rng.next() >> 11) / Double(1 << 53), 1e-12), u2 = Double(rng.next() >> 11) / Double(1 << 53)
            return (-2 * log(u1)).squareRoot() * cos(2 * .pi * u2)
        }
        var p = (0..<(r * d)).map { _ in gaussian() * 0.1 }, u = (0..<(actions * r)).map { _ in gaussian() * 0.1 }
        var b = (0..<actions).map { a in f1.reduce(0) { $0 + $1[a] } / Double(f1.count) }
        var adam = [TableRouter.AdamState](repeating: .init(), count: 3)
        let n = Double(f1.count * actions)
        for step in 1...s.steps {
            var gp = [Double](repeating: 0, count: r * d), gu = [Double](repeating: 0, count: actions * r), gb = [Double](repeating: 0, count: actions)
            for (q, e) in x.enumerated() {
                var z = [Double](repeating: 0, count: r)
                for i in 0..<r { for j in 0..<d { z[i] += p[i * d + j] * Double(e[j]) } }
                var dz = [Double](repeating: 0, count: r)
                for a in 0..<actions {
                    var predicted = b[a]
                    for i in 0..<r { predicted += u[a * r + i] * z[i] }
                    let g = 2 * (predicted - f1[q][a]) / n
                    gb[a] += g
                    for i in 0..<r { gu[a * r + i] += g * z[i]; dz[i] += g * u[a * r + i] }
                }
                for i in 0..<r { for j in 0..<d { gp[i * d + j] += dz[i] * Double(e[j]) } }
            }
            for i in gp.indices { gp[i] += s.l2 * p[i] }
            for i in gu.indices { gu[i] += s.l2 * u[i] }
            adam[0].step(&p, gp, lr: s.learningRate * 0.2, t: step)
            adam[1].step(&u, gu, lr: s.learningRate * 0.2, t: step)
            adam[2].step(&b, gb, lr: s.learningRate * 0.2, t: step)
        }
        return p + u + b
    }

    /// kNN's choice by sorting every similarity (the stable order: larger first, then lower index).
    func referenceKNN(_ train: [[Float]], _ f1: [[Double]], _ e: [Float], k: Int) -> [Double] {
        var sims: [(Double, Int)] = []
        for (i, t) in train.enumerated() {
            var s = 0.0
            for j in t.indices { s += Double(t[j]) * Double(e[j]) }
            sims.append((s, i))
        }
        sims.sort { $0.0 != $1.0 ? $0.0 > $1.0 : $0.1 < $1.1 }
        var mean = [Double](repeating: 0, count: f1[0].count)
        for (_, i) in sims.prefix(k) { for a in mean.indices { mean[a] += f1[i][a] / Double(k) } }
        return mean
    }

    // MARK: Tests

    func assertClose(_ a: [Double], _ b: [Double], _ what: String, tolerance: Double = 1e-9) {
        XCTAssertEqual(a.count, b.count, what)
        let worst = zip(a, b).map { abs($0 - $1) / max(1, abs($1)) }.max() ?? 0
        XCTAssertLessThan(worst, tolerance, "\(what): largest relative difference \(worst)")
    }

    func testLogisticLearnsWhatTheLoopsLearn() throws {
        let (m, x) = table(questions: 70, d: 12, seed: 5)
        var s = TableRouter.Settings(); s.steps = 60
        let learned = try TableRouter.trainLogistic(x, m.f1, settings: s)
        let (w, b) = referenceLogistic(x, m.f1, s)
        assertClose(learned["weight"]!.data.map(Double.init), w.map { Double(Float($0)) }, "weights", tolerance: 1e-6)
        assertClose(learned["bias"]!.data.map(Double.init), b.map { Double(Float($0)) }, "bias", tolerance: 1e-6)
        XCTAssertGreaterThan(w.map(abs).max()!, 0.01, "the reference learned something")
    }

    func testMatrixFactorisationLearnsWhatTheLoopsLearn() throws {
        let (m, x) = table(questions: 50, d: 10, seed: 6)
        var s = TableRouter.Settings(); s.steps = 40; s.rank = 4
        let learned = try TableRouter.trainMF(x, m.f1, settings: s)
        let flat = (learned["projection"]!.data + learned["actions"]!.data + learned["bias"]!.data).map(Double.init)
        assertClose(flat, referenceMF(x, m.f1, s).map { Double(Float($0)) }, "projection, action factors and bias", tolerance: 1e-6)
    }

    func testKNNChoosesTheNeighboursTheSortChooses() throws {
        var (train, x) = table(questions: 300, d: 8, seed: 7)
        // Duplicates: equal similarities, where the lower index must win.
        x[10] = x[3]; x[200] = x[3]; x[201] = x[150]
        train = ScoreMatrix(space: space, questions: train.questions, f1: train.f1)
        var s = TableRouter.Settings(); s.k = 5
        let router = try TableRouter(method: .knn, matrix: train, questions: train.questions.map { RoutingQuestion($0) }, embeddings: x, settings: s)
        let (_, queries) = table(questions: 600, d: 8, seed: 8)  // more than one block of 256
        let all = queries + [x[3], x[150]]
        let decisions = try router.route(all.map { _ in RoutingQuestion("q") }, embeddings: all)
        XCTAssertEqual(decisions.count, all.count)
        for (e, decision) in zip(all, decisions) {
            let mean = referenceKNN(x, train.f1, e, k: 5)
            XCTAssertEqual(decision.action, TableRouter.argmax(mean))
            let total = mean.reduce(0, +)
            if total > 0 { assertClose(decision.distribution, mean.map { $0 / total }, "distribution", tolerance: 1e-12) }
        }
        let picked = [5.0, 1, 5, 3, 5, 2].withUnsafeBufferPointer { TableRouter.topK($0, 4) }
        XCTAssertEqual(picked, [0, 2, 4, 3])
    }

    func testARouterRefusesEmbeddingsOfAnotherSize() throws {
        let (m, x) = table(questions: 20, d: 6, seed: 9)
        for method in [TableRouter.Method.knn, .logistic, .mf] {
            let router = try TableRouter(method: method, matrix: m, questions: m.questions.map { RoutingQuestion($0) }, embeddings: x)
            XCTAssertThrowsError(try router.route([RoutingQuestion("q")], embeddings: [[1, 2, 3]])) { e in
                XCTAssertTrue("\(e)".contains("embedding size 3 differs from the router's 6"), "\(method): \(e)")
            }
        }
    }
}
