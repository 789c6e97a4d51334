public import JSON
public import Pipeline

/// The sweeps page's data: a sweep's table as its last `sweep run` or `sweep status` wrote it
/// (results.csv; replicates.csv when it has seeds), and its figures' curves against a swept
/// parameter, drawn here as SVG (replicates as bands: their 95% intervals).
extension StoreBrowser {
    /// A table read from a CSV the sweep commands wrote.
    public struct Table: Sendable {
        public var header: [String]
        public var rows: [[String]]
        var json: JSONValue { .object([("header", .array(header.map(JSONValue.string))), ("rows", .array(rows.map { .array($0.map(JSONValue.string)) }))]) }
    }

    func sweepTables(_ name: String) throws -> (results: Table, replicates: Table?, state: SweepState) {
        guard let state = try? SweepState.load(store, name) else {
            throw Failure.notFound("no sweep '\(name)' in \(store.root)" + NearestName.hintOrChoices(name, among: SweepState.names(in: store)))
        }
        let directory = "\(store.root)/sweeps/\(name)"
        guard let text = try? FileIO.readString(directory + "/results.csv") else {
            throw Failure.notFound("sweep '\(name)' has no table yet (results.csv): `haps-pipe sweep status` writes it")
        }
        let replicates = (try? FileIO.readString(directory + "/replicates.csv")).map(StoreBrowser.csv)
        return (StoreBrowser.csv(text), replicates, state)
    }

    /// The sweep's points, its tables, the parameters it sweeps and the figures it has.
    public func sweep(_ name: String) throws -> JSONValue {
        let (results, replicates, state) = try sweepTables(name)
        let stateColumn = results.header.firstIndex(of: "state") ?? results.header.count
        // The swept parameters, seeds last (a curve is drawn against the others first).
        let parameters = Array(Set(results.header[1..<stateColumn])).sorted { ($0 == "seed" ? 1 : 0, $0) < ($1 == "seed" ? 1 : 0, $1) }
        let figures = Array(results.header.dropFirst(stateColumn + 1))
        // Figures that differ between points: what the page offers to plot first.
        let varying = figures.filter { f in
            let c = results.header.firstIndex(of: f)!
            return Set(results.rows.map { $0.indices.contains(c) ? $0[c] : "" }).count > 1
        }
        return .object([("name", .string(name)), ("spec", .string(state.spec)), ("points", .number(Double(state.points.count))),
                        ("failed", .array(state.failed.map(JSONValue.string))), ("table", results.json),
                        ("replicates", replicates?.json ?? .null), ("parameters", .array(parameters.map(JSONValue.string))),
                        ("figures", .array(figures.map(JSONValue.string))), ("varying", .array(varying.map(JSONValue.string)))])
    }

    /// `figures` against the swept parameter `x`, one line per figure (and combination of the
    /// other parameters), as SVG. With replicates, each line is the mean over seeds and its
    /// band the 95% interval (replicates.csv); otherwise every point's value (results.csv).
    public func sweepPlot(_ name: String, x: String, figures: [String]) throws -> String {
        let (results, replicates, _) = try sweepTables(name)
        guard !figures.isEmpty else { throw Failure.bad("name at least one figure to plot") }
        let pooled = replicates.flatMap { r in r.header.contains(x) ? r : nil }
        let table = pooled ?? results
        let stateColumn = table.header.firstIndex(of: pooled == nil ? "state" : "replicates") ?? table.header.count
        guard let xc = table.header[1..<stateColumn].firstIndex(of: x) else {
            throw Failure.bad("sweep '\(name)' does not sweep '\(x)'" + NearestName.hintOrChoices(x, among: Array(Set(results.header[1..<(results.header.firstIndex(of: "state") ?? 1)]))))
        }
        let others = (1..<stateColumn).filter { $0 != xc && table.header[$0] != x }
        var plot = SVGPlot(title: "\(name): by \(x)", xLabel: x, yLabel: figures.count == 1 ? figures[0] : "value", series: [])
        for f in figures {
            let mean = table.header.firstIndex(of: pooled == nil ? f : f + ".mean")
            guard let mean else { throw Failure.bad("sweep '\(name)' has no figure '\(f)'" + NearestName.hintOrChoices(f, among: Array(results.header.drop { $0 != "state" }.dropFirst()))) }
            let low = pooled == nil ? nil : table.header.firstIndex(of: f + ".low"), high = pooled == nil ? nil : table.header.firstIndex(of: f + ".high")
            for row in table.rows where row.count == table.header.count {
                guard let y = Double(row[mean]) else { continue }
                let rest = others.map { "\(table.header[$0])=\(row[$0])" }.joined(separator: ", ")
                let series = figures.count == 1 ? (rest.isEmpty ? f : rest) : (rest.isEmpty ? f : "\(f) (\(rest))")
                let i: Int
                if let found = plot.series.firstIndex(where: { $0.name == series }) { i = found } else { plot.series.append((series, [])); i = plot.series.count - 1 }
                plot.series[i].points.append((row[xc], y))
                if let low, let high, let l = Double(row[low]), let h = Double(row[high]) { plot.bands[i, default: []].append((row[xc], l, h)) }
            }
        }
        return plot.svg
    }

    /// A CSV the sweep commands wrote, as a table.
    static func csv(_ text: String) -> Table {
        let records = ((try? CSVReader.records(text, file: "results.csv")) ?? []).map(\.fields)
        return Table(header: records.first ?? [], rows: Array(records.dropFirst()))
    }
}
