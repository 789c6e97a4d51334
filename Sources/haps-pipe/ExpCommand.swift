import ArgumentParser
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Pipeline
import Stages

/// `haps-pipe exp`: the experiments of a store (runs of a pipeline with different --set
/// overrides), in the manner of DVC's `exp show`, `params diff` and `metrics diff`.
struct ExpCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "exp",
        abstract: "List and compare experiments: a pipeline's runs with different --set overrides, kept until dropped.",
        discussion: """
            Every `haps-pipe run` belongs to an experiment: "spec" (the spec as written) or the \
            one its --set overrides make (`run --exp NAME` names it). `gc` keeps what the latest \
            run of each experiment ended with, so trying a value never lets the spec's own results \
            go; `exp drop` does.

            Examples:
              haps-pipe run pipelines/quickstart.json --set sample_valid.budget=2
              haps-pipe exp show pipelines/quickstart.json
              haps-pipe exp diff spec sample_valid.budget=2
              haps-pipe exp drop sample_valid.budget=2 && haps-pipe gc
            """,
        subcommands: [ExpShow.self, ExpDiff.self, ExpDrop.self])

    /// The experiment called `name` (`Store.experiment(named:pipeline:)`); a name several
    /// pipelines have is a usage error (exit status 2): the command line must say which.
    static func find(_ name: String, in store: Store, pipeline: String?) throws -> Experiment {
        do { return try store.experiment(named: name, pipeline: pipeline) } catch where error.code == .ambiguous {
            throw UsageError(error.message)
        }
    }

    /// "stage.figure" → value for the latest results of `e` (figures as the HAPS stage types define them).
    static func figures(_ e: Experiment, store: Store) -> [(name: String, value: Double)] {
        store.figures(of: e, registry: HAPSStages.registry)
    }

    static func when(_ e: Experiment) -> String {
        e.latest["started"]?.doubleValue.map { Format.iso8601(Date(timeIntervalSince1970: $0)) } ?? "?"
    }
}

struct ExpOptions: ParsableArguments {
    @Option(help: ArgumentHelp("The pipeline (when several have experiments of that name).", valueName: "name")) var pipeline: String?
    @OptionGroup var storeOptions: StoreOptions
}

struct ExpShow: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "show", abstract: "A table of experiments: overrides, last run, stages run, and the figures that differ.")
    @Argument(help: ArgumentHelp("A pipeline spec: show its experiments (default: every pipeline's).", valueName: "spec")) var spec: String?
    @OptionGroup var options: ExpOptions

    func run() throws {
        do {
            let store = try options.storeOptions.open()
            var pipeline = options.pipeline
            if let spec { pipeline = try PipelineSpec.load(path: spec, registry: HAPSStages.registry).name }
            let all = try store.experiments(pipeline: pipeline)
            guard !all.isEmpty else { print("no experiments in \(store.root) yet: `haps-pipe run SPEC` makes the first"); return }
            for p in Array(Set(all.map(\.pipeline))).sorted() {
                let exps = all.filter { $0.pipeline == p }
                print("\(p): \(exps.count) experiment\(exps.count == 1 ? "" : "s")")
                let width = max(12, exps.map(\.name.count).max()! + 2)
                row("  " + pad("experiment", width) + pad("runs", 6) + pad("last run", 22) + "stages (ran in it)")
                for e in exps {
                    let stages = e.latest["stages"]?.arrayValue ?? []
                    let ran = stages.filter { $0["outcome"]?.stringValue == "ran" }.count
                    let failed = stages.filter { $0["outcome"]?.stringValue == "failed" }.count
                    row("  " + pad(e.name, width) + pad("\(e.runIDs.count)", 6) + pad(ExpCommand.when(e), 22)
                          + "\(stages.count) (\(ran))" + (failed > 0 ? ", \(failed) failed" : ""))
                }
                // Figures: those that differ between experiments (all of them for a single one).
                let values = exps.map { Dictionary(ExpCommand.figures($0, store: store).map { ($0.name, $0.value) }) { a, _ in a } }
                var names: [String] = []
                for v in values { for n in v.keys.sorted() where !names.contains(n) { names.append(n) } }
                let shown = exps.count == 1 ? names : names.filter { n in Set(values.map { $0[n].map { Format.fixed($0, 4) } ?? "" }).count > 1 }
                if shown.isEmpty { continue }
                // One row per figure, one column per experiment.
                let first = max(24, shown.map(\.count).max()! + 2), columns = exps.map { max($0.name.count + 2, 10) }
                row("  " + pad(exps.count == 1 ? "figures" : "figures that differ", first) + zip(exps, columns).map { pad($0.name, $1) }.joined())
                for n in shown {
                    row("  " + pad(n, first) + zip(values, columns).map { pad($0[n].map { Format.fixed($0, 4) } ?? "-", $1) }.joined())
                }
                ExpShow.printReplicates(exps, values: values, figures: shown)
            }
        } catch { throw ErrorOutput.fail(error) }
    }

    /// Experiments that differ only by seed overrides (`--set rl_train.seed=2`) are replicates
    /// of one configuration: each such group of two or more, with every figure shown above
    /// pooled over its members as mean ± sd [95% interval] (`Replicates.Summary`).
    static func printReplicates(_ exps: [Experiment], values: [[String: Double]], figures: [String]) {
        let pooled = Replicates.groups(exps.map(\.overrides)).filter { g in g.members.count > 1 && g.members.contains { exps[$0].overrides.contains(where: Replicates.isSeedOverride) } }
        guard !pooled.isEmpty, !figures.isEmpty else { return }
        let first = max(24, figures.map(\.count).max()! + 2)
        for g in pooled {
            let label = g.configuration.isEmpty ? "the spec" : g.configuration.joined(separator: " ")
            row("  replicates of \(label) (\(g.members.count) seeds: \(g.members.map { exps[$0].name }.joined(separator: ", "))): mean ± sd [95% interval]")
            for n in figures {
                row("  " + pad(n, first) + (Replicates.Summary(g.members.compactMap { values[$0][n] })?.text() ?? "-"))
            }
        }
    }
}

/// A table row without its trailing padding.
private func row(_ s: String) { print(String(s.reversed().drop { $0 == " " }.reversed())) }

struct ExpDiff: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "diff", abstract: "What differs between two experiments: parameters and inputs by stage (params diff), then figures (metrics diff).")
    @Argument(help: "The first experiment.") var a: String
    @Argument(help: "The second experiment.") var b: String
    @OptionGroup var options: ExpOptions

    func run() throws {
        do {
            let store = try options.storeOptions.open()
            let x = try ExpCommand.find(a, in: store, pipeline: options.pipeline), y = try ExpCommand.find(b, in: store, pipeline: options.pipeline ?? x.pipeline)
            print("\(x.pipeline): \(x.name) → \(y.name)")
            let ys = Dictionary(y.results.map { ($0.stage, $0) }) { a, _ in a }
            print("params diff (by stage; the stages whose keys differ):")
            var any = false
            for r in x.results {
                guard let other = ys[r.stage], other.key != r.key else { continue }
                any = true
                let lines = StageKey.differences(from: store.action(r.key)?.payload, to: store.action(other.key)?.payload ?? .null)
                print("  \(r.stage): " + (lines.isEmpty ? "its key differs" : lines.joined(separator: "; ")))
            }
            if !any { print("  none: every stage has the same key") }
            print("metrics diff:")
            let fx = ExpCommand.figures(x, store: store), fy = Dictionary(ExpCommand.figures(y, store: store).map { ($0.name, $0.value) }) { a, _ in a }
            var changed = 0
            for f in fx {
                guard let v = fy[f.name], Format.fixed(v, 4) != Format.fixed(f.value, 4) else { continue }
                changed += 1
                print("  " + pad(f.name, 36) + "\(Format.fixed(f.value, 4)) → \(Format.fixed(v, 4))  (\(v - f.value >= 0 ? "+" : "")\(Format.fixed(v - f.value, 4)))")
            }
            if changed == 0 { print("  none of \(fx.count) figures differ") }
        } catch { throw ErrorOutput.fail(error) }
    }
}

struct ExpDrop: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "drop", abstract: "Forget an experiment's runs, so that gc may remove its results (the refs' stay).")
    @Argument(help: "The experiment.") var name: String
    @OptionGroup var options: ExpOptions

    func run() throws {
        do {
            let store = try options.storeOptions.open()
            let e = try ExpCommand.find(name, in: store, pipeline: options.pipeline)
            let n = store.dropExperiment(e)
            print("dropped experiment '\(e.name)' of \(e.pipeline) (\(n) run record\(n == 1 ? "" : "s")); `haps-pipe gc --dry-run` shows what can go now")
        } catch { throw ErrorOutput.fail(error) }
    }
}
