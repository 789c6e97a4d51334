#if canImport(Glibc)
import Glibc
#endif
public import Pipeline

/// Cost-aware routing, evaluated: each router routes by maximising score − λ·cost, where the
/// score is its own per-action estimate (the distribution it routes with: kNN's neighbours'
/// F1, the logistic router's probabilities, the SFT router's distribution) and the cost each
/// action's mean on the valid table; as λ (willingness to pay: F1 per unit of cost) sweeps from
/// 0 (quality alone) to where only the cheapest action is worth it, the router traces a
/// quality–cost curve on the split (each point's F1 with its bootstrap 95% interval), and AIQ
/// summarises it. With two actions (a weak and a strong candidate) the router also traces the
/// curve RouteLLM draws: quality against the share of questions sent to the strong one, the
/// router's preference for it ranking the questions; APGR and CPT(50%), CPT(80%) summarise it.
public struct CostCurve: Sendable {
    public struct Point: Sendable {
        public var lambda: Double
        public var cost: Double
        public var f1: Bootstrap.Interval
    }
    public var row: String
    public var points: [Point]
    public var aiq: Double?
    /// Two actions: (share of strong calls, mean F1) at shares 0, 0.1, ..., 1, and each
    /// point's F1 interval (bootstrap 95%, the evaluation's resamples).
    public var strongShare: [CostQualityMetrics.Point] = []
    public var strongShareIntervals: [Bootstrap.Interval] = []
    public var apgr: Double?, cpt50: Double?, cpt80: Double?

    /// The λ grid: 0, then 40 values spaced by ratio from 10⁻³ to 10³ per unit of the valid
    /// table's cost spread (scores lie in [0, 1]), then ∞ (the cheapest action by estimate).
    static func lambdas(costs: [Double]) -> [Double] {
        let spread = max((costs.max() ?? 1) - (costs.min() ?? 0), 1e-12)
        return [0] + (0..<40).map { i in pow(10, -3 + 6 * Double(i) / 39) / spread } + [.infinity]
    }

    /// Argmax over actions of score − λ·cost (λ = ∞: the cheapest, ties by score, then index).
    static func choose(_ score: [Double], cost: [Double], lambda: Double) -> Int {
        var best = 0
        for a in score.indices.dropFirst() {
            let better: Bool
            if lambda.isInfinite { better = (cost[a], -score[a]) < (cost[best], -score[best]) }
            else { better = score[a] - lambda * cost[a] > score[best] - lambda * cost[best] }
            if better { best = a }
        }
        return best
    }
}

extension Evaluation {
    /// What a point of the plane costs per question: the samples' cost where every cell has
    /// one, else tokens (as the cost–quality plane).
    static func costMatrix(_ m: ScoreMatrix) -> [[Double]]? {
        if m.cost.allSatisfy({ $0.allSatisfy { $0 != nil } }) { return m.cost.map { $0.map { $0! } } }
        if m.tokens.allSatisfy({ $0.allSatisfy { $0 != nil } }) { return m.tokens.map { $0.map { $0! } } }
        return nil
    }

    /// The curves of `routes` (decisions on this evaluation's questions), λ priced by `valid`'s
    /// mean cost per action; none when either table lacks costs (and tokens).
    public mutating func addCostCurves(routes: [(name: String, label: String, decisions: [RouteDecision])], valid: ScoreMatrix) {
        guard let cost = Evaluation.costMatrix(matrix), let validCost = Evaluation.costMatrix(valid), !matrix.questions.isEmpty else { return }
        let estimate = matrix.space.indices.map { a in validCost.map { $0[a] }.reduce(0, +) / Double(max(1, validCost.count)) }
        let indices = resampled
        let n = Double(matrix.count)
        // Two actions: the strong one does better on the split's table (RouteLLM's strong model).
        let fixed = matrix.space.indices.map { a in matrix.f1.map { $0[a] }.reduce(0, +) / n }
        let strong = fixed.count == 2 ? (fixed[1] > fixed[0] ? 1 : 0) : nil
        curves = routes.map { route in
            let scores = route.decisions.map(\.distribution)
            var points: [CostCurve.Point] = []
            var intervals: [[Int]: Bootstrap.Interval] = [:]  // neighbouring λ often choose alike
            for lambda in CostCurve.lambdas(costs: estimate) {
                let chosen = scores.map { CostCurve.choose($0, cost: estimate, lambda: lambda) }
                let f1 = zip(matrix.f1, chosen).map { $0[$1] }
                let c = zip(cost, chosen).map { $0[$1] }.reduce(0, +) / n
                let interval = intervals[chosen] ?? Bootstrap.interval(f1, indices: indices)
                intervals[chosen] = interval
                points.append(CostCurve.Point(lambda: lambda, cost: c, f1: interval))
            }
            var curve = CostCurve(row: route.name, points: points,
                                  aiq: CostQualityMetrics.aiq(points.map { CostQualityMetrics.Point(cost: $0.cost, quality: $0.f1.mean) }))
            if let strong {
                // Questions ranked by the router's preference for the strong action (stable).
                let order = scores.indices.sorted { (scores[$1][strong] - scores[$1][1 - strong], $0) < (scores[$0][strong] - scores[$0][1 - strong], $1) }
                for i in 0...10 {
                    let k = Int((Double(i) / 10 * n).rounded())
                    let toStrong = Set(order.prefix(k))
                    let f1 = matrix.f1.indices.map { q in matrix.f1[q][toStrong.contains(q) ? strong : 1 - strong] }
                    curve.strongShare.append(CostQualityMetrics.Point(cost: Double(i) / 10, quality: f1.reduce(0, +) / n))
                    curve.strongShareIntervals.append(Bootstrap.interval(f1, indices: indices))
                }
                curve.apgr = CostQualityMetrics.apgr(curve.strongShare, weak: fixed[1 - strong], strong: fixed[strong])
                curve.cpt50 = CostQualityMetrics.cpt(curve.strongShare, weak: fixed[1 - strong], strong: fixed[strong], share: 0.5)
                curve.cpt80 = CostQualityMetrics.cpt(curve.strongShare, weak: fixed[1 - strong], strong: fixed[strong], share: 0.8)
            }
            return curve
        }
    }

    /// The curves as JSON (results.json's "curves").
    var curvesJSON: JSONValue {
        func num(_ x: Double?) -> JSONValue { x.map { $0.isFinite ? .number($0) : .string("inf") } ?? .null }
        return .array(curves.map { c in
            .object([("row", .string(c.row)), ("aiq", num(c.aiq)), ("apgr", num(c.apgr)), ("cpt50", num(c.cpt50)), ("cpt80", num(c.cpt80)),
                     ("points", .array(c.points.map { p in
                         .object([("lambda", num(p.lambda)), ("cost", .number(p.cost)), ("f1", .number(p.f1.mean)), ("low", .number(p.f1.low)), ("high", .number(p.f1.high))])
                     })),
                     ("strong_share", .array(zip(c.strongShare, c.strongShareIntervals).map {
                         .object([("share", .number($0.cost)), ("f1", .number($0.quality)), ("low", .number($1.low)), ("high", .number($1.high))])
                     }))])
        })
    }

    /// With two actions: each router's F1 against its share of calls to the strong candidate,
    /// with bands, and random routing's straight line from the weak model to the strong one.
    var strongShareSVG: String? {
        let drawn = curves.filter { !$0.strongShare.isEmpty }
        guard let first = drawn.first else { return nil }
        var plot = SVGPlot(title: "Quality against the share of calls to the strong model (RouteLLM)",
                           xLabel: "share of questions sent to the strong model", yLabel: "mean F1", series: [])
        let x = { (v: Double) in Format.fixed(v, 1) }
        for c in drawn {
            plot.series.append((c.row + (c.apgr.map { " (APGR \(Format.fixed($0, 3)))" } ?? ""), c.strongShare.map { (x($0.cost), $0.quality) }))
            plot.bands[plot.series.count - 1] = zip(c.strongShare, c.strongShareIntervals).map { (x($0.cost), $1.low, $1.high) }
        }
        plot.series.append(("random (APGR 0.5)", [(x(0), first.strongShare.first!.quality), (x(1), first.strongShare.last!.quality)]))
        return plot.svg
    }

    /// The λ curves of every router on one plane, each with its band, beside the fixed actions
    /// and the oracle (points).
    var costCurvesSVG: String? {
        guard !curves.isEmpty, let cost = Evaluation.costMatrix(matrix) else { return nil }
        let useCost = matrix.cost.allSatisfy { $0.allSatisfy { $0 != nil } }
        var plot = SVGPlot(title: "Quality and cost as the routers trade them (score − λ·cost)",
                           xLabel: useCost ? "cost per question (USD)" : "tokens per question (no prices in the model resources)",
                           yLabel: "mean F1", series: [])
        let x = { (v: Double) in Format.fixed(v, useCost ? 8 : 2) }
        for c in curves {
            var seen = Set<String>()
            let pts = c.points.filter { seen.insert(x($0.cost) + "/" + Format.fixed($0.f1.mean, 6)).inserted }
            plot.series.append((c.row, pts.map { (x($0.cost), $0.f1.mean) }))
            plot.bands[plot.series.count - 1] = pts.map { (x($0.cost), $0.f1.low, $0.f1.high) }
        }
        let n = Double(matrix.count)
        for a in matrix.space.indices {
            plot.series.append(("fixed_\(a)", [(x(cost.map { $0[a] }.reduce(0, +) / n), matrix.f1.map { $0[a] }.reduce(0, +) / n)]))
        }
        let oracle = matrix.oracleActions
        plot.series.append(("oracle", [(x(zip(cost, oracle).map { $0[$1] }.reduce(0, +) / n), zip(matrix.f1, oracle).map { $0[$1] }.reduce(0, +) / n)]))
        return plot.svg
    }
}
