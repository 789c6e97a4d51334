/// What `plan` predicts for one stage.
public struct PlanEntry: Sendable {
    public enum Action: Sendable, Equatable {
        /// The cached result will be reused.
        case cached
        /// The stage will run; the reasons say what differs from its last result.
        case run
        /// It depends on a stage that will run: it runs unless that output comes out the same.
        case dependsOnRun
        /// Not part of this run (`--until`).
        case excluded
        /// An external input is missing or unreadable (a model directory yet to be fetched),
        /// or an upstream stage is in that state: a run stops before starting anything.
        case missingInput
    }
    public var stage: String
    public var action: Action
    public var key: Digest?
    public var reasons: [String]
}

/// The planner: a pure function from the spec and what the store knows to the plan.
/// It does no I/O itself; the caller passes lookups (so it is tested without a store).
public enum Planner {
    public struct Lookups {
        public var inputDigest: (String, ArtifactKind) throws -> Digest
        public var action: (Digest) -> ActionEntry?
        public var previous: (String) -> StageRef?
        /// Why a key's cached result does not count (objects missing), when it has one.
        public var damage: (Digest) -> String?
        public init(inputDigest: @escaping (String, ArtifactKind) throws -> Digest, action: @escaping (Digest) -> ActionEntry?,
                    previous: @escaping (String) -> StageRef?, damage: @escaping (Digest) -> String? = { _ in nil }) {
            self.inputDigest = inputDigest; self.action = action; self.previous = previous; self.damage = damage
        }
    }

    /// The stages a run covers: everything, or `until` and its ancestors.
    public static func selection(_ spec: PipelineSpec, until: [String]) -> Set<String> {
        if until.isEmpty { return Set(spec.order) }
        return until.reduce(into: Set<String>()) { $0.formUnion(spec.ancestors(of: $1)) }
    }

    public static func plan(_ spec: PipelineSpec, selection: Set<String>, forced: Set<String>, lookups: Lookups) throws -> [PlanEntry] {
        var outputs: [String: Digest] = [:]
        var entries: [PlanEntry] = []
        var willRun = Set<String>(), blocked = Set<String>()
        for name in spec.order {
            let st = spec.stages[name]!
            guard selection.contains(name) else {
                entries.append(PlanEntry(stage: name, action: .excluded, key: nil, reasons: ["not needed for --until"]))
                continue
            }
            var digests: [String: Digest] = [:]
            var upstream: [String] = [], missing: [String] = []
            for input in st.inputs {
                switch input.source {
                case .path(let p):
                    do { digests[input.port] = try lookups.inputDigest(p, input.kind) }
                    catch { missing.append("input '\(input.port)': \(error)") }
                case .artifact(let d): digests[input.port] = d
                case .stage(let s):
                    if blocked.contains(s) { missing.append("input from '\(s)', which cannot run yet") }
                    else if let d = outputs[s] { digests[input.port] = d } else { upstream.append(s) }
                }
            }
            if !missing.isEmpty {
                blocked.insert(name)
                entries.append(PlanEntry(stage: name, action: .missingInput, key: nil, reasons: missing))
                continue
            }
            if !upstream.isEmpty {
                willRun.insert(name)
                entries.append(PlanEntry(stage: name, action: .dependsOnRun, key: nil,
                                         reasons: upstream.map { "input from '\($0)', which will run" }))
                continue
            }
            let decision = decide(st, digests: digests, forced: forced.contains(name), action: lookups.action, previous: { lookups.previous(name) })
            if let hit = decision.hit {
                outputs[name] = hit.output
                entries.append(PlanEntry(stage: name, action: .cached, key: decision.key.digest, reasons: []))
                continue
            }
            willRun.insert(name)
            let damage = lookups.damage(decision.key.digest).map { ["cached output is damaged: \($0)"] } ?? []
            entries.append(PlanEntry(stage: name, action: .run, key: decision.key.digest,
                                     reasons: damage.isEmpty || decision.reasons != ["no cached result for this key"] ? decision.reasons + damage : damage))
        }
        return entries
    }

    /// What is decided for a stage whose input digests are known: its key, and either the cached
    /// result that serves it or the reasons it runs.
    public struct Decision {
        public var key: StageKey
        public var hit: ActionEntry?
        public var reasons: [String]
    }

    /// The one decision rule, for `plan` and the executor alike: a forced stage runs; else a
    /// cached result under the key (`action`, which may check its integrity) serves; else it
    /// runs, and the reasons say what differs from its previous result.
    public static func decide(_ st: PlannedStageSpec, digests: [String: Digest], forced: Bool,
                              action: (Digest) -> ActionEntry?, previous: () -> StageRef?) -> Decision {
        let key = StageKey(stage: st, inputs: digests)
        if !forced, let hit = action(key.digest) { return Decision(key: key, hit: hit, reasons: []) }
        var sources: [String: InputSource] = [:]
        for input in st.inputs { sources[input.port] = input.source }
        let reasons = (forced ? ["forced (--force)"] : []) + StageKey.differences(from: previous()?.payload, to: key.payload, sources: sources)
        return Decision(key: key, hit: nil, reasons: reasons.isEmpty ? ["no cached result for this key"] : reasons)
    }
}

extension Planner.Lookups {
    /// Lookups backed by a store (file digests through its stat cache, nothing stored). A
    /// cached result counts only while every object it needs is there with its size, so that
    /// `plan` and `status` never call up to date what the next run would recompute.
    public static func store(_ store: Store, pipeline: String) -> Planner.Lookups {
        Planner.Lookups(
            inputDigest: { try store.importExternal(path: $0, kind: $1, snapshot: false) },
            action: { key in store.action(key).flatMap { store.objectsPresent($0) == nil ? $0 : nil } },
            previous: { store.ref(pipeline: pipeline, stage: $0) },
            damage: { key in store.action(key).flatMap { store.objectsPresent($0) } })
    }
}
