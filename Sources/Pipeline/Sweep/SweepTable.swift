/// A sweep's results as a table: one row per point with its overrides, its state (done,
/// running, failed or pending) and the figures of its final artifacts. `sweep run`, `sweep
/// status` and `show SWEEP` print it and write it beside the sweep's state (results.csv,
/// results.md); built here from the store alone, it is the same whoever asks.
public struct SweepTable: Sendable, Equatable {
    /// "point", the swept parameters (by their last part), "state", then "STAGE.FIGURE"s.
    public var header: [String]
    public var rows: [[String]]

    public init(header: [String], rows: [[String]]) { self.header = header; self.rows = rows }

    /// The table of `sweep` given the plan of its merged DAG (`planned`: merged stage → its
    /// entry) and the merged stages that failed in its last run.
    public init(_ sweep: Sweep, store: Store, planned: [String: PlanEntry], failed: Set<String> = []) {
        let parameters = sweep.points.first?.overrides.map { String($0.prefix { $0 != "=" }) } ?? []
        var figureNames: [String] = []
        var cells: [[String: String]] = []
        let point0 = try? PipelineSpec.parse(text: (try? FileIO.readString(sweep.merged.sourcePath)) ?? "", file: sweep.merged.sourcePath,
                                             registry: sweep.registry, overrides: sweep.points[0].overrides)
        for (i, point) in sweep.points.enumerated() {
            var row: [String: String] = [:]
            for o in point.overrides { let k = String(o.prefix { $0 != "=" }); row[k] = String(o.dropFirst(k.count + 1)) }
            row["state"] = SweepTable.state(of: Array(Set(sweep.mapping[i].values)), store: store, planned: planned, failed: failed)
            for s in point0.map({ SweepTable.figureStages(sweep, $0) }) ?? [] {
                guard let node = sweep.mapping[i][s], let entry = planned[node], entry.action == .cached, let key = entry.key,
                      let out = store.action(key)?.output, let dir = try? store.materialize(out),
                      let definition = point0?.stages[s]?.definition else { continue }
                for f in definition.figures(dir) {
                    let name = "\(s).\(f.name)"
                    if !figureNames.contains(name) { figureNames.append(name) }
                    row[name] = Format.fixed(f.value, 4)
                }
            }
            cells.append(row)
        }
        let keys = parameters + ["state"] + figureNames
        header = ["point"] + parameters.map { String($0.split(separator: ".").last!) } + ["state"] + figureNames
        rows = sweep.points.indices.map { i in [sweep.points[i].label] + keys.map { cells[i][$0] ?? "" } }
    }

    /// A point's state from its merged stages: done when all are cached, running when a process
    /// (this sweep or another run) holds the lock of one of its keys, failed when one failed in
    /// the last run and is not cached since, else pending.
    static func state(of nodes: [String], store: Store, planned: [String: PlanEntry], failed: Set<String>) -> String {
        let done = nodes.allSatisfy { planned[$0]?.action == .cached }
        let running = !done && nodes.contains { n in
            guard let entry = planned[n], entry.action == .run, let key = entry.key else { return false }
            return store.isBeingComputed(key)
        }
        return done ? "done" : running ? "running"
            : nodes.contains { failed.contains($0) && planned[$0]?.action != .cached } ? "failed" : "pending"
    }

    /// The stages whose figures the table holds, in spec order: the final ones (no other stage
    /// reads them) and every stage the points change (`sample_valid`, `score_valid` of a budget
    /// sweep, though later stages read them).
    public static func figureStages(_ sweep: Sweep, _ spec: PipelineSpec) -> [String] {
        spec.order.filter { s in
            spec.dependents(of: s).isEmpty || Set(sweep.mapping.map { $0[s] }).count > 1
        }
    }

    /// `--plot` names a figure as STAGE.FIGURE: a stage that holds none in this sweep is an
    /// error before anything runs (the figure itself is known only once the stage has run).
    public static func checkPlots(_ plots: [String], _ sweep: Sweep) throws {
        guard !plots.isEmpty else { return }
        let spec = try PipelineSpec.parse(text: FileIO.readString(sweep.merged.sourcePath), file: sweep.merged.sourcePath,
                                          registry: sweep.registry, overrides: sweep.points[0].overrides)
        let stages = figureStages(sweep, spec)
        for p in plots {
            let parts = p.split(separator: ":", maxSplits: 1).map(String.init)
            guard parts.count == 2 else { throw SweepError(.badRequest, "--plot '\(p)' is not figure[,figure...]:parameter") }
            for f in parts[0].split(separator: ",") {
                let stage = String(f.prefix { $0 != "." })
                guard stages.contains(stage) else {
                    throw SweepError(.badRequest, "--plot: '\(f)': the table holds figures of \(stages.joined(separator: ", ")) (the final stages and those the points change), not of '\(stage)'")
                }
            }
        }
    }

    /// The table without the figure columns that are the same at every point (the CSV keeps
    /// them all): what a sweep changes stands out.
    public var withoutConstantFigures: SweepTable {
        guard rows.count > 1, let state = header.firstIndex(of: "state") else { return self }
        let keep = header.indices.filter { c in c <= state || Set(rows.map { $0[c] }).count > 1 }
        return SweepTable(header: keep.map { header[$0] }, rows: rows.map { r in keep.map { r[$0] } })
    }

    public var markdown: String {
        var s = "| " + header.joined(separator: " | ") + " |\n|" + String(repeating: " --- |", count: header.count) + "\n"
        for r in rows { s += "| " + r.joined(separator: " | ") + " |\n" }
        return s
    }

    public var csv: String {
        func field(_ f: String) -> String { f.contains(",") || f.contains("\"") ? "\"" + f.split(separator: "\"", omittingEmptySubsequences: false).joined(separator: "\"\"") + "\"" : f }
        return ([header] + rows).map { $0.map(field).joined(separator: ",") }.joined(separator: "\n") + "\n"
    }

    /// Writes an SVG of one or more figures (comma-separated: `evaluate.best_fixed_f1,evaluate.oracle_f1`)
    /// against a parameter, as `request` (FIGURES:PARAMETER, column names of the table;
    /// parameters by their short name) asks, one line per figure and combination of the other
    /// parameters, on one axis; returns the file's path (under the sweep's directory).
    public func plot(_ request: String, sweep: Sweep, store: Store) throws -> String {
        let parts = request.split(separator: ":", maxSplits: 1).map(String.init)
        guard parts.count == 2 else { throw SweepError(.badRequest, "--plot '\(request)' is not figure[,figure...]:parameter") }
        let figures = Array(header.drop { $0 != "state" }.dropFirst())
        let parameters = Array(header.dropFirst().prefix { $0 != "state" })
        let wanted = parts[0].split(separator: ",").map(String.init)
        let ys = try wanted.map { f -> Int in
            guard let y = header.firstIndex(of: f), figures.contains(f) else {
                throw SweepError(.badRequest, "--plot: no figure '\(f)'" + NearestName.hintOrChoices(f, among: figures))
            }
            return y
        }
        guard let x = header.firstIndex(of: parts[1]), parameters.contains(parts[1]) else {
            throw SweepError(.badRequest, "--plot: no parameter '\(parts[1])'" + NearestName.hintOrChoices(parts[1], among: parameters))
        }
        let others = parameters.filter { $0 != parts[1] }.compactMap { header.firstIndex(of: $0) }
        var series: [(name: String, points: [(x: String, y: Double)])] = []
        for (f, y) in zip(wanted, ys) {
            for row in rows {
                guard let value = Double(row[y]) else { continue }
                let rest = others.map { "\(header[$0])=\(row[$0])" }.joined(separator: ", ")
                let name = wanted.count == 1 ? (rest.isEmpty ? f : rest) : (rest.isEmpty ? f : "\(f) (\(rest))")
                if let i = series.firstIndex(where: { $0.name == name }) { series[i].points.append((row[x], value)) } else { series.append((name, [(row[x], value)])) }
            }
        }
        let yLabel = wanted.count == 1 ? wanted[0] : "value"
        let svg = SVGPlot(title: "\(sweep.name): \(wanted.joined(separator: ", ")) by \(parts[1])", xLabel: parts[1], yLabel: yLabel, series: series).svg
        let file = "\(store.root)/sweeps/\(sweep.name)/" + "\(wanted.joined(separator: "+"))-vs-\(parts[1]).svg".map { $0.isLetter || $0.isNumber || $0 == "." || $0 == "-" || $0 == "_" ? $0 : "_" }
        try FileIO.writeAtomically(svg, to: file)
        return file
    }

    /// Plans the merged DAG (what is cached) and writes the table beside the sweep's state:
    /// results.csv with every column, results.md without the constant figures; returns the
    /// table and that Markdown. A sweep with replicates (seeds) also gets replicates.csv (each
    /// configuration's figures pooled: mean, sd, 95% interval, n), and its Markdown is the
    /// pooled table (`pooled`) without the figures that neither the points nor the seeds move.
    public static func report(_ sweep: Sweep, store: Store, failed: Set<String> = []) throws -> (table: SweepTable, markdown: String) {
        let plan = try Planner.plan(sweep.merged, selection: Set(sweep.merged.order), forced: [], lookups: .store(store, pipeline: sweep.merged.name))
        var planned: [String: PlanEntry] = [:]
        for e in plan { planned[e.stage] = e }
        let t = SweepTable(sweep, store: store, planned: planned, failed: failed)
        let directory = "\(store.root)/sweeps/\(sweep.name)"
        try FileIO.writeAtomically(t.csv, to: directory + "/results.csv")
        var md = t.withoutConstantFigures.markdown
        if let pooled = t.pooled(sweep), let numeric = t.pooled(sweep, numeric: true) {
            try FileIO.writeAtomically(numeric.csv, to: directory + "/replicates.csv")
            md = pooled.withoutFixedFigures(numeric).markdown
        }
        try FileIO.writeAtomically(md, to: directory + "/results.md")
        return (t, md)
    }
}
