#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Dispatch
#if canImport(Glibc)
import Glibc
#endif

/// What `gc` removed (or would remove with `dryRun`).
public struct GCReport: Sendable {
    public var keptObjects = 0
    public var removedObjects = 0
    public var removedBytes: Int64 = 0
    public var removedActions = 0
    public var removedTrees = 0
    public var removedWorkAreas = 0
    /// Half-written files of processes that were killed mid-write.
    public var removedTemporaries = 0
    /// The results whose cache entries were (or would be) removed: the artifact and the
    /// stage type that made it.
    public var removedResults: [(output: Digest, type: String)] = []
}

extension Store {
    /// Removes every object that no ref reaches, the action entries whose outputs are gone,
    /// unpacked trees and abandoned work areas. Holds the store lock exclusively, so it waits
    /// for running `haps-pipe` processes and they wait for it.
    ///
    /// `keepWork`: keep work areas (journals of interrupted stages), which a later run resumes.
    public func collectGarbage(dryRun: Bool = false, keepWork: Bool = true, extraRoots: [Digest] = []) throws -> GCReport {
        let lock = try lockStore(.exclusive)
        defer { lock?.unlock() }
        var report = GCReport()
        var live = Set<Digest>()
        var liveArtifacts = Set<Digest>(extraRoots)
        for r in allRefs() { liveArtifacts.insert(r.ref.output) }
        for a in liveArtifacts {
            live.insert(a)
            if let m = try? manifest(a) { for f in m.files.values { live.insert(f.digest) } }
        }
        let fm = FileManager.default
        let objects = "\(root)/objects"
        for prefix in (try? fm.contentsOfDirectory(atPath: objects)) ?? [] {
            // A large file's half-written copy (`putLargeFile`) lies beside the prefixes.
            if prefix.hasPrefix(".tmp-") { report.removedTemporaries += 1; if !dryRun { unlink("\(objects)/\(prefix)") }; continue }
            for rest in (try? fm.contentsOfDirectory(atPath: "\(objects)/\(prefix)")) ?? [] {
                // `cdef…` is an LZ4 object, `cdef….raw` a large file's raw one.
                guard let d = Digest(hex: prefix + (rest.hasSuffix(".raw") ? String(rest.dropLast(4)) : rest)) else {
                    // A temporary file left by a killed process (no run holds the store now).
                    if rest.contains(".tmp-") { report.removedTemporaries += 1; if !dryRun { unlink("\(objects)/\(prefix)/\(rest)") } }
                    continue
                }
                if live.contains(d) { report.keptObjects += 1; continue }
                let p = "\(objects)/\(prefix)/\(rest)"
                report.removedObjects += 1
                report.removedBytes += FileIO.status(p)?.size ?? 0
                if !dryRun { unlink(p) }
            }
        }
        let actions = "\(root)/actions"
        var removedKeys = Set<Digest>()
        for prefix in (try? fm.contentsOfDirectory(atPath: actions)) ?? [] {
            for f in (try? fm.contentsOfDirectory(atPath: "\(actions)/\(prefix)")) ?? [] {
                let p = "\(actions)/\(prefix)/\(f)"
                if f.contains(".tmp-") { report.removedTemporaries += 1; if !dryRun { unlink(p) }; continue }
                guard let bytes = try? FileIO.read(p), let json = try? JSONParser.parse(bytes: bytes),
                      let e = ActionEntry(json: json) else { if !dryRun { unlink(p) }; continue }
                if !liveArtifacts.contains(e.output) {
                    report.removedActions += 1
                    removedKeys.insert(e.key)
                    if !report.removedResults.contains(where: { $0.output == e.output }) {
                        report.removedResults.append((e.output, e.payload["type"]?.stringValue ?? "?"))
                    }
                    if !dryRun { unlink(p) }
                }
            }
        }
        for t in (try? fm.contentsOfDirectory(atPath: "\(root)/trees")) ?? [] {
            let stamp = t.hasSuffix(".stamp")
            if let d = Digest(hex: stamp ? String(t.dropLast(6)) : t), liveArtifacts.contains(d) { continue }
            if !stamp { report.removedTrees += 1 }
            if !dryRun { FileIO.removeTree("\(root)/trees/\(t)") }
        }
        if !keepWork {
            for w in (try? fm.contentsOfDirectory(atPath: "\(root)/work")) ?? [] {
                report.removedWorkAreas += 1
                if !dryRun { FileIO.remove("\(root)/work/\(w)") }
            }
        }
        // Logs of results that are gone.
        for f in (try? fm.contentsOfDirectory(atPath: "\(root)/logs")) ?? [] {
            guard f.hasSuffix(".log"), let key = Digest(hex: String(f.dropLast(4))), removedKeys.contains(key) else { continue }
            if !dryRun { FileIO.remove("\(root)/logs/\(f)") }
        }
        // Slurm jobs that ended (no `submitted` record): their logs.
        for j in (try? fm.contentsOfDirectory(atPath: "\(root)/jobs")) ?? [] where !FileIO.exists("\(root)/jobs/\(j)/submitted") {
            report.removedWorkAreas += 1
            if !dryRun { FileIO.removeTree("\(root)/jobs/\(j)") }
        }
        if !dryRun { FileIO.remove("\(root)/corrupt"); FileIO.remove("\(root)/filestat"); FileIO.remove("\(root)/checked") }
        return report
    }
}
