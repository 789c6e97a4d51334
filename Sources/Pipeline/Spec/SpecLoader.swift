#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Dispatch
#if canImport(Glibc)
import Glibc
#endif

extension PipelineSpec {
    static let topLevelFields = ["name", "description", "seed", "resources", "pools", "executor", "stages", "sweep"]
    static let stageFields = ["type", "inputs", "params", "pool", "cpus", "mem", "gpus", "time", "seed", "description"]
    public static let defaultSeed = 43

    /// The results of a store an input may name when it is neither a stage of the spec nor
    /// an existing file: another pipeline's result (PIPELINE/STAGE) or an artifact digest, as
    /// `show` takes them. Names, kinds and digest prefixes are checked at validation.
    public struct StoredResults: Sendable {
        /// The result a name gives, with its kind; nil when nothing matches; throws (with the
        /// message `show` gives) for an ambiguous name or digest prefix, or a damaged ref.
        public var lookup: @Sendable (String) throws -> (digest: Digest, kind: ArtifactKind)?
        /// Every stored result's PIPELINE/STAGE, for "did you mean".
        public var names: @Sendable () -> [String]
        public init(lookup: @escaping @Sendable (String) throws -> (digest: Digest, kind: ArtifactKind)?, names: @escaping @Sendable () -> [String]) {
            self.lookup = lookup; self.names = names
        }
    }

    /// Reads, overrides and validates a spec file. Throws `SpecError` listing every problem.
    public static func load(path: String, registry: StageRegistry, overrides: [String] = [],
                            baseDirectory: String = FileManager.default.currentDirectoryPath, stored: StoredResults? = nil) throws -> PipelineSpec {
        let text: String
        do { text = try FileIO.readString(path) } catch {
            throw SpecError(file: path, problems: [SpecProblem(.root, "cannot read the spec: " + (error.line.map { "line \($0): " } ?? "") + error.reason)])
        }
        return try parse(text: text, file: path, registry: registry, overrides: overrides, baseDirectory: baseDirectory, stored: stored)
    }

    public static func parse(text: String, file: String, registry: StageRegistry, overrides: [String] = [],
                             baseDirectory: String = FileManager.default.currentDirectoryPath, stored: StoredResults? = nil) throws -> PipelineSpec {
        let doc: JSONParser.Document
        do { doc = try JSONParser.parseDocument(text) } catch {
            throw SpecError(file: file, problems: [], syntax: error)
        }
        return try parse(value: doc.value, file: file, registry: registry, overrides: overrides, baseDirectory: baseDirectory, stored: stored,
                         locations: doc.locations)
    }

    /// A spec given as a value (a command's one-stage pipeline, built in code rather than as
    /// text), validated as a file is; `file` names it in errors.
    public static func parse(value: JSONValue, file: String, registry: StageRegistry, overrides: [String] = [],
                             baseDirectory: String = FileManager.default.currentDirectoryPath, stored: StoredResults? = nil,
                             locations: [JSONPath: SourceLocation] = [:]) throws -> PipelineSpec {
        var value = value
        var problems: [SpecProblem] = []
        var overridden: [(path: JSONPath, text: String)] = []
        for o in overrides {
            switch applyOverride(o, to: value, registry: registry) {
            case .success(let (v, path)): value = v; overridden.append((path, o))
            case .failure(let p): problems.append(p)
            }
        }
        var validator = SpecValidator(registry: registry, baseDirectory: baseDirectory)
        validator.stored = stored
        let spec = validator.validate(value, sourcePath: file)
        // A problem with a value that came from --set is the --set argument's, not the file's.
        problems += validator.problems.map { p in
            guard let o = overridden.last(where: { p.path.components.starts(with: $0.path.components) }) else { return p }
            return SpecProblem(SpecProblem.commandLine, "'\(o.text)': \(p.message)")
        }
        if !problems.isEmpty || spec == nil {
            throw SpecError(file: file, problems: problems, locations: locations)
        }
        return spec!
    }

    /// Applies `stage.param[.sub]=value`: a typed stage's parameter and a `command` stage's own
    /// parameter (under its `params`) alike; `stage.params.param` is accepted too. The value is
    /// JSON when it parses, else a string, and a string whatever it looks like when the
    /// parameter is declared a string (`x.run=true`). Seeds too: `seed=N` is the spec's,
    /// `stage.seed=N` the stage's own (unless its type declares a parameter of that name), so
    /// that a run or a sweep can replicate one stage over seeds. Returns the document and the path set.
    static func applyOverride(_ text: String, to doc: JSONValue, registry: StageRegistry) -> Result<(JSONValue, JSONPath), SpecProblem> {
        let at = SpecProblem.commandLine
        guard let eq = text.firstIndex(of: "=") else {
            return .failure(SpecProblem(at, "'\(text)' is not of the form stage.param=value"))
        }
        let lhs = String(text[..<eq]), rhs = String(text[text.index(after: eq)...])
        let keys = lhs.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
        if keys == ["seed"] { return seedOverride(text, rhs, path: ["seed"], in: doc) }
        guard keys.count >= 2, keys.allSatisfy({ !$0.isEmpty }) else {
            return .failure(SpecProblem(at, "'\(text)' is not of the form stage.param=value"))
        }
        let stageNames = doc["stages"]?.objectMembers?.map(\.key) ?? []
        guard stageNames.contains(keys[0]) else {
            return .failure(SpecProblem(at, "'\(lhs)': unknown stage '\(keys[0])'" + NearestName.hint(keys[0], among: stageNames)))
        }
        let stage = doc["stages"]![keys[0]]!
        if keys.count == 2 && keys[1] == "seed" && !declaresSeed(stage, registry) {
            return seedOverride(text, rhs, path: ["stages", keys[0], "seed"], in: doc)
        }
        var rest = Array(keys[1...])
        var path = ["stages", keys[0], "params"]
        var declaration: ParameterDeclaration?
        if let typeName = stage["type"]?.stringValue, let definition = registry[typeName] {
            let declared = definition.parameters.map(\.name)
            if typeName == "command" {
                // Its own parameters live under params.params; its fields (run, outputs, ...) above.
                if rest[0] == "params" && rest.count >= 2 { rest.removeFirst(); path.append("params") }
                else if !declared.contains(rest[0]) { path.append("params") }
                if path.count == 4 {
                    let own = stage["params"]?["params"]?.objectMembers?.map(\.key) ?? []
                    guard own.contains(rest[0]) else {
                        let choices = own.isEmpty ? "; it declares none (add them under its \"params\": {\"params\": {...}})" : NearestName.hintOrChoices(rest[0], among: own)
                        return .failure(SpecProblem(at, "'\(lhs)': command stage '\(keys[0])' has no parameter '\(rest[0])'" + choices))
                    }
                }
            } else if rest[0] == "params" && rest.count >= 2 && !declared.contains("params") {
                rest.removeFirst()
            }
            if path.count == 3 {
                guard declared.contains(rest[0]) else {
                    return .failure(SpecProblem(at, "'\(lhs)': unknown parameter '\(rest[0])' for stage type '\(typeName)'" + NearestName.hint(rest[0], among: declared)))
                }
                declaration = definition.parameters.first { $0.name == rest[0] }
            }
        }
        var parsed: JSONValue
        do { parsed = try JSONParser.parse(rhs) } catch {
            if error.isNumberOutOfRange { return .failure(SpecProblem(at, "'\(text)': \(error.message)")) }
            parsed = .string(rhs)
        }
        if rest.count == 1, declaration?.type.hasPrefix("a string") == true, parsed.stringValue == nil, parsed.arrayValue == nil { parsed = .string(rhs) }
        let full = path + rest
        return .success((doc.setting(full[...], to: parsed), JSONPath(full.map { .key($0) })))
    }

    /// A seed override: the integer `rhs` set at `path`.
    static func seedOverride(_ text: String, _ rhs: String, path: [String], in doc: JSONValue) -> Result<(JSONValue, JSONPath), SpecProblem> {
        guard let n = try? JSONParser.parse(rhs), n.intValue != nil else {
            return .failure(SpecProblem(SpecProblem.commandLine, "'\(text)': a seed is an integer"))
        }
        return .success((doc.setting(path[...], to: n), JSONPath(path.map { .key($0) })))
    }

    /// Whether `stage`'s type has a parameter named `seed` (build-sft's; a command stage's own):
    /// then `stage.seed` is that parameter, not the stage's seed.
    static func declaresSeed(_ stage: JSONValue?, _ registry: StageRegistry) -> Bool {
        guard let stage, let typeName = stage["type"]?.stringValue, let definition = registry[typeName] else { return false }
        if typeName == "command" { return stage["params"]?["params"]?["seed"] != nil }
        return definition.parameters.contains { $0.name == "seed" }
    }
}

/// Checks a spec document against the registry and builds the validated pipeline.
struct SpecValidator {
    let registry: StageRegistry
    let baseDirectory: String
    var problems: [SpecProblem] = []

    /// Results in the store that inputs may name (PIPELINE/STAGE, digests).
    var stored: PipelineSpec.StoredResults?

    init(registry: StageRegistry, baseDirectory: String) {
        self.registry = registry; self.baseDirectory = baseDirectory
    }

    mutating func report(_ path: JSONPath, _ message: String) { problems.append(SpecProblem(path, message)) }

    /// `"sweep": {"name", "grid": {path: [values]}, "zip": {path: [values]}, "points": [{path: value}],
    /// "seeds": [seeds] or {"values": [seeds], "stages": [names]}}` (docs/sweeps.md); `run`
    /// ignores it, `haps-pipe sweep SPEC` expands it. `doc`: the spec, whose stages seeds may name.
    mutating func validateSweepBlock(_ v: JSONValue, at path: JSONPath, doc: JSONValue? = nil) {
        guard let members = v.objectMembers else { return report(path, "expected an object, found \(v.typeDescription)") }
        for (k, value) in members {
            switch k {
            case "name":
                if value.stringValue.map(isValidName) != true { report(path.appending(k), "expected a name (letters, digits, '_' and '-')") }
            case "grid", "zip":
                for (p, values) in value.objectMembers ?? [] where values.arrayValue?.isEmpty != false {
                    report(path.appending(k).appending(p), "expected a non-empty list of values")
                }
                if value.objectMembers == nil { report(path.appending(k), "expected an object of stage.param paths to lists of values") }
            case "points":
                if value.arrayValue?.allSatisfy({ $0.objectMembers != nil }) != true { report(path.appending(k), "expected a list of objects of stage.param paths to values") }
            case "seeds":
                let values = value.arrayValue ?? value["values"]?.arrayValue
                if values?.isEmpty != false || values?.allSatisfy({ $0.intValue != nil }) != true {
                    report(path.appending(k), "expected a non-empty list of integer seeds, or {\"values\": [seeds], \"stages\": [stage names]}")
                }
                let stageNames = doc?["stages"]?.objectMembers?.map(\.key) ?? []
                for name in (value["stages"]?.arrayValue ?? []).map({ $0.stringValue ?? "" }) where !stageNames.contains(name) {
                    report(path.appending(k).appending("stages"), "unknown stage '\(name)'" + NearestName.hint(name, among: stageNames))
                }
            default:
                report(path.appending(k), "unknown field '\(k)'" + NearestName.hint(k, among: ["name", "grid", "zip", "points", "seeds"]))
            }
        }
    }

    mutating func validate(_ doc: JSONValue, sourcePath: String) -> PipelineSpec? {
        let root = JSONPath.root
        guard let top = doc.objectMembers else {
            report(root, "expected an object with 'name' and 'stages', found \(doc.typeDescription)")
            return nil
        }
        reportDuplicateKeys(doc, at: root)
        for (k, _) in top where !PipelineSpec.topLevelFields.contains(k) {
            report(root.appending(k), "unknown field '\(k)'" + NearestName.hint(k, among: PipelineSpec.topLevelFields))
        }
        var name = "pipeline"
        switch doc["name"] {
        case .string(let s)? where isValidName(s): name = s
        case .string(let s)?: report(root.appending("name"), "'\(s)' is not a valid name (use letters, digits, '_' and '-')")
        case nil: report(root, "missing field 'name'")
        case let v?: report(root.appending("name"), "expected a string, found \(v.typeDescription)")
        }
        let seed = integer(doc["seed"], at: root.appending("seed")) ?? PipelineSpec.defaultSeed
        if let sweep = doc["sweep"] { validateSweepBlock(sweep, at: root.appending("sweep"), doc: doc) }

        var pools: [String: Int] = [:]
        if let p = doc["pools"] {
            if let members = p.objectMembers {
                for (k, v) in members {
                    if let n = v.intValue, n >= 1 { pools[k] = n } else {
                        report(root.appending("pools").appending(k), "expected a positive integer, found \(v.typeDescription)")
                    }
                }
            } else { report(root.appending("pools"), "expected an object of pool sizes, found \(p.typeDescription)") }
        }
        var executor = ExecutorKind.local
        if let e = doc["executor"] {
            var found: [SpecProblem] = []
            executor = SlurmSettings.decode(e, at: root.appending("executor")) { found.append(SpecProblem($0, $1)) }
            problems += found
        }
        let resources = doc["resources"] ?? .object([])
        if resources.objectMembers == nil { report(root.appending("resources"), "expected an object, found \(resources.typeDescription)") }

        guard let stagesJSON = doc["stages"] else {
            report(root, "missing field 'stages'")
            return nil
        }
        guard let stageMembers = stagesJSON.objectMembers else {
            report(root.appending("stages"), "expected an object of stages, found \(stagesJSON.typeDescription)")
            return nil
        }
        if stageMembers.isEmpty { report(root.appending("stages"), "a pipeline needs at least one stage") }
        var stageNames: [String] = []  // unique, in spec order (repeats are reported above)
        for (k, _) in stageMembers where !stageNames.contains(k) { stageNames.append(k) }

        // Pass 1: each stage on its own.
        var stages: [String: PlannedStageSpec] = [:]
        var rawInputs: [String: [(String, String, JSONPath)]] = [:]
        // The graph as written, for every stage (also those whose type or parameters are bad),
        // so that a cycle is reported in the same pass as everything else.
        var edges: [String: [String]] = [:]
        for (sname, sjson) in stageMembers {
            edges[sname] = (sjson["inputs"]?.objectMembers ?? []).compactMap { $0.value.stringValue }.filter { stageNames.contains($0) && $0 != sname }
        }
        for (sname, sjson) in stageMembers {
            let sp = root.appending("stages").appending(sname)
            if !isValidName(sname) { report(sp, "'\(sname)' is not a valid stage name (use letters, digits, '_' and '-')") }
            guard let members = sjson.objectMembers else {
                report(sp, "expected an object with 'type', found \(sjson.typeDescription)"); continue
            }
            for (k, _) in members where !PipelineSpec.stageFields.contains(k) {
                report(sp.appending(k), "unknown field '\(k)'" + NearestName.hint(k, among: PipelineSpec.stageFields))
            }
            guard let typeValue = sjson["type"] else { report(sp, "missing field 'type'"); continue }
            guard let typeName = typeValue.stringValue else {
                report(sp.appending("type"), "expected a string, found \(typeValue.typeDescription)"); continue
            }
            guard let def = registry[typeName] else {
                let hint = NearestName.hint(typeName, among: registry.names)
                report(sp.appending("type"), "unknown stage type '\(typeName)'" + (hint.isEmpty ? "; known types: \(registry.names.joined(separator: ", "))" : hint))
                continue
            }
            let decoded = def.decode(sjson["params"] ?? .object([]), sp.appending("params"))
            problems += decoded.problems
            guard let params = decoded.value else { continue }  // a required parameter is missing or bad
            let paramsJSON = decoded.effective
            problems += def.validateParams(params, sp.appending("params"))
            let ports = def.portsOf(params)

            var inputs: [(String, String, JSONPath)] = []
            var named = Set<String>()
            if let i = sjson["inputs"] {
                if let im = i.objectMembers {
                    for (port, src) in im {
                        let ip = sp.appending("inputs").appending(port)
                        named.insert(port)
                        guard let s = src.stringValue else { report(ip, "expected a stage name or a file path, found \(src.typeDescription)"); continue }
                        if ports.openInputKind == nil && !ports.inputs.contains(where: { $0.name == port }) {
                            let names = ports.inputs.map(\.name)
                            report(ip, "unknown input '\(port)' for stage type '\(typeName)'" +
                                   (NearestName.hint(port, among: names).isEmpty ? "; its inputs are: \(names.isEmpty ? "(none)" : names.joined(separator: ", "))" : NearestName.hint(port, among: names)))
                            continue
                        }
                        inputs.append((port, s, ip))
                    }
                } else { report(sp.appending("inputs"), "expected an object of inputs, found \(i.typeDescription)") }
            }
            for port in ports.inputs where !port.optional && !named.contains(port.name) {
                report(sp.appending("inputs"), "missing input '\(port.name)' (kind '\(port.kind)')")
            }
            var resolved: [String: JSONValue] = [:]
            for r in def.resourcesOf(params) {
                if let v = lookupResource(r, in: resources) { resolved[r] = v } else {
                    let known = resourceNames(resources)
                    report(sp.appending("params"), "unknown resource '\(r)'" + NearestName.hint(r, among: known))
                }
            }
            var pool: String?
            if let pv = sjson["pool"] {
                if let p = pv.stringValue {
                    if pools[p] == nil { report(sp.appending("pool"), "unknown pool '\(p)'" + (NearestName.hint(p, among: pools.keys).isEmpty ? "; declare it under $.pools" : NearestName.hint(p, among: pools.keys))) }
                    pool = p
                } else { report(sp.appending("pool"), "expected a string, found \(pv.typeDescription)") }
            }
            var cpus = 1
            if let c = sjson["cpus"] {
                if let n = c.intValue, n >= 1 { cpus = n } else { report(sp.appending("cpus"), "expected a positive integer, found \(c.typeDescription)") }
            }
            var job = JobResources()
            for field in ["mem", "time"] {
                guard let v = sjson[field] else { continue }
                if let s = v.stringValue, !s.isEmpty { if field == "mem" { job.mem = s } else { job.time = s } }
                else { report(sp.appending(field), "expected a string in Slurm's syntax (\(field == "mem" ? "\"16G\"" : "\"4:00:00\"")), found \(v.typeDescription)") }
            }
            if let g = sjson["gpus"] {
                if let n = g.intValue, n >= 0 { job.gpus = n } else { report(sp.appending("gpus"), "expected a non-negative integer, found \(g.typeDescription)") }
            }
            let stageSeed = integer(sjson["seed"], at: sp.appending("seed")) ?? seed
            rawInputs[sname] = inputs
            stages[sname] = PlannedStageSpec(name: sname, definition: def, paramsJSON: paramsJSON, params: params, ports: ports,
                                             inputs: [], resources: resolved, pool: pool, cpus: cpus, seed: stageSeed, job: job)
        }

        // Pass 2: wire inputs, check kinds.
        for sname in stageNames {
            guard var st = stages[sname] else { continue }
            for (port, s, ip) in rawInputs[sname] ?? [] {
                let kind = st.ports.inputs.first(where: { $0.name == port })?.kind ?? st.ports.openInputKind ?? .any
                if stageNames.contains(s) {
                    if s == sname { report(ip, "stage '\(sname)' cannot take its own output as input"); continue }
                    if let producer = stages[s], !kind.accepts(producer.ports.output) {
                        report(ip, "stage '\(s)' outputs '\(producer.ports.output)' but input '\(port)' of '\(st.definition.name)' expects '\(kind)'")
                    }
                    st.inputs.append((port, kind, .stage(s)))
                } else {
                    let full = s.hasPrefix("/") ? s : baseDirectory + "/" + s
                    let found: (digest: Digest, kind: ArtifactKind)?
                    do { found = FileIO.exists(full) ? nil : try stored?.lookup(s) } catch {
                        report(ip, "input '\(port)': \(error)"); continue
                    }
                    // A name of PIPELINE/STAGE's shape that matches nothing is checked against the store's.
                    // Only when its first part is (within one edit) a stored pipeline and no directory
                    // of that name is there: `data/train`, a directory yet to fetch, stays a path.
                    let refShaped = s.filter { $0 == "/" }.count == 1 && !s.contains(".") && !s.hasPrefix("/")
                    let first = String(s.prefix { $0 != "/" })
                    var storedNames = found == nil && refShaped && !FileIO.exists(full) && !FileIO.exists(baseDirectory + "/" + first) ? stored?.names() ?? [] : []
                    if !storedNames.contains(where: { NearestName.distance(first, String($0.prefix { $0 != "/" })) <= 1 }) { storedNames = [] }
                    if FileIO.exists(full) {
                        st.inputs.append((port, kind, .path(full)))
                    } else if let found {  // another pipeline's result (PIPELINE/STAGE) or an artifact digest
                        if !kind.accepts(found.kind) {
                            report(ip, "'\(s)' is a stored result of kind '\(found.kind)' but input '\(port)' of '\(st.definition.name)' expects '\(kind)'")
                        }
                        st.inputs.append((port, kind, .artifact(found.digest)))
                    } else if let near = NearestName.suggest(s, among: storedNames) {
                        report(ip, "'\(s)' is neither a stage of this pipeline, nor an existing file, nor a result in the store; did you mean '\(near)'?")
                    } else if let slash = s.firstIndex(of: "/"), Set(storedNames.map { $0.prefix { $0 != "/" } }).contains(s[..<slash]) {
                        let pipeline = String(s[..<slash])
                        let stages = storedNames.filter { $0.hasPrefix(pipeline + "/") }.map { String($0.dropFirst(pipeline.count + 1)) }
                        report(ip, "the store has no result '\(s)': pipeline '\(pipeline)' has \(stages.joined(separator: ", "))")
                    } else if s.contains("/") && NearestName.suggest(s, among: stageNames) == nil {
                        // A path to something the user has yet to fetch (a model directory): the
                        // spec is valid, and a run that needs this stage stops before it starts
                        // anything (`Executor.missingInputs`); other stages can run meanwhile.
                        st.inputs.append((port, kind, .path(full)))
                    } else {
                        let hint = NearestName.hint(s, among: stageNames, what: "stage")
                        report(ip, "'\(s)' is neither a stage of this pipeline nor an existing file" + (stored == nil ? "" : " nor a result in the store (PIPELINE/STAGE or a digest)") + hint)
                    }
                }
            }
            stages[sname] = st
        }
        let order = topologicalOrder(stageNames, edges)
        if !problems.isEmpty { return nil }
        return PipelineSpec(name: name, description: doc["description"]?.stringValue ?? "", sourcePath: sourcePath,
                            baseDirectory: baseDirectory, seed: seed, pools: pools, executor: executor, stages: stages, order: order, document: doc)
    }

    /// Kahn's algorithm in spec order over `edges` (stage → the stages it reads); reports a
    /// cycle (as a path) when one exists.
    mutating func topologicalOrder(_ names: [String], _ edges: [String: [String]]) -> [String] {
        var done = Set<String>(), order: [String] = []
        guard !names.isEmpty else { return [] }
        while order.count < names.count {
            guard let next = names.first(where: { !done.contains($0) && (edges[$0] ?? []).allSatisfy { done.contains($0) } }) else {
                // Find one cycle to show.
                let remaining = names.filter { !done.contains($0) }
                var path: [String] = [remaining[0]], seen: [String: Int] = [remaining[0]: 0]
                while true {
                    let cur = path.last!
                    guard let nxt = (edges[cur] ?? []).first(where: { !done.contains($0) }) else { break }
                    if let i = seen[nxt] {
                        // Data flows against the walk; start the cycle at its first stage in spec order.
                        var cycle = Array(path[i...].reversed())
                        let first = cycle.indices.min { names.firstIndex(of: cycle[$0])! < names.firstIndex(of: cycle[$1])! }!
                        cycle = Array(cycle[first...] + cycle[..<first])
                        report(JSONPath.root.appending("stages"), "dependency cycle: " + (cycle + [cycle[0]]).joined(separator: " -> "))
                        break
                    }
                    seen[nxt] = path.count
                    path.append(nxt)
                }
                return order
            }
            done.insert(next); order.append(next)
        }
        return order
    }

    /// JSON allows repeated member names, and readers keep the last: in a spec that silently
    /// drops a stage or a parameter, so every repeat is a problem.
    mutating func reportDuplicateKeys(_ v: JSONValue, at path: JSONPath) {
        switch v {
        case .object(let members):
            var seen = Set<String>()
            for (k, child) in members {
                if !seen.insert(k).inserted { report(path.appending(k), "'\(k)' appears more than once in this object") }
                reportDuplicateKeys(child, at: path.appending(k))
            }
        case .array(let items):
            for (i, item) in items.enumerated() { reportDuplicateKeys(item, at: path.appending(index: i)) }
        default: break
        }
    }

    mutating func integer(_ v: JSONValue?, at path: JSONPath) -> Int? {
        guard let v else { return nil }
        if let n = v.intValue { return n }
        report(path, "expected an integer, found \(v.typeDescription)")
        return nil
    }

    func isValidName(_ s: String) -> Bool {
        !s.isEmpty && s.unicodeScalars.allSatisfy { ($0 >= "a" && $0 <= "z") || ($0 >= "A" && $0 <= "Z") || ($0 >= "0" && $0 <= "9") || $0 == "_" || $0 == "-" }
    }

    func lookupResource(_ name: String, in resources: JSONValue) -> JSONValue? {
        var v: JSONValue? = resources
        for part in name.split(separator: ".") { v = v?[String(part)] }
        return v
    }

    func resourceNames(_ resources: JSONValue) -> [String] {
        var out: [String] = []
        for (k, v) in resources.objectMembers ?? [] {
            out.append(k)
            for (k2, _) in v.objectMembers ?? [] { out.append("\(k).\(k2)") }
        }
        return out
    }
}
