#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// The runs of one pipeline with one set of overrides: the spec as written ("spec"), or
/// `run --set sample_valid.budget=2` (named by its overrides unless `run --exp NAME` names it).
/// `gc` keeps what the latest run of every experiment ended with until the experiment is
/// dropped (`haps-pipe exp drop`), so a one-off `--set` run never makes the spec's own results
/// collectable, nor the other way round.
public struct Experiment: Sendable {
    public var pipeline: String
    public var name: String
    public var overrides: [String]
    /// Its run records, newest first.
    public var runIDs: [String]
    /// The newest run record.
    public var latest: JSONValue

    /// The default name of a run's experiment: "spec" as written, else its overrides.
    public static func name(overrides: [String]) -> String { overrides.isEmpty ? "spec" : overrides.joined(separator: " ") }

    /// Stage → (key, output) of the latest run's stages that have a result.
    public var results: [(stage: String, key: Digest, output: Digest)] {
        (latest["stages"]?.arrayValue ?? []).compactMap { s in
            guard let stage = s["stage"]?.stringValue, let k = s["key"]?.stringValue.flatMap(Digest.init(hex:)),
                  let o = s["output"]?.stringValue.flatMap(Digest.init(hex:)) else { return nil }
            return (stage, k, o)
        }
    }
}

extension Store {
    /// Every experiment in the run records, by pipeline then name (runs without an experiment,
    /// such as a Slurm job's or a sweep's, are not experiments).
    public func experiments() -> [Experiment] {
        var groups: [String: Experiment] = [:], order: [String] = []
        for id in runRecordIDs() {  // newest first
            guard let r = runRecord(id: id), let pipeline = r["pipeline"]?.stringValue, let name = r["experiment"]?.stringValue else { continue }
            let k = pipeline + "\u{0}" + name
            if groups[k] == nil {
                groups[k] = Experiment(pipeline: pipeline, name: name, overrides: (r["overrides"]?.arrayValue ?? []).compactMap(\.stringValue),
                                       runIDs: [], latest: r)
                order.append(k)
            }
            groups[k]!.runIDs.append(id)
        }
        return order.map { groups[$0]! }.sorted { ($0.pipeline, $0.name == "spec" ? "" : $0.name) < ($1.pipeline, $1.name == "spec" ? "" : $1.name) }
    }

    /// The artifacts the latest run of each experiment ended with: what `gc` keeps beside the refs.
    public func experimentResults() -> [Digest] { experiments().flatMap { $0.results.map(\.output) } }

    /// Removes an experiment's run records (its results become collectable unless something
    /// else needs them); returns how many.
    @discardableResult
    public func dropExperiment(_ e: Experiment) -> Int {
        for id in e.runIDs { FileIO.remove("\(root)/runs/\(id).json") }
        return e.runIDs.count
    }
}

extension Store {
    /// The experiments of `pipeline`, or every pipeline's when nil. A pipeline without any is
    /// `.notFound`, with the pipelines that have some.
    public func experiments(pipeline: String?) throws(StoreError) -> [Experiment] {
        let all = experiments()
        let pipelines = Array(Set(all.map(\.pipeline))).sorted()
        if let pipeline {
            guard pipelines.contains(pipeline) else {
                throw StoreError(.notFound, "no experiments of pipeline '\(pipeline)' in \(root)" + NearestName.hintOrChoices(pipeline, among: pipelines))
            }
            return all.filter { $0.pipeline == pipeline }
        }
        return all
    }

    /// The experiment called `name` (of `pipeline` when given): `.ambiguous` when several
    /// pipelines have one of that name, `.notFound` (with the closest names) when none has.
    public func experiment(named name: String, pipeline: String?) throws(StoreError) -> Experiment {
        let matches = try experiments(pipeline: pipeline).filter { $0.name == name }
        if matches.count > 1 {
            throw StoreError(.ambiguous, "experiment '\(name)' exists in several pipelines (\(matches.map(\.pipeline).joined(separator: ", "))); give --pipeline")
        }
        guard let e = matches.first else {
            let names = try experiments(pipeline: pipeline).map(\.name)
            throw StoreError(.notFound, "no experiment '\(name)'" + NearestName.hintOrChoices(name, among: names))
        }
        return e
    }

    /// What the latest run of experiment `experiment` of `pipeline` ended with for `stage`, as
    /// a ref (nil when that run has no result of it, or its action record is gone).
    public func ref(pipeline: String, stage: String, experiment: String) -> StageRef? {
        guard let e = experiments().first(where: { $0.pipeline == pipeline && $0.name == experiment }),
              let s = (e.latest["stages"]?.arrayValue ?? []).first(where: { $0["stage"]?.stringValue == stage }),
              let key = s["key"]?.stringValue.flatMap(Digest.init(hex:)), let entry = action(key) else { return nil }
        let started = e.latest["started"]?.doubleValue.map { Date(timeIntervalSince1970: $0) }
        return StageRef(key: key, output: entry.output, kind: entry.kind, payload: entry.payload, updatedAt: started ?? entry.createdAt,
                        reason: (s["reasons"]?.arrayValue ?? []).compactMap(\.stringValue), ranAt: entry.createdAt, seconds: s["seconds"]?.doubleValue ?? entry.seconds)
    }

    /// "stage.figure" → value for the latest results of `e`, as the stage types in `registry`
    /// define their figures (results of types it lacks, or no longer stored, have none).
    public func figures(of e: Experiment, registry: StageRegistry) -> [(name: String, value: Double)] {
        e.results.flatMap { r -> [(name: String, value: Double)] in
            guard let type = action(r.key)?.payload["type"]?.stringValue, let definition = registry[type],
                  let dir = try? materialize(r.output) else { return [] }
            return definition.figures(dir).map { ("\(r.stage).\($0.name)", $0.value) }
        }
    }
}
