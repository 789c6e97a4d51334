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
              haps-pipe sweep pipelines/quickstart.json --seeds rl_train=1,2,3 --name rl_seeds
              haps-pipe sweep SPEC                      (the spec's own \"sweep\" block)
              haps-pipe sweep status alpha --plot score_valid.oracle_f1:alpha

            Axes take the paths of run --set (a command stage's own parameters are under params). \
            Docs: docs/sweeps.md.
            """,
        subcommands: [SweepRun.self, SweepStatus.self],
        defaultSubcommand: SweepRun.self)
}

extension SweepCommand {
    /// Writes the sweep's tables beside its state (`SweepTable.report`) and the plots asked
    /// for, naming each plot's file on standard error; returns the Markdown table to print.
    static func report(_ sweep: Sweep, store: Store, plots: [String] = [], failed: Set<String> = []) throws -> String {
        let (table, markdown) = try SweepTable.report(sweep, store: store, failed: failed)
        for p in plots { FileIO.writeStderr("plot: \(try table.plot(p, sweep: sweep, store: store))\n") }
        return markdown
    }
}

struct SweepRun: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "run", abstract: "Run (or resume, or extend) a sweep.")

    @Argument(help: ArgumentHelp("The pipeline spec (JSON).", valueName: "spec")) var spec: String
    @Option(parsing: .singleValue, help: ArgumentHelp("A grid axis: stage.param=v1,v2,... (repeatable; axes multiply).", valueName: "stage.param=values"))
    var grid: [String] = []
    @Option(parsing: .singleValue, help: ArgumentHelp("A zipped axis: the i-th values of all --zip axes go together (repeatable).", valueName: "stage.param=values"))
    var zip: [String] = []
    @Option(help: ArgumentHelp("Replicate every point over these seeds: the spec's seed (1,2,3), or only the named stages' (rl_train,rl_train_no_lora=1,2,3, so that what is upstream of them is shared); the table pools each point's replicates: mean ± sd [95% interval].",
                               valueName: "[stages=]seeds"))
    var seeds: String?
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

    /// `--seeds [stages=]seeds`: the seeds, and the stages whose seed they set (none: the spec's).
    static func seeds(_ text: String) throws -> (seeds: [Int], stages: [String]) {
        let parts = text.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
        let stages = parts.count == 2 ? parts[0].split(separator: ",").map(String.init) : []
        let seeds = (parts.last ?? "").split(separator: ",").map { Int($0.filter { $0 != " " }) }
        guard !seeds.isEmpty, seeds.allSatisfy({ $0 != nil }), parts.count == 1 || !stages.isEmpty else {
            throw UsageError("--seeds '\(text)' is not seeds (1,2,3) or stages=seeds (rl_train,rl_train_no_lora=1,2,3)")
        }
        return (seeds.map { $0! }, stages)
    }

    func run() throws {
        do {
            var points: [Sweep.Point]
            var blockName: String?
            if grid.isEmpty && zip.isEmpty && seeds == nil {
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
                if let seeds {
                    let (values, stages) = try SweepRun.seeds(seeds)
                    points = Sweep.replicated(points, seeds: values, stages: stages)
                }
            }
            guard let name = name ?? blockName else { throw UsageError("give the sweep a --name (or a name in the spec's sweep block)") }
            guard name.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" }), !name.isEmpty else {
                throw UsageError("--name may hold letters, digits, '-' and '_' only")
            }
            let store = try storeOptions.open()
            // An existing sweep of this name is extended with the new points.
            var state = try SweepState.extending(name, spec: spec, with: points, in: store)
            let sweep = try state.sweep(in: store, registry: HAPSStages.registry)
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
            print(try SweepCommand.report(sweep, store: store, plots: plot, failed: Set(state.failed)), terminator: "")
            let replicates = FileIO.exists("\(store.root)/sweeps/\(name)/replicates.csv") ? ", replicates.csv" : ""
            FileIO.writeStderr("tables: \(store.root)/sweeps/\(name)/results.csv, results.md\(replicates)\n")
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
                throw NotFoundError("no sweep named '\(name)' in \(store.root)" + NearestName.hintOrChoices(name, among: SweepState.names(in: store)))
            }
            let sweep = try state.sweep(in: store, registry: HAPSStages.registry)
            print(try SweepCommand.report(sweep, store: store, plots: plot, failed: Set(state.failed)), terminator: "")
            let jobs = SlurmJobInFlight.all(in: store).filter { $0.pipeline == sweep.merged.name }
            if !jobs.isEmpty { print("Slurm jobs in flight:") }
            for j in jobs { print("  \(j.stage): \(j.label)") }
        } catch { throw ErrorOutput.fail(error) }
    }
}

