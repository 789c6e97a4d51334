public import Pipeline

/// Routers and baselines compared on one split's score table: what a paper reports. Routers
/// whose choices are among the sampled actions are replayed on the table (exact, no model
/// calls); baselines are every fixed action, the best fixed action (chosen on valid), random
/// routing (its expectation) and the oracle.
public struct Evaluation: Sendable {
    /// One compared system: its per-question figures and what is derived from them.
    public struct Row: Sendable {
        public var name: String
        public var label: String
        public var isRouter: Bool
        /// The action chosen per question (nil: random routing's expectation over actions).
        public var actions: [Int]?
        public var f1: [Double], em: [Double], precision: [Double], recall: [Double]
        public var tokens: [Double?], cost: [Double?]
        /// The answer and the dialogue's turns per question, for a system run live (nil:
        /// replayed on the table).
        public var answers: [String]? = nil
        public var turns: [JSONValue]? = nil
        /// Mean F1 minus best fixed's, with a paired bootstrap 95% interval.
        public var difference = Bootstrap.Interval(mean: 0, low: 0, high: 0)
        /// Mean F1 itself, with a bootstrap 95% interval (the same resamples): the error bar
        /// of the row's point in the cost–quality plane.
        public var interval = Bootstrap.Interval(mean: 0, low: 0, high: 0)
        /// (row − best fixed) / (oracle − best fixed); nil when the oracle gains nothing.
        public var gapShare: Double?

        static func mean(_ v: [Double]) -> Double { v.isEmpty ? 0 : v.reduce(0, +) / Double(v.count) }
        public var meanF1: Double { Row.mean(f1) }
        public var meanEM: Double { Row.mean(em) }
        public var meanPrecision: Double { Row.mean(precision) }
        public var meanRecall: Double { Row.mean(recall) }
        public var f1Sum: Double { f1.reduce(0, +) }
        /// Means over questions with a figure; nil when none has one.
        public var meanTokens: Double? { Row.meanKnown(tokens) }
        public var meanCost: Double? { Row.meanKnown(cost) }
        static func meanKnown(_ v: [Double?]) -> Double? {
            let known = v.compactMap { $0 }
            return known.isEmpty || known.count < v.count ? nil : Row.mean(known)
        }
        /// Mean F1 over the questions at `indices`.
        public func meanF1(_ indices: [Int]) -> Double { Row.mean(indices.map { f1[$0] }) }
    }

    public var matrix: ScoreMatrix
    public var types: [String?]
    /// Each question's id and gold answer, when the split's questions are given (empty: not).
    public var questionFacts: [(id: String, gold: String?)?] = []
    public var bestFixedAction: Int
    public var rows: [Row]
    public var resamples: Int
    public var seed: UInt64

    /// A system run live (a router that changes the models: HAPS with its generated updates),
    /// with its figures per question of the matrix, in order.
    public struct LiveRun: Sendable {
        public var name: String, label: String
        public var actions: [Int]
        public var metrics: [AnswerMetrics]
        public var tokens: [Double?], cost: [Double?]
        /// The answer per question (`per_question.jsonl` gives it, so that a served system's
        /// answers can be checked against evaluate's).
        public var answers: [String] = []
        /// Each question's turns (step, role, call, reply), for `live_transcripts.jsonl`.
        public var turns: [JSONValue] = []
        /// The row this run is also compared with, question by question (HAPS against the
        /// router its training started from).
        public var versus: String?
        public init(name: String, label: String, actions: [Int], metrics: [AnswerMetrics], tokens: [Double?], cost: [Double?], versus: String? = nil) {
            self.name = name; self.label = label; self.actions = actions; self.metrics = metrics; self.tokens = tokens; self.cost = cost
            self.versus = versus
        }
    }

    /// A paired comparison of two rows beyond "against best fixed": mean F1 of `row` minus
    /// `against`'s, with its bootstrap interval on the same resamples.
    public struct Comparison: Sendable {
        public var row: String, against: String
        public var difference: Bootstrap.Interval
    }
    public var comparisons: [Comparison] = []
    /// Each router's quality–cost curve as it trades quality for cost (`addCostCurves`).
    public var curves: [CostCurve] = []
    /// The bootstrap's resamples, drawn once and shared by the rows and the curves.
    let resampled: Bootstrap.Resamples

    /// `routes`: (name, label, decisions on the matrix's questions in order), replayed on the
    /// table; `live`: systems run live. `bestFixedAction`: chosen on valid.
    public init(matrix: ScoreMatrix, types: [String?], bestFixedAction: Int, routes: [(name: String, label: String, decisions: [RouteDecision])],
                live: [LiveRun] = [], resamples: Int = 10_000, seed: UInt64 = UInt64(PipelineSpec.defaultSeed)) {
        self.matrix = matrix; self.types = types; self.bestFixedAction = bestFixedAction
        self.resamples = resamples; self.seed = seed
        let space = matrix.space
        func replay(_ name: String, _ label: String, router: Bool, _ actions: [Int]) -> Row {
            func pick(_ m: [[Double]]) -> [Double] { zip(m, actions).map { $0[$1] } }
            return Row(name: name, label: label, isRouter: router, actions: actions, f1: pick(matrix.f1), em: pick(matrix.em),
                       precision: pick(matrix.precision), recall: pick(matrix.recall),
                       tokens: zip(matrix.tokens, actions).map { $0[$1] }, cost: zip(matrix.cost, actions).map { $0[$1] })
        }
        let describe = { (a: Int) in space.describe(a, names: matrix.candidateNames) }
        var rows = routes.map { replay($0.name, $0.label, router: true, $0.decisions.map(\.action)) }
        rows += live.map { r in
            Row(name: r.name, label: r.label, isRouter: true, actions: r.actions, f1: r.metrics.map(\.f1), em: r.metrics.map { Double($0.em) },
                precision: r.metrics.map(\.precision), recall: r.metrics.map(\.recall), tokens: r.tokens, cost: r.cost,
                answers: r.answers.count == matrix.count ? r.answers : nil, turns: r.turns.count == matrix.count ? r.turns : nil)
        }
        rows.append(replay("best_fixed", "best fixed on valid (action \(bestFixedAction): \(describe(bestFixedAction)))", router: false,
                           Array(repeating: bestFixedAction, count: matrix.count)))
        rows.append(replay("oracle", "oracle (best action per question)", router: false, matrix.oracleActions))
        func expectation(_ m: [[Double]]) -> [Double] { m.map { $0.reduce(0, +) / Double($0.count) } }
        func expectation(_ m: [[Double?]]) -> [Double?] { m.map { r in r.contains(where: { $0 == nil }) ? nil : r.reduce(0) { $0 + $1! } / Double(r.count) } }
        rows.append(Row(name: "random", label: "random routing (expectation)", isRouter: false, actions: nil, f1: expectation(matrix.f1),
                        em: expectation(matrix.em), precision: expectation(matrix.precision), recall: expectation(matrix.recall),
                        tokens: expectation(matrix.tokens), cost: expectation(matrix.cost)))
        for a in space.indices {
            rows.append(replay("fixed_\(a)", "fixed action \(a) (\(describe(a)))", router: false, Array(repeating: a, count: matrix.count)))
        }
        let base = rows.first { $0.name == "best_fixed" }!, oracle = rows.first { $0.name == "oracle" }!
        let indices = Bootstrap.indices(count: matrix.count, resamples: resamples, seed: seed)
        resampled = indices
        for i in rows.indices {
            let diffs = zip(rows[i].f1, base.f1).map { $0 - $1 }
            rows[i].difference = Bootstrap.interval(diffs, indices: indices)
            rows[i].interval = Bootstrap.interval(rows[i].f1, indices: indices)
            let gap = oracle.meanF1 - base.meanF1
            rows[i].gapShare = gap > 1e-12 ? (rows[i].meanF1 - base.meanF1) / gap : nil
        }
        self.rows = rows
        comparisons = live.compactMap { run in
            guard let against = run.versus, let a = rows.first(where: { $0.name == run.name }), let b = rows.first(where: { $0.name == against }) else { return nil }
            return Comparison(row: run.name, against: against, difference: Bootstrap.interval(zip(a.f1, b.f1).map { $0 - $1 }, indices: indices))
        }
    }

    /// The question types present, sorted, with the questions of each.
    public var typeGroups: [(type: String, questions: [Int])] {
        var groups: [String: [Int]] = [:]
        for (q, t) in types.enumerated() { if let t { groups[t, default: []].append(q) } }
        return groups.keys.sorted().map { ($0, groups[$0]!) }
    }
}

/// The paired bootstrap: resample questions with replacement, the same resamples for every
/// compared row, and read the 2.5th and 97.5th percentiles of the mean difference (numpy's
/// default linear interpolation).
public enum Bootstrap {
    public struct Interval: Sendable, Equatable {
        public var mean: Double, low: Double, high: Double
    }

    /// The resamples: each a list of `count` question indices, stored flat as 32-bit numbers
    /// (10 000 resamples of RouterBench's 7 000 test prompts are 280 MB so, 560 MB as `Int`s).
    public struct Resamples: RandomAccessCollection, Sendable {
        public let count: Int, size: Int
        let flat: [Int32]
        public var startIndex: Int { 0 }
        public var endIndex: Int { count }
        public subscript(r: Int) -> ArraySlice<Int32> { flat[(r * size)..<((r + 1) * size)] }
    }

    /// `resamples` lists of `count` question indices, drawn from a seeded generator.
    public static func indices(count: Int, resamples: Int, seed: UInt64) -> Resamples {
        guard count > 0 else { return Resamples(count: 0, size: 0, flat: []) }
        var rng = SeededRandom(seed: seed)
        var flat = [Int32](repeating: 0, count: resamples * count)
        for i in flat.indices { flat[i] = Int32(rng.next(upperBound: UInt64(count))) }
        return Resamples(count: resamples, size: count, flat: flat)
    }

    /// The mean of `values` and its percentile interval over the resamples (each resample's
    /// mean summed in its indices' order).
    public static func interval(_ values: [Double], indices: Resamples, confidence: Double = 0.95) -> Interval {
        let mean = values.isEmpty ? 0 : values.reduce(0, +) / Double(values.count)
        guard !indices.isEmpty else { return Interval(mean: mean, low: mean, high: mean) }
        precondition(values.count == indices.size, "\(values.count) values for resamples of \(indices.size)")
        let size = indices.size
        var means = [Double](repeating: 0, count: indices.count)
        values.withUnsafeBufferPointer { v in
            indices.flat.withUnsafeBufferPointer { idx in
                for r in 0..<indices.count {
                    var s = 0.0
                    for j in (r * size)..<((r + 1) * size) { s += v[Int(idx[j])] }
                    means[r] = s / Double(size)
                }
            }
        }
        means.sort()
        let tail = (1 - confidence) / 2
        return Interval(mean: mean, low: percentile(means, tail), high: percentile(means, 1 - tail))
    }

    /// numpy.percentile's default (linear) on sorted values; `p` in 0...1.
    public static func percentile(_ sorted: [Double], _ p: Double) -> Double {
        let h = Double(sorted.count - 1) * p
        let lo = Int(h.rounded(.down)), hi = min(lo + 1, sorted.count - 1)
        return sorted[lo] + (h - Double(lo)) * (sorted[hi] - sorted[lo])
    }
}
