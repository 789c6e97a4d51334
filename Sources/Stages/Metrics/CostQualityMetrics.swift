/// The routing field's summaries of a router's quality–cost curve (a router run at several
/// settings of its cost trade-off, each a point: what it spent, how well it did).
///
/// - **APGR** and **CPT** (RouteLLM: Ong et al., 2024) for two candidates, a strong and a weak
///   one: the curve is quality against the share of calls to the strong model, in [0, 1].
///   PGR at a point is (quality − weak) / (strong − weak), the share of the gap recovered;
///   APGR is the area under the curve less the weak model's, over the strong model's less the
///   weak's, by the trapezoid rule over the points (RouteLLM's `np.trapz` over its thresholds);
///   CPT(x) is the share of strong calls at which the curve, linear between its points, first
///   reaches weak + x·(strong − weak) (1 when it never does).
/// - **AIQ** (RouterBench: Hu et al., 2024) for any number of candidates: the area under the
///   non-decreasing upper convex hull of the (cost, quality) points, over the cost range the
///   points span, divided by that range (a single cost: the best quality there).
public enum CostQualityMetrics {
    public struct Point: Sendable, Equatable {
        public var cost: Double
        public var quality: Double
        public init(cost: Double, quality: Double) { self.cost = cost; self.quality = quality }
    }

    /// The trapezoid rule over `points` sorted by cost.
    static func area(_ points: [Point]) -> Double {
        let p = points.sorted { ($0.cost, $0.quality) < ($1.cost, $1.quality) }
        return zip(p, p.dropFirst()).reduce(0) { $0 + ($1.1.cost - $1.0.cost) * ($1.0.quality + $1.1.quality) / 2 }
    }

    /// APGR of a curve whose costs are strong-call shares; nil when strong and weak do equally
    /// well (no gap to recover) or the points span no cost.
    public static func apgr(_ curve: [Point], weak: Double, strong: Double) -> Double? {
        guard let lo = curve.map(\.cost).min(), let hi = curve.map(\.cost).max(), hi > lo, abs(strong - weak) > 1e-12 else { return nil }
        let span = hi - lo
        return (area(curve) - weak * span) / ((strong - weak) * span)
    }

    /// CPT(`share`): the least strong-call share at which the curve recovers `share` of the gap.
    public static func cpt(_ curve: [Point], weak: Double, strong: Double, share: Double) -> Double? {
        guard abs(strong - weak) > 1e-12, !curve.isEmpty else { return nil }
        let target = weak + share * (strong - weak)
        let p = curve.sorted { ($0.cost, $0.quality) < ($1.cost, $1.quality) }
        if p[0].quality >= target { return p[0].cost }
        for (a, b) in zip(p, p.dropFirst()) where b.quality >= target {
            return a.cost + (target - a.quality) / (b.quality - a.quality) * (b.cost - a.cost)
        }
        return 1
    }

    /// The non-decreasing upper convex hull of `points`: from the cheapest point, the upper
    /// hull's vertices up to its best quality (quality never falls as cost grows).
    public static func hull(_ points: [Point]) -> [Point] {
        // The best quality at each cost, by cost.
        var best: [Point] = []
        for p in points.sorted(by: { ($0.cost, -$0.quality) < ($1.cost, -$1.quality) }) where best.last?.cost != p.cost { best.append(p) }
        var upper: [Point] = []  // Andrew's monotone chain, upper part
        for p in best {
            while upper.count >= 2 {
                let a = upper[upper.count - 2], b = upper[upper.count - 1]
                let cross = (b.cost - a.cost) * (p.quality - a.quality) - (b.quality - a.quality) * (p.cost - a.cost)
                if cross >= 0 { upper.removeLast() } else { break }
            }
            upper.append(p)
        }
        // Non-decreasing: keep it up to its highest point; beyond, quality stays there.
        guard let top = upper.indices.max(by: { upper[$0].quality < upper[$1].quality || (upper[$0].quality == upper[$1].quality && $0 > $1) }) else { return [] }
        return Array(upper[...top])
    }

    /// AIQ of a (cost, quality) curve.
    public static func aiq(_ points: [Point]) -> Double? {
        guard let lo = points.map(\.cost).min(), let hi = points.map(\.cost).max() else { return nil }
        let h = hull(points)
        guard hi > lo else { return h.map(\.quality).max() }
        // Past the hull's last (best) point, quality stays at its best up to the range's end.
        let extended = h + (h.last!.cost < hi ? [Point(cost: hi, quality: h.last!.quality)] : [])
        return area(extended) / (hi - lo)
    }
}
