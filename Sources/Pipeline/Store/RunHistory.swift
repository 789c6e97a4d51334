/// What the store's run records (`runs/<id>.json`, one per run) say about past runs, for the
/// commands that report on them: a stage whose last attempt failed is "failed", not "never
/// run", and a result `gc` would remove is named by the stage that made it.
extension Store {
    /// The keys whose latest attempt in `pipeline`'s recorded runs (the newest 200) failed,
    /// with the run and the error's first line.
    public func lastFailures(pipeline: String) -> [Digest: (run: String, error: String)] {
        var out: [Digest: (run: String, error: String)] = [:], seen = Set<Digest>()
        for id in runRecordIDs().prefix(200) {  // newest first
            guard let r = runRecord(id: id), r["pipeline"]?.stringValue == pipeline else { continue }
            for st in r["stages"]?.arrayValue ?? [] {
                guard let key = st["key"]?.stringValue.flatMap(Digest.init(hex:)), seen.insert(key).inserted else { continue }
                if st["outcome"]?.stringValue == "failed" {
                    out[key] = (id, String((st["error"]?.stringValue ?? "").split(separator: "\n").first ?? ""))
                }
            }
        }
        return out
    }

    /// Every output the run records name → the PIPELINE/STAGE that last made it (a spec's own
    /// pipeline before a sweep's merged one).
    public func resultNames() -> [Digest: String] {
        var names: [Digest: String] = [:]
        for id in runRecordIDs().reversed() {
            guard let rec = runRecord(id: id), let p = rec["pipeline"]?.stringValue else { continue }
            for s in rec["stages"]?.arrayValue ?? [] {
                guard let o = s["output"]?.stringValue.flatMap(Digest.init(hex:)), let st = s["stage"]?.stringValue else { continue }
                // A result a sweep shares with its spec keeps the spec's name (quickstart/evaluate,
                // not quickstart~k/evaluate@k=10).
                if p.contains("~"), let known = names[o], !known.contains("~") { continue }
                names[o] = "\(p)/\(st)"
            }
        }
        return names
    }
}
