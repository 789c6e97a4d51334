#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// One planned stage, written by the driver for a cluster job to run: everything its key is
/// made of, what it needs to run (resources with their URLs, CPUs), and its inputs as
/// artifacts already in the shared store. `haps-pipe job DIR` runs exactly this stage (the
/// same key, or it refuses) through the ordinary executor, which takes the key's lock, resumes
/// the stage's journal or checkpoint, and commits the artifact and the ref.
public struct StageJob: Sendable {
    public var pipeline: String
    public var stage: String
    public var type: String
    public var params: JSONValue
    public var resources: [String: JSONValue]
    public var seed: Int
    public var cpus: Int
    public var inputs: [(port: String, kind: ArtifactKind, digest: Digest)]
    public var key: Digest
    public var forced: Bool
    /// The directory relative input paths were resolved against (the driver's).
    public var baseDirectory: String

    /// The directory of a key's job in the store: job.json, job.sh, the Slurm log, the job id.
    public static func directory(_ store: Store, key: Digest) -> String { "\(store.root)/jobs/\(key.hex)" }

    init(spec: PipelineSpec, stage st: PlannedStageSpec, key: Digest, digests: [String: Digest], forced: Bool) {
        pipeline = spec.name; stage = st.name; type = st.definition.name; params = st.paramsJSON
        resources = st.resources; seed = st.seed; cpus = st.cpus; self.key = key; self.forced = forced
        inputs = st.inputs.map { ($0.port, $0.kind, digests[$0.port]!) }
        baseDirectory = spec.baseDirectory
    }

    public var json: JSONValue {
        .object([
            "pipeline": .string(pipeline), "stage": .string(stage), "type": .string(type), "params": params,
            "resources": .object(resources.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }),
            "seed": .number(Double(seed)), "cpus": .number(Double(cpus)), "key": .string(key.hex), "forced": .bool(forced),
            "base_directory": .string(baseDirectory),
            "inputs": .array(inputs.map { .object([("port", .string($0.port)), ("kind", .string($0.kind.name)), ("digest", .string($0.digest.hex))]) }),
        ])
    }

    public struct Invalid: Error, CustomStringConvertible {
        public var path: String, message: String
        public var description: String { "\(path): \(message)" }
    }

    /// Reads `DIR/job.json`.
    public static func load(directory: String) throws -> StageJob {
        let path = directory + "/job.json"
        let v = try JSONParser.parse(try FileIO.readString(path))
        func field<T>(_ k: String, _ get: (JSONValue) -> T?) throws -> T {
            guard let x = v[k], let t = get(x) else { throw Invalid(path: path, message: "missing or malformed field '\(k)'") }
            return t
        }
        func digest(_ s: String) throws -> Digest {
            guard let d = Digest(hex: s) else { throw Invalid(path: path, message: "'\(s)' is not a digest") }
            return d
        }
        var inputs: [(port: String, kind: ArtifactKind, digest: Digest)] = []
        for i in try field("inputs", { $0.arrayValue }) {
            guard let port = i["port"]?.stringValue, let kind = i["kind"]?.stringValue, let d = i["digest"]?.stringValue else {
                throw Invalid(path: path, message: "malformed input \(i.canonical)")
            }
            inputs.append((port, ArtifactKind(kind), try digest(d)))
        }
        return StageJob(pipeline: try field("pipeline", { $0.stringValue }), stage: try field("stage", { $0.stringValue }),
                        type: try field("type", { $0.stringValue }), params: try field("params", { $0 }),
                        resources: Dictionary(uniqueKeysWithValues: try field("resources", { $0.objectMembers }).map { ($0.key, $0.value) }),
                        seed: try field("seed", { $0.intValue }), cpus: try field("cpus", { $0.intValue }), inputs: inputs,
                        key: try digest(try field("key", { $0.stringValue })), forced: try field("forced", { $0.boolValue }),
                        baseDirectory: try field("base_directory", { $0.stringValue }))
    }

    init(pipeline: String, stage: String, type: String, params: JSONValue, resources: [String: JSONValue], seed: Int, cpus: Int,
         inputs: [(port: String, kind: ArtifactKind, digest: Digest)], key: Digest, forced: Bool, baseDirectory: String) {
        self.pipeline = pipeline; self.stage = stage; self.type = type; self.params = params; self.resources = resources
        self.seed = seed; self.cpus = cpus; self.inputs = inputs; self.key = key; self.forced = forced; self.baseDirectory = baseDirectory
    }

    /// A one-stage spec that runs this job, its inputs the stored artifacts. Throws when this
    /// haps-pipe does not know the type or makes a different key of it (another version of the
    /// tool on the node than the driver's).
    public func spec(registry: StageRegistry) throws -> PipelineSpec {
        guard let definition = registry[type] else {
            throw Invalid(path: "job \(key.short)", message: "this haps-pipe has no stage type '\(type)': is the node's haps-pipe the driver's?")
        }
        let decoded = definition.decode(params, JSONPath.root.appending("params"))
        guard let p = decoded.value, decoded.problems.isEmpty else {
            throw Invalid(path: "job \(key.short)", message: decoded.problems.map(\.description).joined(separator: "; "))
        }
        let st = PlannedStageSpec(name: stage, definition: definition, paramsJSON: decoded.effective, params: p,
                                  ports: definition.portsOf(p), inputs: inputs.map { ($0.port, $0.kind, .artifact($0.digest)) },
                                  resources: resources, pool: nil, cpus: cpus, seed: seed)
        let made = StageKey(stage: st, inputs: Dictionary(uniqueKeysWithValues: inputs.map { ($0.port, $0.digest) })).digest
        guard made == key else {
            throw Invalid(path: "job \(key.short)", message: "this haps-pipe makes key \(made.short) of the stage the driver planned as \(key.short): run the same build of haps-pipe on the nodes as on the driver")
        }
        return PipelineSpec(name: pipeline, description: "", sourcePath: "job \(key.short)", baseDirectory: baseDirectory, seed: seed,
                            pools: [:], stages: [stage: st], order: [stage], document: json)
    }
}
