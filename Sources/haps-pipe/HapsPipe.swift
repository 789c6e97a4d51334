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

@main
struct HapsPipe: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "haps-pipe",
        abstract: "Run HAPS hierarchical-routing experiments as cached, resumable pipelines.",
        discussion: """
            A pipeline spec (JSON) names resources and stages; `run` executes the stages whose \
            results are not already in the store, in parallel, and resumes interrupted work.

            Examples:
              haps-pipe run pipelines/demo.json
              haps-pipe plan pipelines/demo.json --set rl_train.alpha=0.1
              haps-pipe run pipelines/demo.json --set rl_train.alpha=0.1 -j 2
              haps-pipe explain rl_train
              haps-pipe show evaluate

            Docs: docs/spec.md (spec format), docs/running.md, docs/store.md.
            """,
        version: "0.1.0",
        subcommands: [Run.self, Plan.self, Explain.self, Status.self, Show.self, GC.self,
                      Metrics.self, Score.self, Import.self, BuildSFTCommand.self, SFTTrainCommand.self, RLTrainCommand.self, Sample.self, Generate.self, Embed.self, Serve.self, UI.self, Report.self, SweepCommand.self,
                      Types.self, Dag.self, ExpCommand.self, Export.self, ExportGGUF.self, Job.self])
}

/// Options every command that reads a store takes.
struct StoreOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("Directory of the artifact store.", valueName: "dir"))
    var store: String = "artifacts"

    func open() throws -> Store { try Store(root: store) }
}

/// A spec path plus `--set` overrides.
struct SpecOptions: ParsableArguments {
    @Argument(help: ArgumentHelp("The pipeline spec (JSON).", valueName: "spec"))
    var spec: String

    @Option(name: .customLong("set"), parsing: .singleValue,
            help: ArgumentHelp("Override a stage parameter: stage.param=value, a typed stage's parameter or a command stage's own (value parsed as JSON when it can be; repeatable).",
                               valueName: "stage.param=value"))
    var overrides: [String] = []

    func load() throws -> PipelineSpec {
        try PipelineSpec.load(path: spec, registry: HAPSStages.registry, overrides: overrides)
    }

    /// The spec, its inputs allowed to name results in `store` (PIPELINE/STAGE, digests).
    func load(store: Store) throws -> PipelineSpec {
        try PipelineSpec.load(path: spec, registry: HAPSStages.registry, overrides: overrides, stored: store.results)
    }
}

/// The files and directories a direct command (`sample`, `sft-train`, `rl-train`) was given,
/// checked before it builds its one-stage pipeline: a missing one is reported in the terms the
/// user typed (`--questions q.jsonl: no such file or directory`), every one at once, not as a
/// place in the generated spec.
func requireExisting(_ paths: [(flag: String, path: String?)]) throws {
    let missing = paths.compactMap { p in p.path.flatMap { FileIO.exists($0) ? nil : "\(p.flag) \($0): no such file or directory" } }
    if !missing.isEmpty { throw UsageError(missing.joined(separator: "\n")) }
}

/// A command line that names something the spec does not have (exit status 2, like a bad spec).
struct UsageError: Error, CustomStringConvertible {
    var description: String
    init(_ message: String) { description = message }
}

/// Something asked for is not in the store (exit status 1).
struct NotFoundError: Error, CustomStringConvertible {
    var description: String
    init(_ message: String) { description = message }
}

/// Prints an error the way users see every error: one renderer for all, `error: ...` on
/// standard error. Exit status 2 for invalid specs and arguments, 1 for everything else.
enum ErrorOutput {
    static func fail(_ error: any Error) -> ExitCode {
        if let code = error as? ExitCode { return code }
        let text: String
        switch error {
        case let e as SpecError: text = "error: " + e.description
        case let e as any CustomStringConvertible: text = "error: \(e.description)"
        default: text = "error: \(error)"
        }
        FileIO.writeStderr(text + "\n")
        let usage = error is SpecError || error is UsageError || (error as? SweepError)?.code == .badRequest
        return usage ? ExitCode(2) : ExitCode.failure
    }
}
