#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Dispatch
#if canImport(Glibc)
import Glibc
#endif

/// Where a stage input comes from: another stage's output, a user's file or directory, or an
/// artifact already in the store (by digest: what a Slurm job's one-stage spec reads).
public enum InputSource: Sendable, Equatable {
    case stage(String)
    case path(String)
    case artifact(Digest)
}

/// A validated stage of a pipeline: its type, decoded parameters and wired inputs.
public struct PlannedStageSpec: Sendable {
    public var name: String
    public var definition: StageDefinition
    /// The effective parameters (defaults applied; what the key digests).
    public var paramsJSON: JSONValue
    public var params: any Sendable
    public var ports: StagePorts
    /// Port name → source, in the spec's order.
    public var inputs: [(port: String, kind: ArtifactKind, source: InputSource)]
    public var resources: [String: JSONValue]
    public var pool: String?
    public var cpus: Int
    public var seed: Int
    /// What a cluster job of this stage asks for beyond its CPUs (`mem`, `gpus`, `time`);
    /// ignored by the local executor.
    public var job = JobResources()
    public var dependencies: [String] { inputs.compactMap { if case .stage(let s) = $0.source { return s } else { return nil } } }
}

/// A pipeline spec that passed validation: stages in a topological order.
///
///     let spec = try PipelineSpec.load(path: "pipelines/quickstart.json", registry: registry)
///     spec.order   // ["synth", "train_a", ...]
public struct PipelineSpec: Sendable {
    public var name: String
    public var description: String
    public var sourcePath: String
    /// Relative input paths are resolved against this directory (the working directory).
    public var baseDirectory: String
    public var seed: Int
    public var pools: [String: Int]
    /// Where the stages run unless the command line says otherwise (`executor` block).
    public var executor: ExecutorKind = .local
    public var stages: [String: PlannedStageSpec]
    /// Stages in a deterministic topological order (spec order among ready stages).
    public var order: [String]
    /// The raw document (after overrides), kept for run records.
    public var document: JSONValue

    /// Stages that consume `stage`'s output.
    public func dependents(of stage: String) -> [String] {
        order.filter { stages[$0]!.dependencies.contains(stage) }
    }

    /// `stage` and everything it (transitively) depends on.
    public func ancestors(of stage: String, including: Bool = true) -> Set<String> {
        var seen = Set<String>(), todo = [stage]
        while let s = todo.popLast() {
            guard seen.insert(s).inserted, let st = stages[s] else { continue }
            todo += st.dependencies
        }
        if !including { seen.remove(stage) }
        return seen
    }

    /// Everything downstream of `stage`.
    public func descendants(of stage: String) -> Set<String> {
        var seen = Set<String>(), todo = [stage]
        while let s = todo.popLast() {
            for d in dependents(of: s) where seen.insert(d).inserted { todo.append(d) }
        }
        return seen
    }
}
