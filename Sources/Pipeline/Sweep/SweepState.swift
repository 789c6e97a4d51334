#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// A sweep's state in the store, `sweeps/<name>.json`: the spec it sweeps, its points in the
/// order they were added, and the merged stages that failed in its last run. `sweep run`
/// writes and extends it; `sweep status` and `show` read it back to rebuild the sweep and its
/// table, so the state is all a sweep needs besides its spec (docs/sweeps.md).
public struct SweepState: Sendable, Equatable {
    public var name: String
    /// The spec's path, as the sweep was started with it.
    public var spec: String
    public var points: [Sweep.Point]
    /// Merged stages that failed in the last run.
    public var failed: [String] = []

    public init(name: String, spec: String, points: [Sweep.Point], failed: [String] = []) {
        self.name = name; self.spec = spec; self.points = points; self.failed = failed
    }

    public static func path(_ store: Store, _ name: String) -> String { "\(store.root)/sweeps/\(name).json" }

    /// The state of sweep `name`, or nil when the store has none of that name.
    public static func load(_ store: Store, _ name: String) throws -> SweepState? {
        guard FileIO.exists(path(store, name)) else { return nil }
        let j = try JSONParser.parse(try FileIO.readString(path(store, name)))
        return SweepState(name: name, spec: j["spec"]?.stringValue ?? "",
                          points: (j["points"]?.arrayValue ?? []).map { Sweep.Point(label: $0["label"]?.stringValue ?? "",
                                                                                    overrides: ($0["overrides"]?.arrayValue ?? []).compactMap(\.stringValue)) },
                          failed: (j["failed"]?.arrayValue ?? []).compactMap(\.stringValue))
    }

    /// The names of the store's sweeps (for "did you mean").
    public static func names(in store: Store) -> [String] {
        ((try? FileIO.listFiles(under: store.root + "/sweeps")) ?? []).filter { $0.hasSuffix(".json") && !$0.contains("/") }.map { String($0.dropLast(5)) }
    }

    /// Sweep `name` of `spec` with `points` added after its own (those it has already are not
    /// repeated): an existing sweep is extended, a new one begun. Nothing is saved. A name taken
    /// by a sweep of another spec is refused (`SweepError.Code.badRequest`).
    public static func extending(_ name: String, spec: String, with points: [Sweep.Point], in store: Store) throws -> SweepState {
        var state = try load(store, name) ?? SweepState(name: name, spec: spec, points: [])
        guard state.spec == spec else { throw SweepError(.badRequest, "sweep '\(name)' exists for \(state.spec); choose another --name") }
        for p in points where !state.points.contains(p) {
            // Two points of one label would be two rows that read as one (seeds replicated over
            // other stages, `--seeds a,b=1,2` after `--seeds a=1,2`, are labelled alike).
            if let same = state.points.first(where: { $0.label == p.label }) {
                throw SweepError(.badRequest, "sweep '\(name)' has a point '\(p.label)' set by \(same.overrides.joined(separator: " ")), "
                                 + "not \(p.overrides.joined(separator: " ")); choose another --name")
            }
            state.points.append(p)
        }
        return state
    }

    public func save(_ store: Store) throws {
        let j: JSONValue = ["name": .string(name), "spec": .string(spec),
                            "points": .array(points.map { ["label": .string($0.label), "overrides": .array($0.overrides.map(JSONValue.string))] }),
                            "failed": .array(failed.map(JSONValue.string))]
        try FileIO.writeAtomically(j.pretty + "\n", to: SweepState.path(store, name))
    }

    /// The sweep itself: its spec read again (relative paths from `baseDirectory`) and merged
    /// over the points; inputs may name results in `store`. A spec that cannot be read any more
    /// is a `SweepError.Code.badRequest`.
    public func sweep(in store: Store, registry: StageRegistry,
                      baseDirectory: String = FileManager.default.currentDirectoryPath) throws -> Sweep {
        let text: String
        do { text = try FileIO.readString(spec) } catch { throw SweepError(.badRequest, "sweep \(name): cannot read its spec \(spec): \(error.reason)") }
        return try Sweep(name: name, specText: text, file: spec, points: points, registry: registry,
                         baseDirectory: baseDirectory, stored: store.results)
    }
}
