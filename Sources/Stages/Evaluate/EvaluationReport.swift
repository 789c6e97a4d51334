public import JSON
public import Pipeline

/// The files of an evaluation: the table for terminals (`summary.txt`), `report.md`,
/// `results.csv`, `results.json`, `per_question.jsonl` and the cost–quality plane as SVG.
extension Evaluation {
    static func f(_ x: Double, _ digits: Int = 4) -> String { Format.fixed(x, digits) }

    /// "+0.0520 [+0.0210, +0.0830]"
    static func signed(_ x: Double) -> String { (x >= 0 ? "+" : "") + f(x) }
    static func interval(_ i: Bootstrap.Interval) -> String { "\(signed(i.mean)) [\(signed(i.low)), \(signed(i.high))]" }

    var header: String {
        "\(matrix.count) questions; best fixed chosen on valid: action \(bestFixedAction); paired bootstrap 95% intervals, \(resamples) resamples, seed \(seed)"
    }

    /// The comparison as a table for terminals (what `haps-pipe show` prints).
    public var summaryText: String {
        let width = max(12, rows.map(\.name.count).max() ?? 12)
        var lines = [header, "",
                     "name".padding(width) + "  F1 mean  EM mean  P mean   R mean   F1 sum   tokens/q  cost/q      gap share  F1 − best fixed [95% CI]"]
        for r in rows {
            lines.append(r.name.padding(width) + "  \(Evaluation.f(r.meanF1))   \(Evaluation.f(r.meanEM))   \(Evaluation.f(r.meanPrecision))   "
                         + "\(Evaluation.f(r.meanRecall))   \(Evaluation.f(r.f1Sum, 2).leftPadding(6))   "
                         + (r.meanTokens.map { Evaluation.f($0, 1) } ?? "-").leftPadding(8) + "  " + (r.meanCost.map { Evaluation.f($0, 6) } ?? "-").padding(10)
                         + "  " + (r.gapShare.map { Evaluation.f($0, 3) } ?? "-").leftPadding(9) + "  " + Evaluation.interval(r.difference))
        }
        let groups = typeGroups
        if !groups.isEmpty {
            lines.append("")
            lines.append("mean F1 by question type: " + groups.map { "\($0.type) (\($0.questions.count))" }.joined(separator: ", "))
            for r in rows {
                lines.append("  " + r.name.padding(width) + groups.map { "  " + Evaluation.f(r.meanF1($0.questions)) }.joined())
            }
        }
        if !comparisons.isEmpty {
            lines.append("")
            lines.append("HAPS against the router its training started from (F1, paired 95% CI):")
            for c in comparisons { lines.append("  \(c.row) − \(c.against): \(Evaluation.interval(c.difference))") }
        }
        if !curves.isEmpty {
            lines.append("")
            lines.append("cost-aware routing (score − λ·cost; cost_curves.svg): AIQ" + (curves.contains { $0.apgr != nil } ? ", and for two candidates APGR, CPT(50%), CPT(80%) (share of strong calls)" : ""))
            for c in curves {
                var line = "  " + c.row.padding(width) + "  AIQ " + (c.aiq.map { Evaluation.f($0) } ?? "-")
                if c.apgr != nil || c.cpt50 != nil {
                    line += "  APGR " + (c.apgr.map { Evaluation.f($0) } ?? "-") + "  CPT(50%) " + (c.cpt50.map { Evaluation.f($0, 3) } ?? "-")
                        + "  CPT(80%) " + (c.cpt80.map { Evaluation.f($0, 3) } ?? "-")
                }
                lines.append(line)
            }
        }
        lines.append("")
        for r in rows { lines.append("\(r.name): \(r.label)") }
        return lines.joined(separator: "\n") + "\n"
    }

    public var markdown: String {
        var out = "# Evaluation\n\n\(header).\n\n"
        out += "| name | what | F1 mean | EM mean | P mean | R mean | F1 sum | tokens/q | cost/q | gap share | F1 − best fixed [95% CI] |\n"
        out += "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |\n"
        for r in rows {
            out += "| \(r.name) | \(r.label) | \(Evaluation.f(r.meanF1)) | \(Evaluation.f(r.meanEM)) | \(Evaluation.f(r.meanPrecision)) | "
                + "\(Evaluation.f(r.meanRecall)) | \(Evaluation.f(r.f1Sum, 2)) | \(r.meanTokens.map { Evaluation.f($0, 1) } ?? "-") | "
                + "\(r.meanCost.map { Evaluation.f($0, 6) } ?? "-") | \(r.gapShare.map { Evaluation.f($0, 3) } ?? "-") | \(Evaluation.interval(r.difference)) |\n"
        }
        let groups = typeGroups
        if !groups.isEmpty {
            out += "\n## Mean F1 by question type\n\n| name | " + groups.map { "\($0.type) (\($0.questions.count))" }.joined(separator: " | ") + " |\n"
            out += "| --- |" + String(repeating: " ---: |", count: groups.count) + "\n"
            for r in rows { out += "| \(r.name) | " + groups.map { Evaluation.f(r.meanF1($0.questions)) }.joined(separator: " | ") + " |\n" }
        }
        if !comparisons.isEmpty {
            out += "\n## HAPS against the router its training started from\n\n| system | against | F1 difference [95% CI] |\n| --- | --- | --- |\n"
            for c in comparisons { out += "| \(c.row) | \(c.against) | \(Evaluation.interval(c.difference)) |\n" }
        }
        out += "\n*gap share*: (F1 − best fixed) / (oracle − best fixed), the share of the oracle's gain a router recovers. "
        out += "*Random* is the expectation over every action. The cost–quality plane is `cost_quality.svg`.\n"
        return out
    }

    /// One line per row and group ("all" and each question type).
    public var csv: String {
        var out = "name,group,questions,f1_mean,em_mean,precision_mean,recall_mean,f1_sum,tokens_mean,cost_mean,gap_share,diff_mean,diff_low,diff_high\n"
        let all = (type: "all", questions: Array(0..<matrix.count))
        for r in rows {
            for g in [all] + typeGroups {
                let sub = g.questions
                func m(_ v: [Double]) -> String { Evaluation.f(Row.mean(sub.map { v[$0] }), 6) }
                let isAll = g.type == "all"
                out += [r.name, g.type, String(sub.count), m(r.f1), m(r.em), m(r.precision), m(r.recall), Evaluation.f(sub.reduce(0) { $0 + r.f1[$1] }, 4),
                        (Row.meanKnown(sub.map { r.tokens[$0] }).map { Evaluation.f($0, 2) } ?? ""),
                        (Row.meanKnown(sub.map { r.cost[$0] }).map { Evaluation.f($0, 8) } ?? ""),
                        isAll ? (r.gapShare.map { Evaluation.f($0, 6) } ?? "") : "",
                        isAll ? Evaluation.f(r.difference.mean, 6) : "", isAll ? Evaluation.f(r.difference.low, 6) : "",
                        isAll ? Evaluation.f(r.difference.high, 6) : ""].joined(separator: ",") + "\n"
            }
        }
        return out
    }

    public var json: JSONValue {
        func num(_ x: Double?) -> JSONValue { x.map { .number($0) } ?? .null }
        return .object([
            ("questions", .number(Double(matrix.count))), ("best_fixed_action", .number(Double(bestFixedAction))),
            ("bootstrap", ["resamples": .number(Double(resamples)), "seed": .number(Double(seed)), "confidence": 0.95]),
            ("rows", .array(rows.map { r in
                .object([("name", .string(r.name)), ("label", .string(r.label)), ("router", .bool(r.isRouter)),
                         ("f1_mean", .number(r.meanF1)), ("em_mean", .number(r.meanEM)), ("precision_mean", .number(r.meanPrecision)),
                         ("recall_mean", .number(r.meanRecall)), ("f1_sum", .number(r.f1Sum)), ("tokens_mean", num(r.meanTokens)),
                         ("cost_mean", num(r.meanCost)), ("gap_share", num(r.gapShare)),
                         ("diff_vs_best_fixed", ["mean": .number(r.difference.mean), "low": .number(r.difference.low), "high": .number(r.difference.high)]),
                         ("f1_interval", ["mean": .number(r.interval.mean), "low": .number(r.interval.low), "high": .number(r.interval.high)]),
                         ("by_type", .object(typeGroups.map { ($0.type, JSONValue.number(r.meanF1($0.questions))) }))])
            })),
            ("curves", curvesJSON),
            ("comparisons", .array(comparisons.map { c in
                ["row": .string(c.row), "against": .string(c.against),
                 "difference": ["mean": .number(c.difference.mean), "low": .number(c.difference.low), "high": .number(c.difference.high)]]
            })),
        ])
    }

    /// Per question: its id and gold answer (when the questions are given), its type, and each
    /// row's action and F1 (and answer, for a row run live).
    public var perQuestionLines: String {
        matrix.questions.indices.map { q in
            var o: [(String, JSONValue)] = [("question_index", .number(Double(q))), ("question", .string(matrix.questions[q])),
                                            ("type", types[q].map(JSONValue.string) ?? .null)]
            if q < questionFacts.count, let facts = questionFacts[q] {
                o += [("id", .string(facts.id)), ("gold", facts.gold.map(JSONValue.string) ?? .null)]
            }
            for r in rows {
                o.append((r.name, .object([("action", r.actions.map { .number(Double($0[q])) } ?? .null), ("f1", .number(r.f1[q]))]
                                          + (r.answers.map { [("answer", .string($0[q]))] } ?? []))))
            }
            return JSONValue.object(o).canonical + "\n"
        }.joined()
    }

    /// The dialogues of the rows run live: a line per row and question (its action, answer and
    /// turns, each turn's reply without its prompt), so that what a live HAPS row did can be read.
    public var liveTranscriptLines: String {
        rows.compactMap { r -> String? in
            guard let answers = r.answers, let turns = r.turns, let actions = r.actions else { return nil }
            return matrix.questions.indices.map { q in
                JSONValue.object([("row", .string(r.name)), ("question_index", .number(Double(q))), ("action", .number(Double(actions[q]))),
                                  ("answer", .string(answers[q])), ("turns", turns[q])]).canonical + "\n"
            }.joined()
        }.joined()
    }

    /// Every row as a point of the cost–quality plane (cost per question, or tokens when the
    /// samples carry no cost) with its F1's bootstrap 95% interval as an error bar, the Pareto
    /// frontier drawn through the points no other beats.
    public var costQualitySVG: String {
        let useCost = rows.allSatisfy { $0.meanCost != nil }
        let points = rows.compactMap { r -> (String, Double, Double, Bool)? in
            guard let x = useCost ? r.meanCost : r.meanTokens else { return nil }
            return (r.name, x, r.meanF1, r.isRouter)
        }
        let bars = Dictionary(rows.map { ($0.name, $0.interval) }) { a, _ in a }
        let width = 640.0, height = 440.0, left = 70.0, right = 30.0, top = 40.0, bottom = 80.0
        guard !points.isEmpty else {
            return "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"640\" height=\"80\"><text x=\"20\" y=\"40\">no cost or token counts in the score table</text></svg>\n"
        }
        let lows = points.compactMap { bars[$0.0]?.low }, highs = points.compactMap { bars[$0.0]?.high }
        var (x0, x1) = (points.map(\.1).min()!, points.map(\.1).max()!), (y0, y1) = ((points.map(\.2) + lows).min()!, (points.map(\.2) + highs).max()!)
        if x1 - x0 < 1e-12 { x0 -= 1; x1 += 1 }
        if y1 - y0 < 1e-12 { y0 -= 0.05; y1 += 0.05 }
        let px = { (x: Double) in left + (x - x0) / (x1 - x0) * (width - left - right) }
        let py = { (y: Double) in height - bottom - (y - y0) / (y1 - y0) * (height - top - bottom) }
        // Pareto: sorted by cost, keep each point whose F1 beats every cheaper one.
        var frontier: [(String, Double, Double, Bool)] = []
        for p in points.sorted(by: { ($0.1, -$0.2) < ($1.1, -$1.2) }) where frontier.last.map({ p.2 > $0.2 }) ?? true { frontier.append(p) }
        var svg = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(width))\" height=\"\(Int(height))\" font-family=\"sans-serif\" font-size=\"11\">\n"
        svg += "<text x=\"\(Int(width / 2))\" y=\"20\" text-anchor=\"middle\" font-size=\"14\">Cost and quality of routers and baselines</text>\n"
        svg += "<line x1=\"\(left)\" y1=\"\(height - bottom)\" x2=\"\(width - right)\" y2=\"\(height - bottom)\" stroke=\"black\"/>\n"
        svg += "<line x1=\"\(left)\" y1=\"\(top)\" x2=\"\(left)\" y2=\"\(height - bottom)\" stroke=\"black\"/>\n"
        for i in 0...4 {
            let xv = x0 + (x1 - x0) * Double(i) / 4, yv = y0 + (y1 - y0) * Double(i) / 4
            svg += "<text x=\"\(Evaluation.f(px(xv), 1))\" y=\"\(height - bottom + 16)\" text-anchor=\"middle\">\(Evaluation.tick(xv, span: x1 - x0))</text>\n"
            svg += "<text x=\"\(left - 6)\" y=\"\(Evaluation.f(py(yv) + 4, 1))\" text-anchor=\"end\">\(Evaluation.f(yv, 3))</text>\n"
        }
        svg += "<text x=\"\(Int(width / 2))\" y=\"\(Int(height - 35))\" text-anchor=\"middle\">\(useCost ? "cost per question (USD)" : "tokens per question (no prices in the model resources)")</text>\n"
        svg += "<text x=\"18\" y=\"\(Int(height / 2))\" text-anchor=\"middle\" transform=\"rotate(-90 18 \(Int(height / 2)))\">mean F1</text>\n"
        svg += "<polyline fill=\"none\" stroke=\"#999\" stroke-dasharray=\"4 3\" points=\"" + frontier.map { "\(Evaluation.f(px($0.1), 1)),\(Evaluation.f(py($0.2), 1))" }.joined(separator: " ") + "\"/>\n"
        for p in points {  // error bars under the marks
            guard let b = bars[p.0], b.high > b.low else { continue }
            let x = Evaluation.f(px(p.1), 1)
            svg += "<line class=\"error-bar\" x1=\"\(x)\" y1=\"\(Evaluation.f(py(b.low), 1))\" x2=\"\(x)\" y2=\"\(Evaluation.f(py(b.high), 1))\" stroke=\"\(p.3 ? "#c0392b" : "#2c3e50")\" stroke-opacity=\"0.35\" stroke-width=\"1.5\"><title>\(SVGPlot.escape(p.0)): F1 \(Evaluation.f(b.mean)) [\(Evaluation.f(b.low)), \(Evaluation.f(b.high))]</title></line>\n"
        }
        svg += Evaluation.marks(points.map { (name: $0.0, x: px($0.1), y: py($0.2), router: $0.3) }, rightEdge: width - right)
        svg += Evaluation.legend(x: left, y: height - 12)
        return svg + "</svg>\n"
    }

    /// The points and their labels: points at the same place (to the pixel) drawn once, their
    /// names joined in one label; a label that would pass `rightEdge` written to the left of
    /// its point. A place holding a router is drawn as a router.
    static func marks(_ points: [(name: String, x: Double, y: Double, router: Bool)], rightEdge: Double) -> String {
        var places: [(x: Double, y: Double, names: [String], router: Bool)] = []
        for p in points {
            if let i = places.firstIndex(where: { ($0.x - p.x).magnitude < 1 && ($0.y - p.y).magnitude < 1 }) {
                places[i].names.append(p.name)
                places[i].router = places[i].router || p.router
            } else {
                places.append((p.x, p.y, [p.name], p.router))
            }
        }
        var svg = ""
        for place in places {
            let label = place.names.joined(separator: ", ")
            let fits = place.x + 6 + SVGPlot.textWidth(label) <= rightEdge
            svg += "<circle cx=\"\(f(place.x, 1))\" cy=\"\(f(place.y, 1))\" r=\"4\" fill=\"\(place.router ? "#c0392b" : "#2c3e50")\"/>\n"
            svg += "<text x=\"\(f(fits ? place.x + 6 : place.x - 6, 1))\" y=\"\(f(place.y - 6, 1))\"\(fits ? "" : " text-anchor=\"end\"")>\(SVGPlot.escape(label))</text>\n"
        }
        return svg
    }

    /// What the marks mean (routers, baselines, the Pareto frontier), in a row whose text sits on `y`.
    static func legend(x: Double, y: Double) -> String {
        var svg = "<g class=\"legend\">\n"
        for (i, (color, what)) in [("#c0392b", "router"), ("#2c3e50", "baseline")].enumerated() {
            let cx = x + 6 + Double(i) * 90
            svg += "<circle cx=\"\(f(cx, 1))\" cy=\"\(f(y - 4, 1))\" r=\"4\" fill=\"\(color)\"/><text x=\"\(f(cx + 10, 1))\" y=\"\(f(y, 1))\">\(what)</text>\n"
        }
        let lx = x + 180
        svg += "<line x1=\"\(f(lx, 1))\" y1=\"\(f(y - 4, 1))\" x2=\"\(f(lx + 14, 1))\" y2=\"\(f(y - 4, 1))\" stroke=\"#999\" stroke-dasharray=\"4 3\"/><text x=\"\(f(lx + 20, 1))\" y=\"\(f(y, 1))\">Pareto frontier</text>\n"
        let bx = lx + 130
        svg += "<line x1=\"\(f(bx + 4, 1))\" y1=\"\(f(y - 11, 1))\" x2=\"\(f(bx + 4, 1))\" y2=\"\(f(y + 3, 1))\" stroke=\"#2c3e50\" stroke-opacity=\"0.35\" stroke-width=\"1.5\"/><text x=\"\(f(bx + 12, 1))\" y=\"\(f(y, 1))\">F1's bootstrap 95% interval</text>\n"
        return svg + "</g>\n"
    }

    /// An axis label with as many decimals as the axis' span needs.
    static func tick(_ v: Double, span: Double) -> String {
        var digits = 0
        while digits < 8 && span * Double([1, 10, 100, 1_000, 10_000, 100_000, 1_000_000, 10_000_000, 100_000_000][digits]) < 10 { digits += 1 }
        return Format.fixed(v, digits)
    }

    /// Writes every file into `directory`.
    public func write(to directory: String) throws {
        try FileIO.writeAtomically(summaryText, to: directory + "/summary.txt")
        try FileIO.writeAtomically(markdown, to: directory + "/report.md")
        try FileIO.writeAtomically(csv, to: directory + "/results.csv")
        try FileIO.writeAtomically(json.pretty + "\n", to: directory + "/results.json")
        try FileIO.writeAtomically(perQuestionLines, to: directory + "/per_question.jsonl")
        if rows.contains(where: { $0.turns != nil }) { try FileIO.writeAtomically(liveTranscriptLines, to: directory + "/live_transcripts.jsonl") }
        try FileIO.writeAtomically(costQualitySVG, to: directory + "/cost_quality.svg")
        if let svg = costCurvesSVG { try FileIO.writeAtomically(svg, to: directory + "/cost_curves.svg") }
        if let svg = strongShareSVG { try FileIO.writeAtomically(svg, to: directory + "/strong_share.svg") }
    }
}
