/// A sweep: one spec, several sets of overrides (points), merged into one DAG in which stages
/// that are the same in several points (same type, version, parameters, resources, seed and
/// inputs, recursively) are one node, so each runs once (docs/sweeps.md).
///
///     let sweep = try Sweep(name: "alpha", specPath: "pipelines/demo.json",
///                           points: Sweep.grid(["rl_train.params.alpha": ["0.1", "0.2"]]), registry: r)
///     try Executor(spec: sweep.merged, store: store, options: options).run()
public struct Sweep: Sendable {
    /// One point: a label and its overrides (`stage.param=value`).
    public struct Point: Sendable, Equatable {
        public var label: String
        public var overrides: [String]
        public init(label: String, overrides: [String]) { self.label = label; self.overrides = overrides }
    }
    public let name: String
    public let points: [Point]
    /// The merged DAG.
    public let merged: PipelineSpec
    /// Per point: its own stage name → the merged stage that computes it.
    public let mapping: [[String: String]]
    /// The stage types its specs were read with (its table reads their figures).
    public let registry: StageRegistry

    /// The cartesian product of `axes` (parameter → values), in the given order.
    public static func grid(_ axes: [(parameter: String, values: [String])]) -> [Point] {
        var points: [[(String, String)]] = [[]]
        for (p, values) in axes { points = points.flatMap { pt in values.map { pt + [(p, $0)] } } }
        return points.map { Point(label: $0.map { "\(Sweep.shortName($0.0))=\($0.1)" }.joined(separator: ","), overrides: $0.map { "\($0.0)=\($0.1)" }) }
    }

    /// Values taken together: the i-th value of every axis forms point i (equal lengths).
    public static func zip(_ axes: [(parameter: String, values: [String])]) throws(SweepError) -> [Point] {
        guard let n = axes.first?.values.count, axes.allSatisfy({ $0.values.count == n }) else {
            throw SweepError("--zip needs the same number of values for every parameter: " + axes.map { "\($0.parameter) has \($0.values.count)" }.joined(separator: ", "))
        }
        return (0..<n).map { i in
            Point(label: axes.map { "\(Sweep.shortName($0.parameter))=\($0.values[i])" }.joined(separator: ","), overrides: axes.map { "\($0.parameter)=\($0.values[i])" })
        }
    }

    /// Each point replicated over `seeds` (docs/sweeps.md, "Replicates"): the seed of `stages`
    /// set by `STAGE.seed=N` overrides, or the spec's own (`seed=N`) when none are named; the
    /// replicate's label is the point's with `seed=N` after it.
    public static func replicated(_ points: [Point], seeds: [Int], stages: [String]) -> [Point] {
        points.flatMap { p in
            seeds.map { seed in
                Point(label: [p.label, "seed=\(seed)"].filter { !$0.isEmpty }.joined(separator: ","),
                      overrides: p.overrides + (stages.isEmpty ? ["seed=\(seed)"] : stages.map { "\($0).seed=\(seed)" }))
            }
        }
    }

    /// The points of a spec's `sweep` block: grid × zip, then the explicit points, each
    /// replicated over `seeds` when it has them; and its name.
    public static func points(fromBlock block: JSONValue) throws(SweepError) -> (name: String?, points: [Point]) {
        func axes(_ v: JSONValue?) -> [(parameter: String, values: [String])] {
            (v?.objectMembers ?? []).map { ($0.key, ($0.value.arrayValue ?? []).map(Sweep.text)) }
        }
        var points = grid(axes(block["grid"]))
        let zipAxes = axes(block["zip"])
        if !zipAxes.isEmpty {
            let zipped = try zip(zipAxes)
            points = points.flatMap { g in zipped.map { z in Point(label: [g.label, z.label].filter { !$0.isEmpty }.joined(separator: ","), overrides: g.overrides + z.overrides) } }
        }
        if block["grid"] == nil && block["zip"] == nil { points = [] }
        for p in block["points"]?.arrayValue ?? [] {
            let members = p.objectMembers ?? []
            points.append(Point(label: members.map { "\(shortName($0.key))=\(text($0.value))" }.joined(separator: ","),
                                overrides: members.map { "\($0.key)=\(text($0.value))" }))
        }
        if let seeds = block["seeds"] {
            // "seeds": [1, 2, 3] (the spec's seed), or {"values": [1, 2, 3], "stages": ["rl_train"]}.
            let values = (seeds.arrayValue ?? seeds["values"]?.arrayValue ?? []).compactMap(\.intValue)
            guard !values.isEmpty else { throw SweepError("the sweep block's seeds name no integer seed") }
            let stages = (seeds["stages"]?.arrayValue ?? []).compactMap(\.stringValue)
            points = replicated(points.isEmpty ? [Point(label: "", overrides: [])] : points, seeds: values, stages: stages)
        }
        return (block["name"]?.stringValue, points)
    }

    /// A value as an override writes it (strings bare, the rest as JSON).
    static func text(_ v: JSONValue) -> String { v.stringValue ?? v.canonical }

    /// The parameter as labels show it: "rl_train.alpha" → "alpha" when the last part is enough.
    static func shortName(_ p: String) -> String { p.split(separator: ".").last.map(String.init) ?? p }

    public init(name: String, specText: String, file: String, points: [Point], registry: StageRegistry, baseDirectory: String,
                stored: PipelineSpec.StoredResults? = nil) throws {
        guard !points.isEmpty else { throw SweepError("a sweep needs at least one point") }
        let specs = try points.map {
            try PipelineSpec.parse(text: specText, file: file, registry: registry, overrides: $0.overrides, baseDirectory: baseDirectory, stored: stored)
        }
        self.name = name
        self.points = points
        self.registry = registry
        (merged, mapping) = Sweep.merge(specs, labels: points.map(\.label), name: "\(specs[0].name)~\(name)")
    }

    /// Merges point specs: a stage's signature covers everything that makes its key, with its
    /// stage inputs replaced by their merged nodes, so equal signatures are the same work.
    static func merge(_ specs: [PipelineSpec], labels: [String], name: String) -> (PipelineSpec, [[String: String]]) {
        var signatureOf: [[String: String]] = Array(repeating: [:], count: specs.count)
        var variants: [String: [String]] = [:]  // stage name → distinct signatures, first seen first
        // Signatures depend on the signatures of inputs: walk each point in topological order.
        for (i, spec) in specs.enumerated() {
            for s in spec.order {
                let st = spec.stages[s]!
                let inputs: [JSONValue] = st.inputs.map { input in
                    switch input.source {
                    case .stage(let up): return ["port": .string(input.port), "stage": .string(signatureOf[i][up]!)]
                    case .path(let p): return ["port": .string(input.port), "path": .string(p)]
                    case .artifact(let d): return ["port": .string(input.port), "artifact": .string(d.hex)]
                    }
                }
                let sig = Digest.of(string: JSONValue.object([
                    "type": .string(st.definition.name), "version": .number(Double(st.definition.version)), "params": st.paramsJSON,
                    "inputs": .array(inputs), "resources": .object(st.resources.map { ($0.key, $0.value) }),
                    "seed": .number(Double(st.seed)), "pool": st.pool.map(JSONValue.string) ?? .null, "cpus": .number(Double(st.cpus)),
                ]).canonical).hex
                signatureOf[i][s] = sig
                if !(variants[s] ?? []).contains(sig) { variants[s, default: []].append(sig) }
            }
        }
        // Names: a stage the same in every point keeps its name; variants get "stage@label".
        var nodeName: [String: String] = [:]  // signature → merged name
        var mapping: [[String: String]] = Array(repeating: [:], count: specs.count)
        var merged = specs[0]
        merged.name = name
        merged.stages = [:]
        merged.order = []
        for (i, spec) in specs.enumerated() {
            for s in spec.order {
                let sig = signatureOf[i][s]!
                if let existing = nodeName[sig] { mapping[i][s] = existing; continue }
                let node = variants[s]!.count == 1 ? s : "\(s)@\(labels[i])"
                nodeName[sig] = node
                mapping[i][s] = node
                var st = spec.stages[s]!
                st.name = node
                st.inputs = st.inputs.map { input in
                    guard case .stage(let up) = input.source else { return input }
                    return (input.port, input.kind, .stage(mapping[i][up]!))
                }
                merged.stages[node] = st
                merged.order.append(node)
            }
        }
        return (merged, mapping)
    }
}

/// Why a sweep could not be made or used, with a code so that callers can tell a sweep that
/// cannot be from a request that does not fit it (the tool's exit status 2, as for a bad
/// argument).
public struct SweepError: Error, CustomStringConvertible, Sendable {
    public enum Code: Sendable, Equatable {
        /// The points do not make a sweep (none, or zip axes of different lengths).
        case invalid
        /// A request does not fit the sweep: a `--plot` naming what its table lacks, a name
        /// another spec's sweep has, a spec that can no longer be read.
        case badRequest
    }
    public var code: Code
    public var description: String
    public init(_ message: String) { self.init(.invalid, message) }
    public init(_ code: Code, _ message: String) { self.code = code; description = message }
}

