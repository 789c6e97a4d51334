import ArgumentParser
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Dispatch
#if canImport(Glibc)
import Glibc
#endif
import Pipeline
import Stages

struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run a pipeline: every stage whose result is not cached, in parallel.",
        discussion: """
            Stages are keyed by their type and version, parameters, resources and input \
            contents; a stage whose key is in the store is not run again. Independent stages \
            run at once within -j CPU slots and the spec's pools. Ctrl-C stops cleanly \
            (finished items are kept and resumed by the next run); a second Ctrl-C aborts.

            Exit status: 0 success, 1 a stage failed, 2 the spec is invalid, 130 interrupted.
            """)

    @OptionGroup var specOptions: SpecOptions
    @OptionGroup var storeOptions: StoreOptions
    @OptionGroup var executorOptions: ExecutorOptions

    @Option(name: [.short, .customLong("jobs")], help: "CPU slots for concurrently running stages, or Slurm jobs in flight under --executor slurm (default: number of cores).")
    var jobs: Int?

    @Flag(help: "Keep running every stage whose inputs succeeded after a failure, and every stage that needs no missing input (a model yet to fetch); report all failures at the end.")
    var keepGoing = false

    @Option(parsing: .singleValue, help: ArgumentHelp("Recompute this stage even if cached (repeatable).", valueName: "stage"))
    var force: [String] = []

    @Option(parsing: .singleValue, help: ArgumentHelp("Run only this stage and what it needs (repeatable).", valueName: "stage"))
    var until: [String] = []

    @Flag(help: "Read and verify every cached object used, not only those whose files changed, and rehash every input file instead of trusting its size, times and inode.")
    var verify = false

    @Flag(help: "Plain log lines even on a terminal.")
    var plain = false

    @Option(help: ArgumentHelp("Name this run's experiment (default: its --set overrides, or \"spec\" without any); `exp show` lists experiments and gc keeps each one's results.", valueName: "name"))
    var exp: String?

    func run() throws {
        let spec: PipelineSpec, store: Store
        do { store = try storeOptions.open(); spec = try specOptions.load(store: store) } catch { throw ErrorOutput.fail(error) }
        for s in force + until where spec.stages[s] == nil {
            throw ErrorOutput.fail(UsageError("unknown stage '\(s)'" + NearestName.hint(s, among: spec.order)))
        }
        var options = RunOptions.tool
        options.jobs = max(1, jobs ?? RunOptions.cores)
        options.keepGoing = keepGoing
        options.force = Set(force)
        options.until = until
        options.verify = verify
        options.experiment = (exp ?? Experiment.name(overrides: specOptions.overrides), specOptions.overrides)
        executorOptions.apply(to: &options)
        let cancellation = CancellationToken()
        let interrupts = InterruptHandler(cancellation: cancellation)
        // Ctrl-C handling is armed when the first stage starts running; before that there is no
        // work to keep, and a no-op run stays a few milliseconds.
        let display = ProgressDisplay(interactive: plain ? false : nil, onFirstStart: { interrupts.arm() })
        interrupts.display = display
        let summary: RunSummary
        do {
            summary = try Executor(spec: spec, store: store, options: options, cancellation: cancellation, observer: display).run()
        } catch { throw ErrorOutput.fail(error) }
        interrupts.disarm()
        let counts = Dictionary(grouping: summary.results, by: { $0.outcome.label }).mapValues(\.count)
        let parts = ["ran", "cached", "failed", "skipped", "cancelled"].compactMap { k in counts[k].map { "\($0) \(k)" } }
        let line = "\(spec.name): \(parts.joined(separator: ", ")) in \(Format.fixed(summary.seconds, 2))s (store \(store.root), run \(summary.runID))"
        FileIO.writeStderr(line + "\n")
        // Where the results are: the final stages' outputs.
        let sinks = spec.order.filter { summary.result($0)?.output != nil && spec.dependents(of: $0).allSatisfy { summary.result($0) == nil } }
        for s in sinks where summary.succeeded {
            let storeFlag = storeOptions.store == "artifacts" ? "" : " --store \(storeOptions.store)"
            // `show` shows the spec's own result: another experiment's is named with --exp.
            let experiment = options.experiment?.name ?? "spec"
            let expFlag = experiment == "spec" ? "" : " --exp '\(experiment)'"
            FileIO.writeStderr("result of \(s): \(summary.result(s)!.output!.short)  (see: haps-pipe show \(spec.name)/\(s)\(expFlag)\(storeFlag))\n")
        }
        if summary.interrupted { throw ExitCode(130) }
        if !summary.failures.isEmpty {
            let names = summary.failures.map(\.stage).joined(separator: ", ")
            FileIO.writeStderr("failed: \(names)\n")
            throw ExitCode.failure
        }
        if !summary.succeeded {
            let names = summary.results.filter { !$0.outcome.succeeded }.map(\.stage).joined(separator: ", ")
            FileIO.writeStderr("not run (missing inputs): \(names)\n")
            throw ExitCode.failure
        }
    }
}

/// First Ctrl-C: stop cleanly (cancel running stages, keep journals). Second: exit at once.
final class InterruptHandler: @unchecked Sendable {
    private var sources: [any DispatchSourceSignal] = []
    private var count = 0
    private let lock = Lock()
    private let cancellation: CancellationToken
    weak var display: ProgressDisplay?

    init(cancellation: CancellationToken) { self.cancellation = cancellation }

    func arm() {
        lock.lock(); defer { lock.unlock() }
        guard sources.isEmpty else { return }
        let cancellation = self.cancellation
        for sig in [SIGINT, SIGTERM] {
            signal(sig, SIG_IGN)
            let s = DispatchSource.makeSignalSource(signal: sig, queue: ControlEvents.queue)
            s.setEventHandler { [weak self] in
                guard let self else { return }
                let n = self.lock.withLock { self.count += 1; return self.count }
                if n == 1 {
                    self.display?.message(nil, "interrupted: stopping running stages and keeping finished work (press Ctrl-C again to abort at once)")
                    cancellation.cancel()
                } else {
                    FileIO.writeStderr("aborted\n")
                    _exit(130)
                }
            }
            s.resume()
            sources.append(s)
        }
    }

    func disarm() {
        lock.lock(); defer { lock.unlock() }
        for s in sources { s.cancel() }
        signal(SIGINT, SIG_DFL); signal(SIGTERM, SIG_DFL)
    }
}
