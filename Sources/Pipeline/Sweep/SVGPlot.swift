#if canImport(Glibc)
import Glibc
#endif

/// A small line plot as SVG, written by the project itself (no plotting library): one series
/// per label, numeric x positioned by value, otherwise categories in order of appearance.
public struct SVGPlot: Sendable {
    public var title: String
    public var xLabel: String
    public var yLabel: String
    /// Series name → points (x as text, y).
    public var series: [(name: String, points: [(x: String, y: Double)])]
    /// Per series (by index), an interval at each of its x values drawn as a shaded band
    /// behind its line (replicates' 95% intervals); none by default.
    public var bands: [Int: [(x: String, low: Double, high: Double)]] = [:]

    public init(title: String, xLabel: String, yLabel: String, series: [(name: String, points: [(x: String, y: Double)])]) {
        self.title = title; self.xLabel = xLabel; self.yLabel = yLabel; self.series = series
    }

    public static func escape(_ s: String) -> String {
        var out = ""
        for c in s {
            switch c { case "&": out += "&amp;"; case "<": out += "&lt;"; case ">": out += "&gt;"; case "\"": out += "&quot;"; default: out.append(c) }
        }
        return out
    }

    /// About how wide `text` is at 11 px sans-serif (0.6 em a character): where a label may go
    /// without running past the picture's edge.
    public static func textWidth(_ text: String, fontSize: Double = 11) -> Double { Double(text.count) * fontSize * 0.6 }

    static func number(_ v: Double) -> String { Format.fixed(v, 1) }

    /// The round step (1, 2, 2.5 or 5 × 10^k) nearest above `raw`.
    static func niceStep(_ raw: Double) -> Double {
        guard raw > 0, raw.isFinite else { return 1 }
        let magnitude = pow(10, (log10(raw)).rounded(.down))
        for m in [1.0, 2, 2.5, 5, 10] where m * magnitude >= raw * 0.999 { return m * magnitude }
        return 10 * magnitude
    }

    public var svg: String {
        let width = 640.0, height = 400.0, left = 70.0, right = 150.0, top = 40.0, bottom = 60.0
        let plotW = width - left - right, plotH = height - top - bottom
        let xs = series.flatMap { $0.points.map(\.x) }
        let numeric = xs.allSatisfy { Double($0) != nil }
        var categories: [String] = []
        for x in xs where !categories.contains(x) { categories.append(x) }
        if numeric { categories.sort { Double($0)! < Double($1)! } }
        let xValues = numeric ? categories.map { Double($0)! } : categories.indices.map(Double.init)
        let (xMin, xMax) = (xValues.min() ?? 0, xValues.max() ?? 1)
        let ys = series.flatMap { $0.points.map(\.y) } + bands.values.flatMap { $0.flatMap { [$0.low, $0.high] } }.filter(\.isFinite)
        var (yMin, yMax) = (ys.min() ?? 0, ys.max() ?? 1)
        if yMin == yMax { yMin -= 0.5; yMax += 0.5 }
        // Round ticks: a step of 1, 2, 2.5 or 5 × 10^k giving about five, the axis on multiples of it.
        let step = SVGPlot.niceStep((yMax - yMin) / 4)
        yMin = (yMin / step).rounded(.down) * step
        yMax = (yMax / step).rounded(.up) * step
        let ticks = Int(((yMax - yMin) / step).rounded())
        let decimals = (0...6).first { d in let v = step * pow(10, Double(d)); return abs(v - v.rounded()) < 1e-6 } ?? 6
        func px(_ x: String) -> Double {
            let v = numeric ? Double(x)! : Double(categories.firstIndex(of: x) ?? 0)
            return left + (xMax == xMin ? plotW / 2 : (v - xMin) / (xMax - xMin) * plotW)
        }
        func py(_ y: Double) -> Double { top + plotH - (y - yMin) / (yMax - yMin) * plotH }
        let colors = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2"]
        var s = #"<svg xmlns="http://www.w3.org/2000/svg" width="\#(Int(width))" height="\#(Int(height))" font-family="sans-serif" font-size="12">"# + "\n"
        s += #"<rect width="100%" height="100%" fill="white"/>"# + "\n"
        s += #"<text x="\#(Int(width / 2))" y="22" text-anchor="middle" font-size="14">\#(SVGPlot.escape(title))</text>"# + "\n"
        s += #"<line x1="\#(left)" y1="\#(top + plotH)" x2="\#(left + plotW)" y2="\#(top + plotH)" stroke="black"/>"# + "\n"
        s += #"<line x1="\#(left)" y1="\#(top)" x2="\#(left)" y2="\#(top + plotH)" stroke="black"/>"# + "\n"
        for i in 0...ticks {  // y ticks
            let v = yMin + step * Double(i)
            s += #"<line x1="\#(left - 4)" y1="\#(SVGPlot.number(py(v)))" x2="\#(left)" y2="\#(SVGPlot.number(py(v)))" stroke="black"/>"#
            s += #"<text x="\#(left - 8)" y="\#(SVGPlot.number(py(v) + 4))" text-anchor="end">\#(Format.fixed(v, decimals))</text>"# + "\n"
        }
        if numeric && categories.count > 8 && xMax > xMin {
            // Many numeric x values (a cost axis): round ticks, as on the y axis.
            let xStep = SVGPlot.niceStep((xMax - xMin) / 4)
            let xDecimals = (0...10).first { d in let v = xStep * pow(10, Double(d)); return abs(v - v.rounded()) < 1e-6 } ?? 10
            var v = (xMin / xStep).rounded(.up) * xStep
            while v <= xMax + xStep * 1e-9 {
                let x = left + (v - xMin) / (xMax - xMin) * plotW
                s += #"<text x="\#(SVGPlot.number(x))" y="\#(SVGPlot.number(top + plotH + 18))" text-anchor="middle">\#(Format.fixed(v, xDecimals))</text>"# + "\n"
                v += xStep
            }
        } else {
            for c in categories {  // x ticks
                s += #"<text x="\#(SVGPlot.number(px(c)))" y="\#(SVGPlot.number(top + plotH + 18))" text-anchor="middle">\#(SVGPlot.escape(c))</text>"# + "\n"
            }
        }
        s += #"<text x="\#(SVGPlot.number(left + plotW / 2))" y="\#(Int(height - 15))" text-anchor="middle">\#(SVGPlot.escape(xLabel))</text>"# + "\n"
        s += #"<text x="18" y="\#(SVGPlot.number(top + plotH / 2))" text-anchor="middle" transform="rotate(-90 18 \#(SVGPlot.number(top + plotH / 2)))">\#(SVGPlot.escape(yLabel))</text>"# + "\n"
        for (i, serie) in series.enumerated() {
            // Past the palette's 8 colours, series repeat a colour with a dash pattern of their own.
            let color = colors[i % colors.count], dash = SVGPlot.dashes[(i / colors.count) % SVGPlot.dashes.count]
            let dashed = dash.isEmpty ? "" : #" stroke-dasharray="\#(dash)""#
            if let band = bands[i]?.sorted(by: { px($0.x) < px($1.x) }), !band.isEmpty {
                let outline = band.map { "\(SVGPlot.number(px($0.x))),\(SVGPlot.number(py($0.high)))" } + band.reversed().map { "\(SVGPlot.number(px($0.x))),\(SVGPlot.number(py($0.low)))" }
                s += #"<polygon class="band" fill="\#(color)" fill-opacity="0.15" stroke="none" points="\#(outline.joined(separator: " "))"/>"# + "\n"
            }
            let pts = serie.points.sorted { px($0.x) < px($1.x) }
            let path = pts.map { "\(SVGPlot.number(px($0.x))),\(SVGPlot.number(py($0.y)))" }.joined(separator: " ")
            s += #"<polyline fill="none" stroke="\#(color)" stroke-width="2"\#(dashed) points="\#(path)"/>"# + "\n"
            for p in pts {
                s += #"<circle cx="\#(SVGPlot.number(px(p.x)))" cy="\#(SVGPlot.number(py(p.y)))" r="3.5" fill="\#(color)"><title>\#(SVGPlot.escape(p.x)): \#(p.y)</title></circle>"# + "\n"
            }
            let ly = top + 14 + Double(i) * 18
            if dash.isEmpty {
                s += #"<rect x="\#(left + plotW + 14)" y="\#(SVGPlot.number(ly - 9))" width="10" height="10" fill="\#(color)"/>"#
            } else {
                s += #"<line x1="\#(left + plotW + 10)" y1="\#(SVGPlot.number(ly - 4))" x2="\#(left + plotW + 26)" y2="\#(SVGPlot.number(ly - 4))" stroke="\#(color)" stroke-width="3"\#(dashed)/>"#
            }
            s += #"<text x="\#(left + plotW + 30)" y="\#(SVGPlot.number(ly))">\#(SVGPlot.escape(serie.name))</text>"# + "\n"
        }
        return s + "</svg>\n"
    }

    /// The line styles of successive rounds through the palette: solid, then dashed, dotted, dash-dot.
    static let dashes = ["", "6 3", "2 3", "8 3 2 3"]
}
