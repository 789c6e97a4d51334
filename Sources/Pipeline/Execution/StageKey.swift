/// The identity of a stage run: a digest of everything that determines its output.
///
/// payload = {type, version, params (canonical), seed, resources (identities), inputs (digests)}
/// and key = SHA-256 of the payload's canonical JSON. Two runs with the same key are the same
/// work; the payload is stored with each result so that `explain` can say what changed.
public struct StageKey: Sendable {
    public var payload: JSONValue
    public var digest: Digest

    /// Resource fields that say where or how fast to reach a resource, not what it computes;
    /// they are left out of keys so that moving a server does not invalidate results.
    public static let volatileResourceFields: Set<String> = [
        "url", "urls", "api_key_env", "timeout", "timeout_s", "connect_timeout_s", "concurrency",
        "max_concurrency", "workers", "retries",
    ]

    public static func identity(ofResource r: JSONValue) -> JSONValue {
        guard let m = r.objectMembers else { return r }
        return .object(m.filter { !volatileResourceFields.contains($0.key) })
    }

    public init(stage: PlannedStageSpec, inputs: [String: Digest]) {
        var resources: [String: JSONValue] = [:]
        for (name, r) in stage.resources { resources[name] = StageKey.identity(ofResource: r) }
        var ins: [String: JSONValue] = [:]
        for (port, d) in inputs { ins[port] = .string(d.hex) }
        payload = .object([
            "type": .string(stage.definition.name), "version": .number(Double(stage.definition.version)),
            "params": stage.paramsJSON, "seed": .number(Double(stage.seed)),
            "resources": .object(resources), "inputs": .object(ins),
        ])
        digest = Digest.of(string: payload.canonical)
    }

    /// Human-readable differences between an earlier payload and this one, as `plan` and
    /// `explain` print them. `sources` names where each input comes from.
    public static func differences(from old: JSONValue?, to new: JSONValue, sources: [String: InputSource] = [:]) -> [String] {
        guard let old else { return ["no earlier run of this stage"] }
        var out: [String] = []
        if old["type"] != new["type"] {
            out.append("stage type changed: \(old["type"]?.stringValue ?? "?") → \(new["type"]?.stringValue ?? "?")")
        } else if old["version"] != new["version"] {
            out.append("implementation version of '\(new["type"]?.stringValue ?? "?")' changed: \(fmt(old["version"])) → \(fmt(new["version"]))")
        }
        diffValues(old["params"], new["params"], path: "params", into: &out)
        if old["seed"] != new["seed"] { out.append("seed changed: \(fmt(old["seed"])) → \(fmt(new["seed"]))") }
        let oldRes = old["resources"]?.objectMembers ?? [], newRes = new["resources"]?.objectMembers ?? []
        for name in Set(oldRes.map(\.key) + newRes.map(\.key)).sorted() {
            let a = old["resources"]?[name], b = new["resources"]?[name]
            if a != b {
                if a == nil { out.append("now uses resource '\(name)'") }
                else if b == nil { out.append("no longer uses resource '\(name)'") }
                else { diffValues(a, b, path: "resource \(name)", into: &out) }
            }
        }
        let oldIn = old["inputs"]?.objectMembers ?? [], newIn = new["inputs"]?.objectMembers ?? []
        for port in Set(oldIn.map(\.key) + newIn.map(\.key)).sorted() {
            let a = old["inputs"]?[port]?.stringValue, b = new["inputs"]?[port]?.stringValue
            guard a != b else { continue }
            let from: String
            switch sources[port] {
            case .stage(let s)?: from = " (output of stage '\(s)')"
            case .path(let p)?: from = " (file \(p))"
            case .artifact(let d)?: from = " (artifact \(d.short))"
            case nil: from = ""
            }
            if a == nil { out.append("new input '\(port)'\(from)") }
            else if b == nil { out.append("input '\(port)' removed") }
            else { out.append("input '\(port)' changed\(from): \(a!.prefix(12)) → \(b!.prefix(12))") }
        }
        return out
    }

    static func fmt(_ v: JSONValue?) -> String {
        guard let v else { return "(unset)" }
        let s = v.canonical
        return s.count > 80 ? String(s.prefix(77)) + "..." : s
    }

    static func diffValues(_ a: JSONValue?, _ b: JSONValue?, path: String, into out: inout [String]) {
        if a == b { return }
        if let am = a?.objectMembers, let bm = b?.objectMembers {
            for k in Set(am.map(\.key) + bm.map(\.key)).sorted() {
                diffValues(a?[k], b?[k], path: "\(path).\(k)", into: &out)
            }
            return
        }
        if a == nil { out.append("\(path) set to \(fmt(b))") }
        else if b == nil { out.append("\(path) removed (was \(fmt(a)))") }
        else { out.append("\(path) changed: \(fmt(a)) → \(fmt(b))") }
    }
}
