#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#endif
public import JSON
public import NN
public import Pipeline

/// Routers learned from a score table alone, with no model calls (RouterBench and RouteLLM
/// are the anchors): the best fixed action, the best action per question type, k nearest
/// neighbours on question embeddings, a softmax (logistic) classifier on embeddings, and a
/// RouteLLM-style matrix factorisation that scores every action for a question.
public struct TableRouter: QuestionRouter {
    public static let kind = "table"

    public enum Method: String, ParameterEnum, Sendable {
        case random, bestFixed = "best-fixed", perType = "per-type", knn, logistic, mf
        public var needsEmbeddings: Bool { self == .knn || self == .logistic || self == .mf }
    }

    /// How to learn: neighbours, and the optimiser of the two learned methods.
    public struct Settings: Sendable {
        public var k = 10
        public var rank = 16
        public var steps = 500
        public var learningRate = 0.05
        public var l2 = 1e-3
        public var seed = UInt64(PipelineSpec.defaultSeed)
        public init() {}
    }

    public let space: ActionSpace
    public let method: Method
    /// best-fixed: the action; per-type: the fallback for a type not seen in training.
    var action: Int
    var actionByType: [String: Int] = [:]
    /// Per-type: each type's mean F1 per action, and the table's (for a type it has not seen):
    /// the scores it routes with, so that it can trade them against cost.
    var f1ByType: [String: [Double]] = [:], f1Overall: [Double] = []
    var k = 10
    /// random: the seed of each question's draw.
    var seed = UInt64(PipelineSpec.defaultSeed)
    /// knn: training embeddings [n, d] and F1 [n, actions]; logistic: weights [actions, d] and
    /// bias [actions]; mf: projection [rank, d], action factors [actions, rank], bias [actions].
    var arrays: [String: Tensor] = [:]

    public var label: String {
        switch method {
        case .random: return "random (seed \(seed))"
        case .bestFixed: return "best fixed (action \(action))"
        case .perType: return "per question type"
        case .knn: return "knn (k=\(k))"
        case .logistic: return "logistic"
        case .mf: return "matrix factorisation"
        }
    }

    public var needsEmbeddings: Bool { method.needsEmbeddings }

    // MARK: Training

    /// Learns `method` from `matrix` (its questions' types in `questions`, embeddings in
    /// `embeddings`, one per matrix row, when the method needs them).
    public init(method: Method, matrix: ScoreMatrix, questions: [RoutingQuestion], embeddings: [[Float]]?, settings: Settings = Settings()) throws {
        space = matrix.space
        self.method = method
        action = matrix.bestFixedAction
        guard matrix.count > 0 else { throw RouterError("the score table has no question with every action") }
        if method.needsEmbeddings {
            guard let embeddings, embeddings.count == matrix.count else { throw RouterError("\(method.rawValue) needs an embedding of every question") }
        }
        switch method {
        case .random: seed = settings.seed
        case .bestFixed: break
        case .perType:
            var rows: [String: [Int]] = [:]
            for (i, q) in questions.enumerated() { if let t = q.type { rows[t, default: []].append(i) } }
            guard !rows.isEmpty else { throw RouterError("per-type needs question types: give the questions file of the table's split") }
            f1Overall = matrix.meanF1
            for (t, idx) in rows {
                let sub = ScoreMatrix(space: space, questions: idx.map { matrix.questions[$0] }, f1: idx.map { matrix.f1[$0] })
                actionByType[t] = sub.bestFixedAction
                f1ByType[t] = sub.meanF1
            }
        case .knn:
            k = max(1, min(settings.k, matrix.count))
            arrays["embeddings"] = TableRouter.matrix(embeddings!)
            arrays["f1"] = TableRouter.matrix(matrix.f1.map { $0.map(Float.init) })
        case .logistic:
            arrays = try TableRouter.trainLogistic(embeddings!, matrix.f1, settings: settings)
        case .mf:
            arrays = try TableRouter.trainMF(embeddings!, matrix.f1, settings: settings)
        }
    }

    static func matrix(_ rows: [[Float]]) -> Tensor {
        Tensor(shape: [rows.count, rows.first?.count ?? 0], data: rows.flatMap { $0 })
    }

    /// Softmax regression on embeddings; each question's target is uniform over its best
    /// actions (questions where every action scores the same teach nothing and are left out).
    /// Full-batch gradient descent with L2, deterministic.
    static func trainLogistic(_ x: [[Float]], _ f1: [[Double]], settings: Settings) throws -> [String: Tensor] {
        let actions = f1[0].count, d = x[0].count
        var rows: [Int] = [], targets: [[Double]] = []
        for (i, row) in f1.enumerated() {
            let best = row.max()!
            guard row.contains(where: { best - $0 > 1e-12 }) else { continue }
            let tied = row.map { best - $0 <= 1e-12 ? 1.0 : 0.0 }
            let n = tied.reduce(0, +)
            rows.append(i); targets.append(tied.map { $0 / n })
        }
        var w = [Double](repeating: 0, count: actions * d), b = [Double](repeating: 0, count: actions)
        guard !rows.isEmpty else { return ["weight": Tensor(zeros: [actions, d]), "bias": Tensor(zeros: [actions])] }
        let n = Double(rows.count)
        for _ in 0..<settings.steps {
            var gw = [Double](repeating: 0, count: actions * d), gb = [Double](repeating: 0, count: actions)
            for (r, i) in rows.enumerated() {
                let p = softmax(logits(x[i], w, b, actions: actions))
                for a in 0..<actions {
                    let g = (p[a] - targets[r][a]) / n
                    gb[a] += g
                    for j in 0..<d { gw[a * d + j] += g * Double(x[i][j]) }
                }
            }
            for i in w.indices { w[i] -= settings.learningRate * 20 * (gw[i] + settings.l2 * w[i]) }
            for a in b.indices { b[a] -= settings.learningRate * 20 * gb[a] }
        }
        return ["weight": Tensor(shape: [actions, d], data: w.map(Float.init)), "bias": Tensor(shape: [actions], data: b.map(Float.init))]
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
        var p = (0..<(r * d)).map { _ in gaussian() * 0.1 }, u = (0..<(actions * r)).map { _ in gaussian() * 0.1 }
        var b = (0..<actions).map { a in f1.reduce(0) { $0 + $1[a] } / Double(f1.count) }
        var adam = [AdamState](repeating: AdamState(), count: 3)
        let n = Double(f1.count * actions)
        for step in 1...max(1, settings.steps) {
            var gp = [Double](repeating: 0, count: r * d), gu = [Double](repeating: 0, count: actions * r), gb = [Double](repeating: 0, count: actions)
            for (q, e) in x.enumerated() {
                var z = [Double](repeating: 0, count: r)
                for i in 0..<r { for j in 0..<d { z[i] += p[i * d + j] * Double(e[j]) } }
                var dz = [Double](repeating: 0, count: r)
                for a in 0..<actions {
                    var s = b[a]
                    for i in 0..<r { s += u[a * r + i] * z[i] }
                    let g = 2 * (s - f1[q][a]) / n
                    gb[a] += g
                    for i in 0..<r { gu[a * r + i] += g * z[i]; dz[i] += g * u[a * r + i] }
                }
                for i in 0..<r { for j in 0..<d { gp[i * d + j] += dz[i] * Double(e[j]) } }
            }
            for i in gp.indices { gp[i] += settings.l2 * p[i] }
            for i in gu.indices { gu[i] += settings.l2 * u[i] }
            adam[0].step(&p, gp, lr: settings.learningRate * 0.2, t: step)
            adam[1].step(&u, gu, lr: settings.learningRate * 0.2, t: step)
            adam[2].step(&b, gb, lr: settings.learningRate * 0.2, t: step)
        }
        return ["projection": Tensor(shape: [r, d], data: p.map(Float.init)), "actions": Tensor(shape: [actions, r], data: u.map(Float.init)),
                "bias": Tensor(shape: [actions], data: b.map(Float.init))]
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

    static func logits(_ e: [Float], _ w: [Double], _ b: [Double], actions: Int) -> [Double] {
        let d = e.count
        return (0..<actions).map { a in
            var s = b[a]
            for j in 0..<d { s += w[a * d + j] * Double(e[j]) }
            return s
        }
    }

    static func softmax(_ z: [Double]) -> [Double] {
        let m = z.max() ?? 0
        let e = z.map { Glibc.exp($0 - m) }
        let s = e.reduce(0, +)
        return e.map { $0 / s }
    }

    /// The first index of the largest value.
    static func argmax(_ v: [Double]) -> Int {
        var best = 0
        for i in v.indices where v[i] > v[best] { best = i }
        return best
    }

    // MARK: Routing

    public func route(_ questions: [RoutingQuestion], embeddings: [[Float]]?) throws -> [RouteDecision] {
        if needsEmbeddings {
            guard let embeddings, embeddings.count == questions.count else { throw RouterError("the \(method.rawValue) router needs an embedding of every question (give the evaluation its 'encoder' input)") }
        }
        switch method {
        case .random:  // uniform; the draw depends on the question and the seed only
            return questions.map { q in
                var rng = SeededRandom(seed: seed, stream: UInt64(Digest.of(string: q.text.trimmingSpaces).hex.prefix(16), radix: 16) ?? 0)
                return RouteDecision(action: Int(rng.next(upperBound: UInt64(space.count))), distribution: space.indices.map { _ in 1 / Double(space.count) })
            }
        case .bestFixed: return questions.map { _ in .certain(action, of: space) }
        case .perType:  // its choice, with the type's mean F1 per action as its distribution (scores for a cost trade-off)
            return questions.map { q in
                let chosen = q.type.flatMap { actionByType[$0] } ?? action
                let means = q.type.flatMap { f1ByType[$0] } ?? f1Overall
                let total = means.reduce(0, +)
                guard means.count == space.count, total > 0 else { return .certain(chosen, of: space) }
                return RouteDecision(action: chosen, distribution: means.map { $0 / total })
            }
        case .knn:
            let train = arrays["embeddings"]!, f1 = arrays["f1"]!
            let n = train.shape[0], d = train.shape[1], actions = space.count
            return try embeddings!.map { e in
                guard e.count == d else { throw RouterError("embedding size \(e.count) differs from the router's \(d) (another encoder?)") }
                var sims = [(Double, Int)]()
                for i in 0..<n {
                    var s = 0.0
                    for j in 0..<d { s += Double(train.data[i * d + j]) * Double(e[j]) }
                    sims.append((s, i))
                }
                sims.sort { $0.0 != $1.0 ? $0.0 > $1.0 : $0.1 < $1.1 }
                var mean = [Double](repeating: 0, count: actions)
                for (_, i) in sims.prefix(k) { for a in 0..<actions { mean[a] += Double(f1.data[i * actions + a]) / Double(k) } }
                let total = mean.reduce(0, +)
                return RouteDecision(action: TableRouter.argmax(mean),
                                     distribution: total > 0 ? mean.map { $0 / total } : mean.map { _ in 1 / Double(actions) })
            }
        case .logistic:
            let w = arrays["weight"]!.data.map(Double.init), b = arrays["bias"]!.data.map(Double.init)
            return embeddings!.map { e in
                let p = TableRouter.softmax(TableRouter.logits(e, w, b, actions: space.count))
                return RouteDecision(action: TableRouter.argmax(p), distribution: p)
            }
        case .mf:
            let p = arrays["projection"]!, u = arrays["actions"]!, b = arrays["bias"]!
            let r = p.shape[0], d = p.shape[1]
            return embeddings!.map { e in
                var z = [Double](repeating: 0, count: r)
                for i in 0..<r { for j in 0..<d { z[i] += Double(p.data[i * d + j]) * Double(e[j]) } }
                let scores = space.indices.map { a in (0..<r).reduce(Double(b.data[a])) { $0 + Double(u.data[a * r + $1]) * z[$1] } }
                return RouteDecision(action: TableRouter.argmax(scores), distribution: TableRouter.softmax(scores.map { $0 * 10 }))
            }
        }
    }

    // MARK: Saving

    public func save(directory: String) throws {
        try RouterArtifacts.write(directory: directory, kind: TableRouter.kind, space: space, fields: [
            ("method", .string(method.rawValue)), ("action", .number(Double(action))), ("k", .number(Double(k))),
            ("seed", .string(String(seed))),
            ("action_by_type", .object(actionByType.sorted { $0.key < $1.key }.map { ($0.key, .number(Double($0.value))) })),
            ("f1_by_type", .object(f1ByType.sorted { $0.key < $1.key }.map { ($0.key, .array($0.value.map(JSONValue.number))) })),
            ("f1_overall", .array(f1Overall.map(JSONValue.number))),
        ], arrays: arrays)
    }

    init(json: JSONValue, arrays: [String: Tensor], space: ActionSpace, path: String) throws {
        guard let m = json["method"]?.stringValue.flatMap(Method.init(rawValue:)), let a = json["action"]?.intValue, space.indices.contains(a) else {
            throw RouterError("\(path): a table router needs 'method' and 'action'")
        }
        self.space = space; method = m; action = a; k = json["k"]?.intValue ?? 10; self.arrays = arrays
        seed = json["seed"]?.stringValue.flatMap { UInt64($0) } ?? UInt64(PipelineSpec.defaultSeed)
        for (t, v) in json["action_by_type"]?.objectMembers ?? [] { if let i = v.intValue { actionByType[t] = i } }
        for (t, v) in json["f1_by_type"]?.objectMembers ?? [] { f1ByType[t] = (v.arrayValue ?? []).compactMap(\.doubleValue) }
        f1Overall = (json["f1_overall"]?.arrayValue ?? []).compactMap(\.doubleValue)
        let needed = ["knn": ["embeddings", "f1"], "logistic": ["weight", "bias"], "mf": ["projection", "actions", "bias"]][m.rawValue] ?? []
        if let missing = needed.first(where: { arrays[$0] == nil }) { throw RouterError("\(path): the \(m.rawValue) router has no array '\(missing)'") }
    }
}

