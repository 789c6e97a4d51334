#if canImport(FoundationEssentials)
public import FoundationEssentials
#else
public import Foundation
#endif
public import JSON
public import Pipeline

/// What `haps-pipe ui` shows, read from a store as JSON values, one per page: the experiments,
/// a run's graph, a result, an evaluation with its questions and dialogues, the sweeps. The
/// pages' script only lays these out, so what a page says is what these return (and what the
/// tests check against the store). Nothing here writes to the store.
public struct StoreBrowser: Sendable {
    public let store: Store
    public let registry: StageRegistry

    public init(store: Store, registry: StageRegistry = HAPSStages.registry) {
        self.store = store
        self.registry = registry
    }

    /// A page's request that names nothing the store has (404), or is malformed (400).
    public struct Failure: Error, CustomStringConvertible, Sendable {
        public var notFound: Bool
        public var description: String
        public init(notFound: Bool, description: String) { self.notFound = notFound; self.description = description }
        static func notFound(_ s: String) -> Failure { Failure(notFound: true, description: s) }
        static func bad(_ s: String) -> Failure { Failure(notFound: false, description: s) }
    }

    // MARK: experiments

    /// Every pipeline with its experiments (latest run, status, stages, figures, and the names
    /// of the figures that differ between them, as `exp show` prints), the sweeps, and the
    /// recent runs.
    public func overview() -> JSONValue {
        let all = store.experiments()
        var pipelines: [JSONValue] = []
        for p in Array(Set(all.map(\.pipeline))).sorted() {
            let exps = all.filter { $0.pipeline == p }
            let values = exps.map { e in Dictionary(store.figures(of: e, registry: registry).map { ($0.name, $0.value) }) { a, _ in a } }
            var names: [String] = []
            for v in values { for n in v.keys.sorted() where !names.contains(n) { names.append(n) } }
            let differing = exps.count == 1 ? names : names.filter { n in Set(values.map { $0[n].map { Format.fixed($0, 4) } ?? "" }).count > 1 }
            pipelines.append(.object([
                ("name", .string(p)),
                ("experiments", .array(zip(exps, values).map { e, v in
                    var o = StoreBrowser.summary(of: e.latest)
                    o = [("name", .string(e.name)), ("overrides", .array(e.overrides.map(JSONValue.string))),
                         ("runs", .number(Double(e.runIDs.count))), ("run_ids", .array(e.runIDs.map(JSONValue.string)))] + o
                    o.append(("figures", .object(v.keys.sorted().map { ($0, JSONValue.number(v[$0]!)) })))
                    return .object(o)
                })),
                ("figures", .array(names.map(JSONValue.string))),
                ("differing", .array(differing.map(JSONValue.string))),
            ]))
        }
        let sweeps = SweepState.names(in: store).map { name -> JSONValue in
            let state = (try? SweepState.load(store, name)) ?? nil
            return .object([("name", .string(name)), ("points", .number(Double(state?.points.count ?? 0))),
                            ("failed", .number(Double(state?.failed.count ?? 0)))])
        }
        let runs = store.runRecordIDs().prefix(20).compactMap { id -> JSONValue? in
            guard let r = store.runRecord(id: id) else { return nil }
            return .object([("id", .string(id)), ("pipeline", r["pipeline"] ?? .null), ("experiment", r["experiment"] ?? .null)] + StoreBrowser.summary(of: r))
        }
        return .object([("store", .string(store.root)), ("pipelines", .array(pipelines)), ("sweeps", .array(sweeps)), ("runs", .array(Array(runs)))])
    }

    /// What differs between two experiments of a pipeline, as `exp diff` prints it: per stage
    /// whose key differs, the parameter and input changes; then the figures that differ.
    public func diff(pipeline: String, _ a: String, _ b: String) throws -> JSONValue {
        let x: Experiment, y: Experiment
        do { x = try store.experiment(named: a, pipeline: pipeline); y = try store.experiment(named: b, pipeline: pipeline) } catch {
            throw Failure.notFound(error.description)
        }
        let ys = Dictionary(y.results.map { ($0.stage, $0) }) { a, _ in a }
        let stages = x.results.compactMap { r -> JSONValue? in
            guard let other = ys[r.stage], other.key != r.key else { return nil }
            let lines = StageKey.differences(from: store.action(r.key)?.payload, to: store.action(other.key)?.payload ?? .null)
            return .object([("stage", .string(r.stage)), ("changes", .array((lines.isEmpty ? ["its key differs"] : lines).map(JSONValue.string)))])
        }
        let fx = store.figures(of: x, registry: registry), fy = Dictionary(store.figures(of: y, registry: registry).map { ($0.name, $0.value) }) { a, _ in a }
        let figures = fx.compactMap { f -> JSONValue? in
            guard let v = fy[f.name], Format.fixed(v, 4) != Format.fixed(f.value, 4) else { return nil }
            return .object([("name", .string(f.name)), ("a", .number(f.value)), ("b", .number(v)), ("change", .number(v - f.value))])
        }
        return .object([("pipeline", .string(pipeline)), ("a", .string(a)), ("b", .string(b)), ("stages", .array(stages)), ("figures", .array(figures))])
    }

    /// A run record's when, how long, status and stage counts.
    static func summary(of record: JSONValue) -> [(String, JSONValue)] {
        let stages = record["stages"]?.arrayValue ?? []
        func count(_ outcome: String) -> JSONValue { .number(Double(stages.filter { $0["outcome"]?.stringValue == outcome }.count)) }
        let failed = stages.contains { $0["outcome"]?.stringValue == "failed" }
        let interrupted = record["interrupted"]?.boolValue == true
        let started = record["started"]?.doubleValue
        return [("run", record["id"] ?? .null), ("started", started.map(JSONValue.number) ?? .null),
                ("started_text", .string(started.map { Format.iso8601(Date(timeIntervalSince1970: $0)) } ?? "?")),
                ("seconds", record["seconds"] ?? .null),
                ("status", .string(failed ? "failed" : interrupted ? "interrupted" : "done")),
                ("stages", .number(Double(stages.count))), ("ran", count("ran")), ("cached", count("cached")), ("failed", count("failed"))]
    }

    // MARK: a run and its graph

    /// The latest run of an experiment (or the run `runID`, which must be one of its runs): its
    /// stages in order with their type, outcome, time, inputs (the stage each came from, where
    /// one of this run's did) and result; and the graph drawn as SVG.
    public func run(pipeline: String, experiment: String, runID: String? = nil) throws -> JSONValue {
        let e: Experiment
        do { e = try store.experiment(named: experiment, pipeline: pipeline) } catch { throw Failure.notFound(error.description) }
        var record = e.latest
        if let runID {
            guard e.runIDs.contains(runID), let r = store.runRecord(id: runID) else {
                throw Failure.notFound("experiment '\(experiment)' of \(pipeline) has no run '\(runID)'")
            }
            record = r
        }
        let stages = record["stages"]?.arrayValue ?? []
        var producedBy: [String: String] = [:]  // output digest → stage of this run
        for s in stages { if let o = s["output"]?.stringValue, let n = s["stage"]?.stringValue { producedBy[o] = n } }
        let names = store.resultNames()
        var nodes: [DagPicture.Node] = []
        var out: [JSONValue] = []
        for s in stages {
            guard let name = s["stage"]?.stringValue else { continue }
            let payload = s["key"]?.stringValue.flatMap(Digest.init(hex:)).flatMap { store.action($0)?.payload }
            let inputs = (payload?["inputs"]?.objectMembers ?? []).map { port, digest -> JSONValue in
                let d = digest.stringValue ?? ""
                return .object([("port", .string(port)), ("digest", .string(d)), ("from", producedBy[d].map(JSONValue.string) ?? .null),
                                ("name", Digest(hex: d).flatMap { names[$0] }.map(JSONValue.string) ?? .null)])
            }
            let outcome = s["outcome"]?.stringValue ?? "?"
            nodes.append(DagPicture.Node(name: name, type: payload?["type"]?.stringValue ?? "", outcome: outcome,
                                         seconds: s["seconds"]?.doubleValue, output: s["output"]?.stringValue,
                                         inputs: inputs.compactMap { $0["from"]?.stringValue }))
            out.append(.object([("stage", .string(name)), ("type", payload?["type"] ?? .null), ("outcome", .string(outcome)),
                                ("seconds", s["seconds"] ?? .null), ("key", s["key"] ?? .null), ("output", s["output"] ?? .null),
                                ("reasons", s["reasons"] ?? .array([])), ("error", s["error"] ?? .null), ("inputs", .array(inputs))]))
        }
        return .object([("pipeline", .string(e.pipeline)), ("experiment", .string(e.name)),
                        ("overrides", .array(e.overrides.map(JSONValue.string))), ("run_ids", .array(e.runIDs.map(JSONValue.string))),
                        ("arguments", record["arguments"] ?? .null), ("spec", record["spec"] ?? .null), ("machine", record["machine"] ?? .null)]
                       + StoreBrowser.summary(of: record)
                       + [("stage_list", .array(out)), ("svg", .string(DagPicture(nodes: nodes).svg))])
    }

    // MARK: a result

    /// The artifact `target` names (a digest or its prefix, STAGE or PIPELINE/STAGE).
    public func digest(_ target: String) throws -> Digest {
        if target.count == 64, let d = Digest(hex: target) {
            guard (try? store.manifest(d)) != nil else { throw Failure.notFound("no artifact \(target) in \(store.root)") }
            return d
        }
        do { return try RefLookup.artifact(target, pipeline: nil, in: store, specsOwn: true) } catch {
            throw error.code == .notFound ? Failure.notFound(error.description) : Failure.bad(error.description)
        }
    }

    /// Output digest → the key of the action that made it, from the refs and every run record.
    func producers() -> [Digest: Digest] {
        var out: [Digest: Digest] = [:]
        for r in store.allRefs() { out[r.ref.output] = r.ref.key }
        for id in store.runRecordIDs() {
            for s in store.runRecord(id: id)?["stages"]?.arrayValue ?? [] {
                if let o = s["output"]?.stringValue.flatMap(Digest.init(hex:)), let k = s["key"]?.stringValue.flatMap(Digest.init(hex:)), out[o] == nil { out[o] = k }
            }
        }
        return out
    }

    /// The action that made `digest`, when the store still has its record.
    func producer(of digest: Digest) -> ActionEntry? { producers()[digest].flatMap { store.action($0) } }

    /// A result's page: its names, kind, parameters (effective, defaults marked), inputs with
    /// their digests and names, resources, figures, files (text previewed), provenance (key,
    /// version, seed, why it ran, when, how long) and the end of its log.
    public func result(_ target: String) throws -> JSONValue {
        let digest = try self.digest(target)
        let m: ArtifactManifest
        do { m = try store.manifest(digest) } catch { throw Failure.notFound(error.description) }
        let names = store.resultNames()
        let refs = store.allRefs().filter { $0.ref.output == digest }
        let entry = producer(of: digest)
        let payload = entry?.payload ?? refs.first?.ref.payload
        let type = payload?["type"]?.stringValue
        let definition = type.flatMap { registry[$0] }
        var params: [JSONValue] = []
        let given = payload?["params"]?.objectMembers ?? []
        for d in definition?.parameters ?? [] {
            let value = given.first { $0.key == d.name }?.value ?? d.defaultValue
            params.append(.object([("name", .string(d.name)), ("value", value ?? .null), ("default", d.defaultValue ?? .null),
                                   ("is_default", .bool(d.defaultValue != nil && value == d.defaultValue)), ("help", .string(d.help))]))
        }
        for (k, v) in given where !(definition?.parameters ?? []).contains(where: { $0.name == k }) {
            params.append(.object([("name", .string(k)), ("value", v), ("default", .null), ("is_default", false), ("help", "")]))
        }
        let inputs = (payload?["inputs"]?.objectMembers ?? []).map { port, d -> JSONValue in
            .object([("port", .string(port)), ("digest", d), ("name", d.stringValue.flatMap(Digest.init(hex:)).flatMap { names[$0] }.map(JSONValue.string) ?? .null)])
        }
        let figures = (try? store.materialize(digest)).map { dir in definition?.figures(dir) ?? [] } ?? []
        var files: [JSONValue] = []
        for name in m.files.keys.sorted() {
            let e = m.files[name]!
            var o: [(String, JSONValue)] = [("name", .string(name)), ("size", .number(Double(e.size))), ("digest", .string(e.digest.hex))]
            let kind = StoreBrowser.fileKind(name)
            if kind == "image" { o.append(("kind", "image")) } else if e.size <= 8 << 20, let bytes = try? store.object(e.digest),
                let text = String(validating: bytes, as: UTF8.self), !bytes.contains(0) {
                let lines = FileIO.lines(text)
                let shown = lines.prefix(name == "summary.txt" ? 400 : 40).map { $0.count > 400 ? $0.prefix(400) + "…" : $0 }
                o += [("kind", "text"), ("lines", .number(Double(lines.count))), ("preview", .string(shown.joined(separator: "\n")))]
            } else {
                o.append(("kind", "binary"))
            }
            files.append(.object(o))
        }
        let key = entry?.key ?? refs.first?.ref.key
        let log = key.map { store.logPath($0) }.flatMap { FileIO.lastLines(of: $0, count: 60) }?.joined(separator: "\n")
        let ref = refs.first?.ref
        var o: [(String, JSONValue)] = [("digest", .string(digest.hex)), ("kind", .string(m.kind.name))]
        o.append(("name", names[digest].map(JSONValue.string) ?? .null))
        o.append(("refs", .array(refs.map { JSONValue.string("\($0.pipeline)/\($0.stage)") })))
        o.append(("type", type.map(JSONValue.string) ?? .null))
        o.append(("summary", definition.map { JSONValue.string($0.summary) } ?? .null))
        o.append(("key", key.map { JSONValue.string($0.hex) } ?? .null))
        o += [("version", payload?["version"] ?? .null), ("seed", payload?["seed"] ?? .null), ("params", .array(params)),
              ("inputs", .array(inputs)), ("resources", payload?["resources"] ?? .null)]
        o.append(("figures", .array(figures.map { JSONValue.object([("name", .string($0.name)), ("value", .number($0.value))]) })))
        o += [("files", .array(files)), ("size", .number(Double(m.totalSize)))]
        o.append(("reasons", .array((ref?.reason ?? []).map(JSONValue.string))))
        let ranAt: Date? = ref?.ranAt ?? entry?.createdAt
        o.append(("ran_at", ranAt.map { JSONValue.string(Format.iso8601($0)) } ?? .null))
        let seconds: Double? = entry?.seconds ?? ref?.seconds
        o.append(("seconds", seconds.map(JSONValue.number) ?? .null))
        o += [("log", log.map(JSONValue.string) ?? .null), ("evaluation", .bool(m.kind.name == "evaluation"))]
        return .object(o)
    }

    /// How a page shows a file: inline as an image, or as text.
    static func fileKind(_ name: String) -> String {
        name.hasSuffix(".svg") || name.hasSuffix(".png") || name.hasSuffix(".jpg") ? "image" : "text"
    }

    /// One file of an artifact, whole, with its media type.
    public func file(_ target: String, name: String) throws -> (bytes: [UInt8], contentType: String) {
        let digest = try self.digest(target)
        guard let m = try? store.manifest(digest), let e = m.files[name] else {
            throw Failure.notFound("\(digest.short) has no file '\(name)'")
        }
        let bytes: [UInt8]
        do { bytes = try store.object(e.digest) } catch { throw Failure.notFound(error.description) }
        let type = name.hasSuffix(".svg") ? "image/svg+xml" : name.hasSuffix(".png") ? "image/png" : name.hasSuffix(".json") ? "application/json"
            : (String(validating: bytes, as: UTF8.self) != nil && !bytes.contains(0)) ? "text/plain; charset=utf-8" : "application/octet-stream"
        return (bytes, type)
    }
}
