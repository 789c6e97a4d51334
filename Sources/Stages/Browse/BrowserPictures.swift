public import JSON
import Pipeline

/// A run's graph as SVG: stages as boxes in columns by depth (a stage stands right of every
/// stage it reads), coloured by outcome (ran, cached, failed), each with its type and time and
/// a link to its result; edges from each input's stage.
struct DagPicture {
    struct Node {
        var name: String
        var type: String
        var outcome: String
        var seconds: Double?
        var output: String?
        /// The stages of this run it reads.
        var inputs: [String]
    }
    var nodes: [Node]

    static let width = 180.0, height = 46.0, gapX = 46.0, gapY = 12.0, margin = 10.0

    var svg: String {
        var depth: [String: Int] = [:]
        for n in nodes { depth[n.name] = (n.inputs.compactMap { depth[$0] }.max() ?? -1) + 1 }  // run order is topological
        var column: [Int: Int] = [:], place: [String: (x: Double, y: Double)] = [:]
        for n in nodes {
            let d = depth[n.name]!, row = column[d, default: 0]
            column[d] = row + 1
            place[n.name] = (DagPicture.margin + Double(d) * (DagPicture.width + DagPicture.gapX), DagPicture.margin + Double(row) * (DagPicture.height + DagPicture.gapY))
        }
        let w = DagPicture.margin * 2 + Double((depth.values.max() ?? 0) + 1) * (DagPicture.width + DagPicture.gapX) - DagPicture.gapX
        let h = DagPicture.margin * 2 + Double(column.values.max() ?? 1) * (DagPicture.height + DagPicture.gapY) - DagPicture.gapY
        var s = "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"dag\" width=\"\(Int(w))\" height=\"\(Int(h))\" font-family=\"sans-serif\" font-size=\"11\">\n"
        for n in nodes {
            let to = place[n.name]!
            for i in Set(n.inputs).sorted() {
                guard let from = place[i] else { continue }
                let x1 = from.x + DagPicture.width, y1 = from.y + DagPicture.height / 2, x2 = to.x, y2 = to.y + DagPicture.height / 2
                s += "<path d=\"M\(f(x1)),\(f(y1)) C\(f(x1 + 24)),\(f(y1)) \(f(x2 - 24)),\(f(y2)) \(f(x2)),\(f(y2))\" fill=\"none\" stroke=\"#8a94a0\"/>\n"
            }
        }
        for n in nodes {
            let p = place[n.name]!
            let (fill, stroke) = DagPicture.colors(n.outcome)
            let time = n.seconds.map { $0 < 60 ? Format.fixed($0, $0 < 10 ? 2 : 1) + " s" : Format.fixed($0 / 60, 1) + " min" } ?? ""
            let open = n.output.map { "<a href=\"#/result/\($0)\">" } ?? ""
            s += open + "<g class=\"node\" data-stage=\"\(SVGPlot.escape(n.name))\" data-outcome=\"\(SVGPlot.escape(n.outcome))\">"
            s += "<title>\(SVGPlot.escape(n.name)) (\(SVGPlot.escape(n.type))): \(SVGPlot.escape(n.outcome))\(time.isEmpty ? "" : " in \(time)")</title>"
            s += "<rect x=\"\(f(p.x))\" y=\"\(f(p.y))\" width=\"\(Int(DagPicture.width))\" height=\"\(Int(DagPicture.height))\" rx=\"6\" fill=\"\(fill)\" stroke=\"\(stroke)\"/>"
            s += "<text x=\"\(f(p.x + 8))\" y=\"\(f(p.y + 18))\" font-weight=\"bold\" font-size=\"12\">\(SVGPlot.escape(DagPicture.clip(n.name, 26)))</text>"
            s += "<text x=\"\(f(p.x + 8))\" y=\"\(f(p.y + 36))\" fill=\"#444\">\(SVGPlot.escape(DagPicture.clip([n.type, n.outcome, time].filter { !$0.isEmpty }.joined(separator: " · "), 30)))</text>"
            s += "</g>" + (n.output == nil ? "" : "</a>") + "\n"
        }
        return s + "</svg>\n"
    }

    static func colors(_ outcome: String) -> (fill: String, stroke: String) {
        switch outcome {
        case "ran": return ("#e3f4e6", "#2e8b57")
        case "cached": return ("#eef1f5", "#8a94a0")
        case "failed": return ("#fbe4e4", "#c0392b")
        default: return ("#ffffff", "#bbbbbb")
        }
    }

    static func clip(_ s: String, _ n: Int) -> String { s.count > n ? String(s.prefix(n - 1)) + "…" : s }
    func f(_ x: Double) -> String { Format.fixed(x, 1) }
}

/// An evaluation's rows as intervals: each row's F1 difference to the best fixed action with
/// its paired-bootstrap 95% interval as an error bar, zero (the best fixed action) marked.
struct IntervalPicture {
    var results: JSONValue

    var svg: String {
        let rows = (results["rows"]?.arrayValue ?? []).compactMap { r -> (name: String, mean: Double, low: Double, high: Double, router: Bool)? in
            guard let n = r["name"]?.stringValue, let d = r["diff_vs_best_fixed"], let m = d["mean"]?.doubleValue,
                  let l = d["low"]?.doubleValue, let h = d["high"]?.doubleValue else { return nil }
            return (n, m, l, h, r["router"]?.boolValue ?? false)
        }
        let left = 220.0, right = 30.0, top = 40.0, rowH = 20.0, width = 680.0
        let height = top + Double(max(rows.count, 1)) * rowH + 50
        var lo = min(0, rows.map(\.low).min() ?? 0), hi = max(0, rows.map(\.high).max() ?? 0)
        if hi - lo < 1e-9 { lo -= 0.05; hi += 0.05 }
        let pad = (hi - lo) * 0.05
        lo -= pad; hi += pad
        let px = { (v: Double) in left + (v - lo) / (hi - lo) * (width - left - right) }
        func f(_ x: Double) -> String { Format.fixed(x, 1) }
        var s = "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"intervals\" width=\"\(Int(width))\" height=\"\(Int(height))\" font-family=\"sans-serif\" font-size=\"11\">\n"
        s += "<text x=\"\(Int(width / 2))\" y=\"20\" text-anchor=\"middle\" font-size=\"14\">F1 − best fixed action, with paired bootstrap 95% intervals</text>\n"
        let bottom = top + Double(rows.count) * rowH
        s += "<line x1=\"\(f(px(0)))\" y1=\"\(f(top - 6))\" x2=\"\(f(px(0)))\" y2=\"\(f(bottom))\" stroke=\"#999\" stroke-dasharray=\"4 3\"/>\n"
        s += "<line x1=\"\(f(left))\" y1=\"\(f(bottom))\" x2=\"\(f(width - right))\" y2=\"\(f(bottom))\" stroke=\"black\"/>\n"
        for i in 0...4 {
            let v = lo + (hi - lo) * Double(i) / 4
            s += "<text x=\"\(f(px(v)))\" y=\"\(f(bottom + 16))\" text-anchor=\"middle\">\(Format.fixed(v, 3))</text>\n"
        }
        s += "<text x=\"\(f(left + (width - left - right) / 2))\" y=\"\(f(bottom + 36))\" text-anchor=\"middle\">mean F1 difference to the best fixed action (dashed: no difference)</text>\n"
        for (i, r) in rows.enumerated() {
            let y = top + Double(i) * rowH + rowH / 2
            let color = r.router ? "#c0392b" : "#2c3e50"
            s += "<g class=\"row\" data-row=\"\(SVGPlot.escape(r.name))\"><title>\(SVGPlot.escape(r.name)): \(Format.fixed(r.mean, 4)) [\(Format.fixed(r.low, 4)), \(Format.fixed(r.high, 4))]</title>"
            s += "<text x=\"\(f(left - 8))\" y=\"\(f(y + 4))\" text-anchor=\"end\">\(SVGPlot.escape(r.name))</text>"
            s += "<line x1=\"\(f(px(r.low)))\" y1=\"\(f(y))\" x2=\"\(f(px(r.high)))\" y2=\"\(f(y))\" stroke=\"\(color)\" stroke-width=\"1.5\"/>"
            for v in [r.low, r.high] { s += "<line x1=\"\(f(px(v)))\" y1=\"\(f(y - 4))\" x2=\"\(f(px(v)))\" y2=\"\(f(y + 4))\" stroke=\"\(color)\"/>" }
            s += "<circle cx=\"\(f(px(r.mean)))\" cy=\"\(f(y))\" r=\"3.5\" fill=\"\(color)\"/></g>\n"
        }
        return s + "</svg>\n"
    }
}
