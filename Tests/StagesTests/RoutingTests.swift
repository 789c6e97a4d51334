import Foundation
import XCTest
import Pipeline
@testable import Stages
import LLM
import TestSupport

/// Routers learned from score tables, on constructed tables whose right answer is known, and
/// the evaluation's figures and bootstrap (against numpy, with the same resamples).
final class RoutingTests: XCTestCase {
    let space = ActionSpace()

    /// Two kinds of question: "near a" ones (embedding around (1, 0)) are answered only by
    /// action 3, "near b" ones (around (0, 1)) only by action 0; action 1 is mediocre on both.
    func world(_ n: Int, offset: Int = 0) -> (ScoreMatrix, [RoutingQuestion], [[Float]]) {
        var questions: [RoutingQuestion] = [], f1: [[Double]] = [], embeddings: [[Float]] = []
        for i in 0..<n {
            let a = i % 3 != 0  // two a's for every b: best fixed is 3
            let jitter = Float((i + offset) % 7) * 0.02
            questions.append(RoutingQuestion("question \(i + offset)", type: a ? "bridge" : "comparison"))
            f1.append(a ? [0, 0.4, 0.1, 1] : [1, 0.4, 0.1, 0])
            let e: [Float] = a ? [1, jitter] : [jitter, 1]
            let norm = (e[0] * e[0] + e[1] * e[1]).squareRoot()
            embeddings.append(e.map { $0 / norm })
        }
        return (ScoreMatrix(space: space, questions: questions.map(\.text), f1: f1), questions, embeddings)
    }

    func testEachTableRouterFindsTheKnownAnswer() throws {
        let (train, trainQuestions, trainEmbeddings) = world(30)
        let (test, testQuestions, testEmbeddings) = world(12, offset: 100)
        let oracle = test.oracleActions
        XCTAssertEqual(train.bestFixedAction, 3)
        for method in TableRouter.Method.allCases {
            let router = try TableRouter(method: method, matrix: train, questions: trainQuestions,
                                         embeddings: method.needsEmbeddings ? trainEmbeddings : nil)
            let decisions = try router.route(testQuestions, embeddings: method.needsEmbeddings ? testEmbeddings : nil)
            if method == .bestFixed {
                XCTAssertEqual(decisions.map(\.action), Array(repeating: 3, count: 12))
            } else if method == .random {
                XCTAssertEqual(decisions.map(\.distribution), Array(repeating: [0.25, 0.25, 0.25, 0.25], count: 12))
                XCTAssertGreaterThan(Set(decisions.map(\.action)).count, 1, "draws differ by question")
                XCTAssertEqual(try router.route(Array(testQuestions.reversed()), embeddings: nil).map(\.action), decisions.map(\.action).reversed(),
                               "a question's draw does not depend on the others")
            } else {
                XCTAssertEqual(decisions.map(\.action), oracle, "\(method.rawValue)")
            }
            if method == .perType {  // its distribution: the type's mean F1 per action, normalised (its scores for a cost trade-off)
                let bridge = try XCTUnwrap(decisions.indices.first { testQuestions[$0].type == "bridge" })
                for (got, want) in zip(decisions[bridge].distribution, [0, 0.4, 0.1, 1].map { $0 / 1.5 }) { XCTAssertEqual(got, want, accuracy: 1e-12) }
                let unseen = try router.route([RoutingQuestion("unseen", type: "other")], embeddings: nil)[0].distribution
                for (got, want) in zip(unseen, train.meanF1.map { $0 / train.meanF1.reduce(0, +) }) {
                    XCTAssertEqual(got, want, accuracy: 1e-12, "a type it has not seen: the table's means")
                }
            }
            for d in decisions { XCTAssertEqual(d.distribution.reduce(0, +), 1, accuracy: 1e-6, "\(method.rawValue)") }
            // Saved and loaded, it routes the same.
            let dir = NSTemporaryDirectory() + "router-\(UUID().uuidString)"
            try FileIO.makeDirectory(dir)
            try router.save(directory: dir)
            let loaded = try RouterArtifacts.load(directory: dir, engine: CPUEngine())
            XCTAssertEqual(try loaded.route(testQuestions, embeddings: method.needsEmbeddings ? testEmbeddings : nil), decisions, "\(method.rawValue)")
        }
    }

    func testRoutersSayWhatTheyLack() throws {
        let (train, questions, _) = world(6)
        XCTAssertThrowsError(try TableRouter(method: .knn, matrix: train, questions: questions, embeddings: nil)) { e in
            XCTAssertEqual("\(e)", "knn needs an embedding of every question")
        }
        let untyped = questions.map { RoutingQuestion($0.text) }
        XCTAssertThrowsError(try TableRouter(method: .perType, matrix: train, questions: untyped, embeddings: nil)) { e in
            XCTAssertTrue("\(e)".contains("per-type needs question types"), "\(e)")
        }
        let dir = NSTemporaryDirectory() + "router-\(UUID().uuidString)"
        try FileIO.makeDirectory(dir)
        try FileIO.writeAtomically(#"{"kind": "tabel", "space": {"candidates": 2, "roles": ["teacher", "student"]}}"#, to: dir + "/router.json")
        XCTAssertThrowsError(try RouterArtifacts.load(directory: dir, engine: CPUEngine())) { e in XCTAssertTrue("\(e)".contains("unknown router kind 'tabel'"), "\(e)") }
    }

    func testAScoreTableReadsAsAMatrixOfCompleteQuestions() throws {
        let dir = NSTemporaryDirectory() + "scores-\(UUID().uuidString)"
        var lines = ""
        for (q, f1s) in [("q1", [0.1, 0.2, 0.3, 0.4]), ("q2", [1.0, 0, 0, 0])] {
            for (a, f) in f1s.enumerated() {
                lines += #"{"action": \#(a), "em": 0, "f1": \#(f), "precision": \#(f), "question": "\#(q)", "question_index": 0, "recall": \#(f), "student": \#(a % 2), "teacher": \#(a / 2), "tokens": \#(10 * a)}"# + "\n"
            }
        }
        lines += #"{"action": 0, "em": 0, "f1": 1, "precision": 1, "question": "q3", "question_index": 2, "recall": 1, "student": 0, "teacher": 0}"# + "\n"
        try FileIO.writeAtomically(lines, to: dir + "/scores.jsonl")
        let m = try ScoreMatrix(directory: dir)
        XCTAssertEqual(m.space, ActionSpace())
        XCTAssertEqual(m.questions, ["q1", "q2"], "q3 lacks actions")
        XCTAssertEqual(m.f1[0], [0.1, 0.2, 0.3, 0.4])
        XCTAssertEqual(m.tokens[0], [0, 10, 20, 30])
        XCTAssertEqual(m.oracleActions, [3, 0])
        XCTAssertEqual(m.bestFixedAction, 0, "0.55 beats 0.1, 0.15 and 0.2")
        // Rows with ids are grouped by id: one text, two ids, two questions.
        var keyed = ""
        for (id, f1s) in [("a", [1.0, 0, 0, 0]), ("b", [0.0, 0, 0, 1])] {
            for (a, f) in f1s.enumerated() {
                keyed += #"{"action": \#(a), "f1": \#(f), "id": "\#(id)", "question": "same", "student": \#(a % 2), "teacher": \#(a / 2)}"# + "\n"
            }
        }
        try FileIO.writeAtomically(keyed, to: dir + "/scores.jsonl")
        let byID = try ScoreMatrix(directory: dir)
        XCTAssertEqual(byID.space, ActionSpace(), "'id' is not a role")
        XCTAssertEqual(byID.questions, ["same", "same"])
        XCTAssertEqual(byID.oracleActions, [0, 3])
    }

    func testTheEvaluationsFigures() throws {
        let f1: [[Double]] = [[0, 1, 0, 0], [0.5, 0, 0, 1], [1, 0, 0, 0], [0.2, 0.2, 0.2, 0.2]]
        let m = ScoreMatrix(space: space, questions: ["a", "b", "c", "d"], f1: f1, cost: f1.map { _ in [1, 2, 3, 4] })
        let oracleRouter = m.oracleActions.map { RouteDecision.certain($0, of: space) }
        let e = Evaluation(matrix: m, types: ["x", "x", "y", nil], bestFixedAction: 0,
                           routes: [(name: "perfect", label: "always right", decisions: oracleRouter)], resamples: 2000, seed: 7)
        let row = { (name: String) in e.rows.first { $0.name == name }! }
        XCTAssertEqual(row("best_fixed").meanF1, 1.7 / 4, accuracy: 1e-12)
        XCTAssertEqual(row("oracle").meanF1, 3.2 / 4, accuracy: 1e-12)
        XCTAssertEqual(row("random").meanF1, (0.25 + 0.375 + 0.25 + 0.2) / 4, accuracy: 1e-12)
        XCTAssertEqual(row("perfect").gapShare!, 1, accuracy: 1e-12)
        XCTAssertEqual(row("best_fixed").gapShare!, 0, accuracy: 1e-12)
        XCTAssertEqual(row("perfect").meanCost!, (2 + 4 + 1 + 1) / 4, accuracy: 1e-12)
        XCTAssertEqual(row("perfect").difference.mean, 1.5 / 4, accuracy: 1e-12)
        XCTAssertGreaterThanOrEqual(row("perfect").difference.low, 0)
        XCTAssertEqual(e.typeGroups.map(\.type), ["x", "y"])
        XCTAssertEqual(row("perfect").meanF1(e.typeGroups[0].questions), 1)
        XCTAssertEqual(e.rows.map(\.name), ["perfect", "best_fixed", "oracle", "random", "fixed_0", "fixed_1", "fixed_2", "fixed_3"])
        // The oracle is where "perfect" is: one point, one label naming both; a legend; the
        // axis says the cost is tokens only when prices are missing (here they are given).
        let svg = e.costQualitySVG
        XCTAssertTrue(svg.contains(">perfect, oracle</text>"), svg)
        XCTAssertFalse(svg.contains(">perfect</text>"), svg)
        XCTAssertTrue(svg.contains(">router</text>") && svg.contains(">baseline</text>") && svg.contains(">Pareto frontier</text>"), svg)
        XCTAssertTrue(svg.contains("cost per question (USD)"), svg)
        // Each row's own F1 interval (same resamples), drawn as the error bar of its point.
        for r in e.rows {
            XCTAssertEqual(r.interval.mean, r.meanF1, accuracy: 1e-12)
            XCTAssertLessThanOrEqual(r.interval.low, r.meanF1 + 1e-12)
            XCTAssertGreaterThanOrEqual(r.interval.high, r.meanF1 - 1e-12)
        }
        let spread = e.rows.filter { $0.interval.high > $0.interval.low }
        XCTAssertFalse(spread.isEmpty)
        XCTAssertEqual(svg.components(separatedBy: "class=\"error-bar\"").count - 1, spread.count, svg)
        XCTAssertEqual(e.json["rows"]?.arrayValue?.first?["f1_interval"]?["low"]?.doubleValue, e.rows[0].interval.low)
        XCTAssertTrue(e.csv.hasPrefix("name,group,questions,f1_mean"))
        // The stage's figures: means, and each router's difference to best fixed (what a sweep
        // over seeds pools across replicates).
        let dir = NSTemporaryDirectory() + "figures-\(UUID().uuidString)"
        try FileIO.makeDirectory(dir)
        try FileIO.writeAtomically(e.json.canonical, to: dir + "/results.json")
        let figures = Dictionary(uniqueKeysWithValues: EvaluateStage.figures(directory: dir).map { ($0.name, $0.value) })
        XCTAssertEqual(figures["perfect_f1"]!, 3.2 / 4, accuracy: 1e-12)
        XCTAssertEqual(figures["perfect_vs_best_fixed_f1"]!, 1.5 / 4, accuracy: 1e-12)
        XCTAssertNil(figures["fixed_0_f1"], "the fixed actions are the table's, not figures")
        XCTAssertNil(figures["oracle_vs_best_fixed_f1"], "baselines have no difference figure")
    }

    /// The paired bootstrap's interval equals numpy's on the same resample indices.
    func testTheBootstrapMatchesNumpy() throws {
        let values = (0..<37).map { Double(($0 * 7919) % 101) / 100 - 0.3 }
        let indices = Bootstrap.indices(count: values.count, resamples: 500, seed: 11)
        let ours = Bootstrap.interval(values, indices: indices)
        let dir = NSTemporaryDirectory() + "boot-\(UUID().uuidString)"
        try FileIO.makeDirectory(dir)
        try FileIO.writeAtomically(JSONValue.object(["values": .array(values.map { .number($0) }),
                                                     "indices": .array(indices.map { .array($0.map { .number(Double($0)) }) })]).canonical,
                                   to: dir + "/b.json")
        let text = try Python.output("""
            import json, sys
            import numpy as np
            d = json.load(open(sys.argv[1]))
            v, idx = np.array(d["values"]), np.array(d["indices"], dtype=int)
            means = v[idx].mean(axis=1)
            print(json.dumps([float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))]))
            """, arguments: [dir + "/b.json"], requiring: ["numpy"])
        let numpy = try JSONParser.parse(text).arrayValue!.map { $0.doubleValue! }
        XCTAssertEqual(ours.low, numpy[0], accuracy: 1e-12)
        XCTAssertEqual(ours.high, numpy[1], accuracy: 1e-12)
        XCTAssertEqual(Set(indices.flatMap { $0 }).count, values.count, "every question is drawn")
    }

    /// Labels that would run past the picture's right edge are written to the left of their
    /// point; points at one place are drawn once.
    func testCostQualityLabelsStayInThePicture() {
        let marks = Evaluation.marks([(name: "rl_train_no_sharing+best_fixed", x: 600, y: 100, router: true),
                                      (name: "short", x: 100, y: 50, router: false), (name: "twin", x: 100.4, y: 50.2, router: true)], rightEdge: 610)
        XCTAssertTrue(marks.contains("text-anchor=\"end\">rl_train_no_sharing+best_fixed</text>"), marks)
        XCTAssertTrue(marks.contains("x=\"106.0\" y=\"44.0\">short, twin</text>"), marks)
        XCTAssertEqual(marks.components(separatedBy: "<circle").count - 1, 2, marks)
        XCTAssertTrue(marks.contains("fill=\"#c0392b\"/>\n<text x=\"106.0\""), "a place with a router is drawn as one: \(marks)")
    }
}
