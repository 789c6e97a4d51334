import ArgumentParser
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Pipeline
import Stages

/// `haps-pipe sweep`: run a spec over a grid (or zip) of parameter values as one merged DAG.
struct SweepCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sweep",
        abstract: "Run a spec over several parameter values as one merged DAG; shared stages run once.",
        discussion: """
            Examples:
              haps-pipe sweep pipelines/demo.json --grid rl_train.alpha=0.001,0.01,0.1 --name alpha
              haps-pipe sweep pipelines/demo.json --grid rl_train.alpha=0.01,0.1 --grid sft_train.lr=1e-5,3e-5 --name grid
              haps-pipe sweep SPEC                      (the spec's own \"sweep\" block)
              haps-pipe sweep status alpha --plot score_valid.oracle_f1:alpha

            Axes take the paths of run --set (a command stage's own parameters are under params). \
            Docs: docs/sweeps.md.
            """,
        subcommands: [SweepRun.self, SweepStatus.self],
        defaultSubcommand: SweepRun.self)
}

/// The sweep's state in the store: `sweeps/<name>.json` (spec, points).
struct SweepState {
    var name: String
    var spec: String
    var points: [Sweep.Point]
    /// Merged stages that failed in the last run.
    var failed: [String] = []

    static func path(_ store: Store, _ name: String) -> String { "\(store.root)/sweeps/\(name).json" }

    static func load(_ store: Store, _ name: String) throws -> SweepState? {
        guard FileIO.exists(path(store, name)) else { return nil }
        let j = try JSONParser.parse(try FileIO.readString(path(store, name)))
        return SweepState(name: name, spec: j["spec"]?.stringValue ?? "",
                          points: (j["points"]?.arrayValue ?? []).map { Sweep.Point(label: $0["label"]?.stringValue ?? "",
                                                                                    overrides: ($0["overrides"]?.arrayValue ?? []).compactMap(\.stringValue)) },
                          failed: (j["failed"]?.arrayValue ?? []).compactMap(\.stringValue))
    }

    func save(_ store: Store) throws {
        let j: JSONValue = ["name": .string(name), "spec": .string(spec),
                            "points": .array(points.map { ["label": .string($0.label), "overrides": .array($0.overrides.map(JSONValue.string))] }),
                            "failed": .array(failed.map(JSONValue.string))]
        try FileIO.writeAtomically(j.pretty + "\n", to: SweepState.path(store, name))
    }

    func sweep(in store: Store) throws -> Sweep {
        let text: String
        do { text = try FileIO.readString(spec) } catch { throw UsageError("sweep \(name): cannot read its spec \(spec): \(error.reason)") }
        return try Sweep(name: name, specText: text, file: spec, points: points, registry: HAPSStages.registry,
                         baseDirectory: FileManager.default.currentDirectoryPath, stored: store.results)
    }
}

/// One table row per point: its overrides, its state and the figures of its final artifacts.
enum SweepTable {
    static func rows(_ sweep: Sweep, store: Store, planned: [String: PlanEntry], failed: Set<String> = []) -> (header: [String], rows: [[String]]) {
        let parameters = sweep.points.first?.overrides.map { String($0.prefix { $0 != "=" }) } ?? []
        var figureNames: [String] = []
        var cells: [[String: String]] = []
        let point0 = try? PipelineSpec.parse(text: (try? FileIO.readString(sweep.merged.sourcePath)) ?? "", file: sweep.merged.sourcePath,
                                             registry: HAPSStages.registry, overrides: sweep.points[0].overrides)
        for (i, point) in sweep.points.enumerated() {
            var row: [String: String] = [:]
            for o in point.overrides { let k = String(o.prefix { $0 != "=" }); row[k] = String(o.dropFirst(k.count + 1)) }
            let nodes = Array(Set(sweep.mapping[i].values))
            let done = nodes.allSatisfy { planned[$0]?.action == .cached }
            // Running: a process (this sweep or another run) holds the lock of one of its keys.
            let running = !done && nodes.contains { n in
                guard let entry = planned[n], entry.action == .run, let key = entry.key else { return false }
                return store.isBeingComputed(key)
            }
            row["state"] = done ? "done" : running ? "running"
                : nodes.contains { failed.contains($0) && planned[$0]?.action != .cached } ? "failed" : "pending"
            for s in point0.map({ figureStages(sweep, $0) }) ?? [] {
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
        let header = ["point"] + parameters.map { String($0.split(separator: ".").last!) } + ["state"] + figureNames
        let keys = parameters + ["state"] + figureNames
        return (header, sweep.points.indices.map { i in [sweep.points[i].label] + keys.map { cells[i][$0] ?? "" } })
    }

    /// The stages whose figures the table holds, in spec order: the final ones (no other stage
    /// reads them) and every stage the points change (`sample_valid`, `score_valid` of a budget
    /// sweep, though later stages read them).
    static func figureStages(_ sweep: Sweep, _ spec: PipelineSpec) -> [String] {
        spec.order.filter { s in
            spec.dependents(of: s).isEmpty || Set(sweep.mapping.map { $0[s] }).count > 1
        }
    }

    /// `--plot` names a figure as STAGE.FIGURE: a stage that holds none in this sweep is an
    /// error before anything runs (the figure itself is known only once the stage has run).
    static func checkPlots(_ plots: [String], _ sweep: Sweep) throws {
        guard !plots.isEmpty else { return }
        let spec = try PipelineSpec.parse(text: FileIO.readString(sweep.merged.sourcePath), file: sweep.merged.sourcePath,
                                          registry: HAPSStages.registry, overrides: sweep.points[0].overrides)
        let stages = figureStages(sweep, spec)
        for p in plots {
            let parts = p.split(separator: ":", maxSplits: 1).map(String.init)
            guard parts.count == 2 else { throw UsageError("--plot '\(p)' is not figure[,figure...]:parameter") }
            for f in parts[0].split(separator: ",") {
                let stage = String(f.prefix { $0 != "." })
                guard stages.contains(stage) else {
                    throw UsageError("--plot: '\(f)': the table holds figures of \(stages.joined(separator: ", ")) (the final stages and those the points change), not of '\(stage)'")
                }
            }
        }
    }

    /// The table without the figure columns that are the same at every point (the CSV keeps
    /// them all): what a sweep changes stands out.
    static func withoutConstantFigures(_ t: (header: [String], rows: [[String]])) -> (header: [String], rows: [[String]]) {
        guard t.rows.count > 1, let state = t.header.firstIndex(of: "state") else { return t }
        let keep = t.header.indices.filter { c in c <= state || Set(t.rows.map { $0[c] }).count > 1 }
        return (keep.map { t.header[$0] }, t.rows.map { r in keep.map { r[$0] } })
    }

    static func markdown(_ t: (header: [String], rows: [[String]])) -> String {
        var s = "| " + t.header.joined(separator: " | ") + " |\n|" + String(repeating: " --- |", count: t.header.count) + "\n"
        for r in t.rows { s += "| " + r.joined(separator: " | ") + " |\n" }
        return s
    }

    static func csv(_ t: (header: [String], rows: [[String]])) -> String {
        func field(_ f: String) -> String { f.contains(",") || f.contains("\"") ? "\"" + f.split(separator: "\"", omittingEmptySubsequences: false).joined(separator: "\"\"") + "\"" : f }
        return ([t.header] + t.rows).map { $0.map(field).joined(separator: ",") }.joined(separator: "\n") + "\n"
    }

    /// An SVG of one or more figures (comma-separated: `evaluate.best_fixed_f1,evaluate.oracle_f1`)
    /// against `parameter` (column names of the table; parameters may be given by their short
    /// name), one line per figure and combination of the other parameters, on one axis.
    static func plot(_ t: (header: [String], rows: [[String]]), spec: String, sweep: Sweep, store: Store) throws -> String {
        let parts = spec.split(separator: ":", maxSplits: 1).map(String.init)
        guard parts.count == 2 else { throw UsageError("--plot '\(spec)' is not figure[,figure...]:parameter") }
        let figures = Array(t.header.drop { $0 != "state" }.dropFirst())
        let parameters = Array(t.header.dropFirst().prefix { $0 != "state" })
        let wanted = parts[0].split(separator: ",").map(String.init)
        let ys = try wanted.map { f -> Int in
            guard let y = t.header.firstIndex(of: f), figures.contains(f) else {
                throw UsageError("--plot: no figure '\(f)'" + NearestName.hintOrChoices(f, among: figures))
            }
            return y
        }
        guard let x = t.header.firstIndex(of: parts[1]), parameters.contains(parts[1]) else {
            throw UsageError("--plot: no parameter '\(parts[1])'" + NearestName.hintOrChoices(parts[1], among: parameters))
        }
        let others = parameters.filter { $0 != parts[1] }.compactMap { t.header.firstIndex(of: $0) }
        var series: [(name: String, points: [(x: String, y: Double)])] = []
        for (f, y) in zip(wanted, ys) {
            for row in t.rows {
                guard let value = Double(row[y]) else { continue }
                let rest = others.map { "\(t.header[$0])=\(row[$0])" }.joined(separator: ", ")
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

    /// Plans the merged DAG (what is cached) and writes the tables beside the state, and plots.
    static func report(_ sweep: Sweep, store: Store, plots: [String] = [], failed: Set<String> = []) throws -> String {
        let plan = try Planner.plan(sweep.merged, selection: Set(sweep.merged.order), forced: [], lookups: .store(store, pipeline: sweep.merged.name))
        var planned: [String: PlanEntry] = [:]
        for e in plan { planned[e.stage] = e }
        let t = rows(sweep, store: store, planned: planned, failed: failed)
        try FileIO.writeAtomically(csv(t), to: "\(store.root)/sweeps/\(sweep.name)/results.csv")
        let md = markdown(withoutConstantFigures(t))
        try FileIO.writeAtomically(md, to: "\(store.root)/sweeps/\(sweep.name)/results.md")
        for p in plots { FileIO.writeStderr("plot: \(try plot(t, spec: p, sweep: sweep, store: store))\n") }
        return md
    }
}

struct SweepRun: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "run", abstract: "Run (or resume, or extend) a sweep.")

    @Argument(help: ArgumentHelp("The pipeline spec (JSON).", valueName: "spec")) var spec: String
    @Option(parsing: .singleValue, help: ArgumentHelp("A grid axis: stage.param=v1,v2,... (repeatable; axes multiply).", valueName: "stage.param=values"))
    var grid: [String] = []
    @Option(parsing: .singleValue, help: ArgumentHelp("A zipped axis: the i-th values of all --zip axes go together (repeatable).", valueName: "stage.param=values"))
    var zip: [String] = []
    @Option(help: "The sweep's name: its state and tables live under sweeps/<name> in the store (default: the spec's sweep block's).") var name: String?
    @Option(name: [.short, .customLong("jobs")], help: "CPU slots for concurrently running stages (default: number of cores).") var jobs: Int?
    @Flag(help: "Keep running the other points after a failure.") var keepGoing = false
    @Flag(help: "Plain log lines even on a terminal.") var plain = false
    @Option(parsing: .singleValue, help: ArgumentHelp("Plot a figure against a parameter as SVG (repeatable), e.g. score_valid.oracle_f1:alpha.", valueName: "figure:param"))
    var plot: [String] = []
    @OptionGroup var storeOptions: StoreOptions
    @OptionGroup var executorOptions: ExecutorOptions

    static func axes(_ specs: [String], flag: String) throws -> [(parameter: String, values: [String])] {
        try specs.map { s in
            guard let eq = s.firstIndex(of: "="), !s[s.index(after: eq)...].isEmpty else { throw UsageError("\(flag) '\(s)' is not stage.param=v1,v2,...") }
            // The same `stage.param[.sub]` paths as `run --set`.
            return (String(s[..<eq]), s[s.index(after: eq)...].split(separator: ",").map(String.init))
        }
    }

    func run() throws {
        do {
            var points: [Sweep.Point]
            var blockName: String?
            if grid.isEmpty && zip.isEmpty {
                // The spec's own sweep block.
                let text: String
                do { text = try FileIO.readString(spec) } catch { throw UsageError("cannot read \(spec): \(error.reason)") }
                _ = try PipelineSpec.parse(text: text, file: spec, registry: HAPSStages.registry)  // every problem, with file:line
                guard let block = try JSONParser.parse(text)["sweep"] else {
                    throw UsageError("give --grid or --zip axes, or a \"sweep\" block in \(spec) (docs/sweeps.md)")
                }
                (blockName, points) = try Sweep.points(fromBlock: block)
                guard !points.isEmpty else { throw UsageError("\(spec): the sweep block has no points") }
            } else {
                points = Sweep.grid(try SweepRun.axes(grid, flag: "--grid"))
                if !zip.isEmpty {
                    let zipped = try Sweep.zip(try SweepRun.axes(zip, flag: "--zip"))
                    points = points.flatMap { g in zipped.map { z in Sweep.Point(label: [g.label, z.label].filter { !$0.isEmpty }.joined(separator: ","), overrides: g.overrides + z.overrides) } }
                }
            }
            guard let name = name ?? blockName else { throw UsageError("give the sweep a --name (or a name in the spec's sweep block)") }
            guard name.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" }), !name.isEmpty else {
                throw UsageError("--name may hold letters, digits, '-' and '_' only")
            }
            let store = try storeOptions.open()
            // An existing sweep of this name is extended with the new points.
            var state = try SweepState.load(store, name) ?? SweepState(name: name, spec: spec, points: [])
            guard state.spec == spec else { throw UsageError("sweep '\(name)' exists for \(state.spec); choose another --name") }
            for p in points where !state.points.contains(p) { state.points.append(p) }
            let sweep = try state.sweep(in: store)
            try SweepTable.checkPlots(plot, sweep)
            try state.save(store)
            var options = RunOptions.tool
            options.jobs = max(1, jobs ?? RunOptions.cores)
            options.keepGoing = keepGoing
            executorOptions.apply(to: &options)
            // Ctrl-C stops cleanly, as in `run` (Slurm jobs are cancelled, journals kept).
            let cancellation = CancellationToken()
            let interrupts = InterruptHandler(cancellation: cancellation)
            let display = ProgressDisplay(interactive: plain ? false : nil, onFirstStart: { interrupts.arm() })
            interrupts.display = display
            FileIO.writeStderr("sweep \(name): \(state.points.count) points, \(sweep.merged.order.count) distinct stages " +
                               "(\(sweep.mapping.reduce(0) { $0 + $1.count }) over all points)\n")
            let summary = try Executor(spec: sweep.merged, store: store, options: options, cancellation: cancellation, observer: display).run()
            interrupts.disarm()
            state.failed = summary.failures.map(\.stage)
            try state.save(store)
            print(try SweepTable.report(sweep, store: store, plots: plot, failed: Set(state.failed)), terminator: "")
            FileIO.writeStderr("tables: \(store.root)/sweeps/\(name)/results.csv, results.md\n")
            if summary.interrupted { throw ExitCode(130) }
            if !summary.failures.isEmpty { throw ExitCode.failure }
        } catch let e as ExitCode { throw e } catch { throw ErrorOutput.fail(error) }
    }
}

struct SweepStatus: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "status", abstract: "A sweep's points (done, running, failed or pending) with their figures.")
    @Argument(help: "The sweep's name.") var name: String
    @Option(parsing: .singleValue, help: ArgumentHelp("Plot a figure against a parameter as SVG (repeatable).", valueName: "figure:param"))
    var plot: [String] = []
    @OptionGroup var storeOptions: StoreOptions

    func run() throws {
        do {
            let store = try storeOptions.open()
            guard let state = try SweepState.load(store, name) else {
                let known = ((try? FileIO.listFiles(under: store.root + "/sweeps")) ?? []).filter { $0.hasSuffix(".json") && !$0.contains("/") }.map { String($0.dropLast(5)) }
                throw NotFoundError("no sweep named '\(name)' in \(store.root)" + NearestName.hintOrChoices(name, among: known))
            }
            let sweep = try state.sweep(in: store)
            print(try SweepTable.report(sweep, store: store, plots: plot, failed: Set(state.failed)), terminator: "")
            let jobs = SlurmJobInFlight.all(in: store).filter { $0.pipeline == sweep.merged.name }
            if !jobs.isEmpty { print("Slurm jobs in flight:") }
            for j in jobs { print("  \(j.stage): \(j.label)") }
        } catch { throw ErrorOutput.fail(error) }
    }
}

