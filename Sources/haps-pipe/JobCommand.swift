import ArgumentParser
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Pipeline
import Stages

/// Where stages run, for `run` and `sweep run`.
struct ExecutorOptions: ParsableArguments {
    @Option(help: ArgumentHelp("Where stages run: local (this machine) or slurm (one sbatch job per stage, over a store on a shared filesystem; docs/cluster.md). Default: the spec's executor block, else local.",
                               valueName: "local|slurm"))
    var executor: String?

    func validate() throws {
        if let e = executor, e != "local" && e != "slurm" {
            throw ValidationError("--executor '\(e)': expected local or slurm" + NearestName.hint(e, among: ["local", "slurm"]))
        }
    }

    func apply(to options: inout RunOptions) {
        options.executor = executor
        options.jobCommand = FileIO.realPath("/proc/self/exe") ?? CommandLine.arguments[0]
    }
}

/// What a Slurm job runs on its node: exactly the stage its driver planned, from the shared
/// store (docs/cluster.md).
struct Job: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "job",
        abstract: "Run one planned stage from the store, as a Slurm job of --executor slurm does.",
        discussion: """
            DIR is the job's directory in the store (STORE/jobs/KEY), where the driver wrote \
            job.json: the stage's type, parameters, resources, seed and input artifacts. The \
            stage runs only if this haps-pipe makes the same key of it as the driver did; it \
            takes the key's lock, resumes the stage's journal or checkpoint, and commits its \
            artifact and ref to the store. Exit status 0 when the result is in the store.
            """,
        shouldDisplay: false)

    @Argument(help: ArgumentHelp("The job's directory (STORE/jobs/KEY).", valueName: "dir")) var dir: String
    @OptionGroup var storeOptions: StoreOptions

    func run() throws {
        do {
            let job = try StageJob.load(directory: dir)
            let spec = try job.spec(registry: HAPSStages.registry)
            var options = RunOptions.tool
            options.jobs = max(1, job.cpus)
            options.executor = "local"
            if job.forced { options.force = [job.stage] }
            let store = try storeOptions.open()
            let cancellation = CancellationToken()
            let interrupts = InterruptHandler(cancellation: cancellation)  // scancel sends SIGTERM: stop cleanly, keep the journal
            interrupts.arm()
            let summary = try Executor(spec: spec, store: store, options: options, cancellation: cancellation,
                                       observer: ProgressDisplay(interactive: false)).run()
            interrupts.disarm()
            guard let result = summary.result(job.stage), result.outcome.succeeded, let output = result.output else {
                if summary.interrupted { throw ExitCode(130) }
                throw ExitCode.failure
            }
            print("stage '\(job.stage)' of '\(job.pipeline)': \(result.outcome.label) → \(output.hex)")
        } catch let e as ExitCode { throw e } catch { throw ErrorOutput.fail(error) }
    }
}
