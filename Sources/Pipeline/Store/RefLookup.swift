/// Finds what a user's name for a stored result means: a stage's ref by `STAGE` or
/// `PIPELINE/STAGE` (or a stage within a given pipeline), or an artifact by its digest or a
/// prefix of it. `show`, `explain`, `export` and spec inputs that name stored results all
/// resolve names here, so they agree on what a name means and on the errors for it.
public enum RefLookup {
    /// The ref `target` names (STAGE, or PIPELINE/STAGE unless `pipeline` is given); nil when
    /// no stored result matches. A stage several pipelines hold different results of is
    /// ambiguous (`StoreError.Code.ambiguous`).
    ///
    /// The ref is what the latest run of the stage left, whichever experiment it was: what a
    /// spec's input naming PIPELINE/STAGE reads and what `explain` explains. With `specsOwn`
    /// (what `show`, `report` and `ui` mean by a name) it is the spec's own result instead,
    /// its "spec" experiment's latest run's, where it has one; and a sweep's merged pipelines
    /// (quickstart~alpha) count only when no spec's pipeline has the stage.
    public static func find(_ target: String, pipeline: String?, in store: Store, specsOwn: Bool = false) throws(StoreError)
        -> (pipeline: String, stage: String, ref: StageRef)? {
        let refs = store.allRefs()
        var pipe = pipeline, stage = target
        if pipe == nil, let slash = target.firstIndex(of: "/") {
            pipe = String(target[..<slash]); stage = String(target[target.index(after: slash)...])
        }
        var matches = refs.filter { $0.stage == stage && (pipe == nil || $0.pipeline == pipe) }
        if specsOwn {
            if pipe == nil, matches.contains(where: { !$0.pipeline.contains("~") }) { matches.removeAll { $0.pipeline.contains("~") } }
            matches = matches.map { m in
                guard let own = store.ref(pipeline: m.pipeline, stage: m.stage, experiment: "spec"), own.output != m.ref.output else { return m }
                return (pipeline: m.pipeline, stage: m.stage, ref: own)
            }
        }
        // A stage a sweep shares with its spec (quickstart and quickstart~alpha) is one result:
        // ambiguous only when the pipelines hold different ones.
        if Set(matches.map(\.ref.output)).count == 1 { matches.sort { ($0.pipeline.contains("~") ? 1 : 0, $0.pipeline) < ($1.pipeline.contains("~") ? 1 : 0, $1.pipeline) } }
        else if matches.count > 1 {
            throw StoreError(.ambiguous, "stage '\(stage)' exists in several pipelines (\(matches.map(\.pipeline).joined(separator: ", "))); write PIPELINE/\(stage)")
        }
        return matches.first
    }

    /// The artifact `target` names: a stage's latest result (STAGE or PIPELINE/STAGE) or a
    /// digest (a prefix of at least 6 hex digits). Nothing matching is `.notFound`.
    public static func artifact(_ target: String, pipeline: String?, in store: Store, specsOwn: Bool = false) throws(StoreError) -> Digest {
        if let d = try artifactIfAny(target, pipeline: pipeline, in: store, specsOwn: specsOwn) { return d }
        throw StoreError(.notFound, "'\(target)' is neither a stage with a stored result nor an artifact digest in \(store.root)")
    }

    /// As `artifact`, but nil when nothing matches (ambiguity and damage still throw: a damaged
    /// ref of that stage is `.badMetadata`).
    public static func artifactIfAny(_ target: String, pipeline: String?, in store: Store, specsOwn: Bool = false) throws(StoreError) -> Digest? {
        if let found = try find(target, pipeline: pipeline, in: store, specsOwn: specsOwn) { return found.ref.output }
        if let d = try store.resolveDigestPrefix(target) { return d }
        if let damaged = store.damagedRefs(stage: target).first {
            throw StoreError(.badMetadata, "the stored result of '\(target)' cannot be read: its ref file \(damaged) is damaged (rerun the pipeline to rewrite it)")
        }
        return nil
    }
}

extension Store {
    /// What a spec's input may name in this store besides stages and files: another pipeline's
    /// result (PIPELINE/STAGE) or an artifact digest, as `show` takes them.
    public var results: PipelineSpec.StoredResults {
        PipelineSpec.StoredResults(
            lookup: { [self] name in
                guard let d = try RefLookup.artifactIfAny(name, pipeline: nil, in: self) else { return nil }
                return (d, try manifest(d).kind)
            },
            names: { [self] in allRefs().map { "\($0.pipeline)/\($0.stage)" } })
    }
}
