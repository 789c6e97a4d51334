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
            let train = DoubleMatrix(arrays["embeddings"]!), f1 = arrays["f1"]!
            let d = train.columns, actions = space.count, embeddings = try sized(embeddings!, d)
            var decisions: [RouteDecision] = []
            // Similarities a block of questions at a time (every training question's for each).
            for start in stride(from: 0, to: embeddings.count, by: 256) {
                let block = DoubleMatrix(embeddings[start..<min(start + 256, embeddings.count)], columns: d)
                let sims = try DoubleMatrix.product(block, train, transposeB: true)
                for q in 0..<block.rows {
                    let near = sims.data.withUnsafeBufferPointer { TableRouter.topK(UnsafeBufferPointer(rebasing: $0[(q * sims.columns)..<((q + 1) * sims.columns)]), k) }
                    var mean = [Double](repeating: 0, count: actions)
                    for i in near { for a in 0..<actions { mean[a] += Double(f1.data[i * actions + a]) / Double(k) } }
                    let total = mean.reduce(0, +)
                    decisions.append(RouteDecision(action: TableRouter.argmax(mean),
                                                   distribution: total > 0 ? mean.map { $0 / total } : mean.map { _ in 1 / Double(actions) }))
                }
            }
            return decisions
        case .logistic:
            let w = DoubleMatrix(arrays["weight"]!), b = arrays["bias"]!.data.map(Double.init)
            var logits = try DoubleMatrix.product(DoubleMatrix(try sized(embeddings!, w.columns), columns: w.columns), w, transposeB: true)
            logits.addRow(b)
            return (0..<logits.rows).map { q in
                let p = TableRouter.softmax(logits.row(q))
                return RouteDecision(action: TableRouter.argmax(p), distribution: p)
            }
        case .mf:
            let p = DoubleMatrix(arrays["projection"]!), u = DoubleMatrix(arrays["actions"]!), b = arrays["bias"]!.data.map(Double.init)
            let z = try DoubleMatrix.product(DoubleMatrix(try sized(embeddings!, p.columns), columns: p.columns), p, transposeB: true)
            var scores = try DoubleMatrix.product(z, u, transposeB: true)
            scores.addRow(b)
            return (0..<scores.rows).map { q in
                let s = scores.row(q)
                return RouteDecision(action: TableRouter.argmax(s), distribution: TableRouter.softmax(s.map { $0 * 10 }))
            }
        }
    }

    /// `embeddings`, checked to be `d` numbers each (the size the router learned with).
    func sized(_ embeddings: [[Float]], _ d: Int) throws -> [[Float]] {
        if let bad = embeddings.first(where: { $0.count != d }) {
            throw RouterError("embedding size \(bad.count) differs from the router's \(d) (another encoder?)")
        }
        return embeddings
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
        self.space = space; method = m; action = a; k = max(1, json["k"]?.intValue ?? 10); self.arrays = arrays
        seed = json["seed"]?.stringValue.flatMap { UInt64($0) } ?? UInt64(PipelineSpec.defaultSeed)
        for (t, v) in json["action_by_type"]?.objectMembers ?? [] { if let i = v.intValue { actionByType[t] = i } }
        for (t, v) in json["f1_by_type"]?.objectMembers ?? [] { f1ByType[t] = (v.arrayValue ?? []).compactMap(\.doubleValue) }
        f1Overall = (json["f1_overall"]?.arrayValue ?? []).compactMap(\.doubleValue)
        let needed = ["knn": ["embeddings", "f1"], "logistic": ["weight", "bias"], "mf": ["projection", "actions", "bias"]][m.rawValue] ?? []
        if let missing = needed.first(where: { arrays[$0] == nil }) { throw RouterError("\(path): the \(m.rawValue) router has no array '\(missing)'") }
    }
}

