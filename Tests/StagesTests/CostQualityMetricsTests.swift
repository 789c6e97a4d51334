import Foundation
import XCTest
import Pipeline
import TestSupport
@testable import Stages

/// AIQ (RouterBench), APGR and CPT (RouteLLM) on small cases computed by hand, the RouteLLM
/// pair against numpy (its `np.trapz` and `np.interp`), and the curves `evaluate` draws.
final class CostQualityMetricsTests: XCTestCase {
    typealias P = CostQualityMetrics.Point

    func testAIQIsTheAreaUnderTheNonDecreasingConvexHull() {
        // Upper hull (0,.2) (1,.5) (3,.9): (2,.4) lies under it. Area .35 + 1.4 over a range of 3.
        let points = [P(cost: 0, quality: 0.2), P(cost: 1, quality: 0.5), P(cost: 2, quality: 0.4), P(cost: 3, quality: 0.9)]
        XCTAssertEqual(CostQualityMetrics.hull(points), [points[0], points[1], points[3]])
        XCTAssertEqual(CostQualityMetrics.aiq(points)!, 1.75 / 3, accuracy: 1e-12)
        // Past the best point quality stays at its best: (0,.2) (1,.9), then .9 up to cost 2.
        let falling = [P(cost: 0, quality: 0.2), P(cost: 1, quality: 0.9), P(cost: 2, quality: 0.5)]
        XCTAssertEqual(CostQualityMetrics.aiq(falling)!, (0.55 + 0.9) / 2, accuracy: 1e-12)
        // Two qualities at one cost: the better counts; one cost only: its best quality.
        XCTAssertEqual(CostQualityMetrics.aiq([P(cost: 0, quality: 0.1), P(cost: 0, quality: 0.3), P(cost: 2, quality: 0.3)])!, 0.3, accuracy: 1e-12)
        XCTAssertEqual(CostQualityMetrics.aiq([P(cost: 1, quality: 0.4), P(cost: 1, quality: 0.6)])!, 0.6, accuracy: 1e-12)
        XCTAssertNil(CostQualityMetrics.aiq([]))
    }

    func testAPGRAndCPTByHand() {
        // Shares 0, .5, 1 with F1 .4, .7, .8; weak .4, strong .8. Area .275 + .375 = .65.
        let curve = [P(cost: 0, quality: 0.4), P(cost: 0.5, quality: 0.7), P(cost: 1, quality: 0.8)]
        XCTAssertEqual(CostQualityMetrics.apgr(curve, weak: 0.4, strong: 0.8)!, (0.65 - 0.4) / 0.4, accuracy: 1e-12)
        XCTAssertEqual(CostQualityMetrics.cpt(curve, weak: 0.4, strong: 0.8, share: 0.5)!, 0.5 * 0.2 / 0.3, accuracy: 1e-12)
        XCTAssertEqual(CostQualityMetrics.cpt(curve, weak: 0.4, strong: 0.8, share: 0.8)!, 0.5 + 0.5 * 0.02 / 0.1, accuracy: 1e-12)
        // Random routing's straight line recovers the gap in proportion: APGR 1/2, CPT(x) = x.
        let line = (0...10).map { P(cost: Double($0) / 10, quality: 0.4 + 0.04 * Double($0)) }
        XCTAssertEqual(CostQualityMetrics.apgr(line, weak: 0.4, strong: 0.8)!, 0.5, accuracy: 1e-12)
        XCTAssertEqual(CostQualityMetrics.cpt(line, weak: 0.4, strong: 0.8, share: 0.8)!, 0.8, accuracy: 1e-12)
        XCTAssertNil(CostQualityMetrics.apgr(line, weak: 0.5, strong: 0.5), "no gap to recover")
        XCTAssertEqual(CostQualityMetrics.cpt([P(cost: 0, quality: 0.4), P(cost: 1, quality: 0.5)], weak: 0.4, strong: 0.8, share: 0.5), 1, "never reached")
    }

    func testTheRouteLLMPairMatchesNumpy() throws {
        // Increasing curves (as a router's are on average): numpy's trapz and interp, as RouteLLM computes them.
        var rng = SeededRandom(seed: 5)
        for _ in 0..<5 {
            var q = 0.3, curve: [P] = []
            for i in 0...10 { q += Double(rng.next(upperBound: UInt64(100))) / 2000; curve.append(P(cost: Double(i) / 10, quality: q)) }
            let weak = curve[0].quality - 0.01, strong = curve[10].quality + 0.02
            let script = """
                import json, sys, numpy as np
                c = json.loads(sys.argv[1]); weak, strong = float(sys.argv[2]), float(sys.argv[3])
                x, y = np.array([p[0] for p in c]), np.array([p[1] for p in c])
                auc = np.trapz(y, x) if hasattr(np, "trapz") else np.trapezoid(y, x)
                span = x[-1] - x[0]
                apgr = (auc - weak * span) / ((strong - weak) * span)
                cpt = [float(np.interp(weak + s * (strong - weak), y, x)) for s in (0.5, 0.8)]
                print(json.dumps([apgr] + cpt))
                """
            let arg = "[" + curve.map { "[\($0.cost), \($0.quality)]" }.joined(separator: ",") + "]"
            let out = try Python.run(script, arguments: [arg, "\(weak)", "\(strong)"], requiring: ["numpy"])
            let v = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(out.stdout.utf8)) as? [Double])
            XCTAssertEqual(CostQualityMetrics.apgr(curve, weak: weak, strong: strong)!, v[0], accuracy: 1e-9)
            XCTAssertEqual(CostQualityMetrics.cpt(curve, weak: weak, strong: strong, share: 0.5)!, v[1], accuracy: 1e-9)
            XCTAssertEqual(CostQualityMetrics.cpt(curve, weak: weak, strong: strong, share: 0.8)!, v[2], accuracy: 1e-9)
        }
    }

    /// Two actions, a cheap weak one (0) and a dear strong one (1): λ = 0 routes as the router
    /// does, λ = ∞ takes the cheap one everywhere, and the strong-share curve runs from the weak
    /// action's F1 to the strong one's, through the router's ranking.
    func testEvaluateTracesEachRoutersCurve() {
        let space = ActionSpace(candidates: 2, roles: ["model"])
        let f1: [[Double]] = [[1, 1], [0, 1], [0, 1], [0, 0]]
        let cost: [[Double?]] = f1.map { _ in [1, 10] }
        let m = ScoreMatrix(space: space, questions: ["a", "b", "c", "d"], f1: f1, cost: cost)
        // The router prefers the strong action on b and c, most on c.
        let decisions = [[0.9, 0.1], [0.4, 0.6], [0.1, 0.9], [0.8, 0.2]].map { RouteDecision(action: $0[1] > $0[0] ? 1 : 0, distribution: $0) }
        var e = Evaluation(matrix: m, types: [nil, nil, nil, nil], bestFixedAction: 1, routes: [("r", "test", decisions)], resamples: 200, seed: 3)
        e.addCostCurves(routes: [("r", "test", decisions)], valid: m)
        let c = e.curves[0]
        XCTAssertEqual(c.points.first!.lambda, 0)
        XCTAssertEqual(c.points.first!.f1.mean, 0.75, "λ 0: the router's own choices, b and c strong")
        XCTAssertEqual(c.points.first!.cost, (1 + 10 + 10 + 1) / 4)
        XCTAssertTrue(c.points.last!.lambda.isInfinite)
        XCTAssertEqual(c.points.last!.f1.mean, 0.25, "λ ∞: the weak action everywhere")
        XCTAssertEqual(c.points.last!.cost, 1)
        XCTAssertEqual(c.strongShare.map(\.cost), (0...10).map { Double($0) / 10 })
        XCTAssertEqual(c.strongShare.first!.quality, 0.25)
        XCTAssertEqual(c.strongShare.last!.quality, 0.75)
        XCTAssertEqual(c.strongShare[3].quality, 0.5, "30% of 4 questions: 1 question to strong, c (its best bet)")
        XCTAssertEqual(c.strongShare[5].quality, 0.75, "2 questions: c and b")
        XCTAssertEqual(c.apgr!, CostQualityMetrics.apgr(c.strongShare, weak: 0.25, strong: 0.75)!, accuracy: 1e-12)
        XCTAssertGreaterThan(c.apgr!, 0.5, "a router that ranks well beats random routing's 1/2")
        XCTAssertEqual(c.cpt50!, CostQualityMetrics.cpt(c.strongShare, weak: 0.25, strong: 0.75, share: 0.5)!, accuracy: 1e-12)
        XCTAssertNotNil(c.aiq)
        let svg = e.costCurvesSVG!
        XCTAssertTrue(svg.contains(">r<") && svg.contains(">oracle<") && svg.contains(">fixed_1<"), svg)
        XCTAssertTrue(svg.contains("class=\"band\""))
        XCTAssertTrue(e.summaryText.contains("APGR"), e.summaryText)
        XCTAssertEqual(c.strongShareIntervals.count, 11)
        for (p, i) in zip(c.strongShare, c.strongShareIntervals) {
            XCTAssertEqual(i.mean, p.quality, accuracy: 1e-12)
            XCTAssertTrue(i.low <= p.quality && p.quality <= i.high, "\(i)")
        }
        XCTAssertLessThan(c.strongShareIntervals[0].low, c.strongShareIntervals[0].high, "4 questions, F1 1, 0, 0, 0: resamples differ")
        let share = e.strongShareSVG!
        XCTAssertTrue(share.contains("random (APGR 0.5)") && share.contains("class=\"band\""), share)
    }
}
