#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Dispatch
#if canImport(Glibc)
import Glibc
#endif

/// The on-disk store: content-addressed objects, the action cache, refs and run records.
///
///     let store = try Store(root: "artifacts")
///     let d = try store.putObject(Array("hi".utf8))
///     try store.object(d)            // verified on every read
///
/// Layout (all writes atomic: temporary file, fsync, rename):
///
///     objects/ab/cdef…        LZ4 frames of file contents and manifests, named by SHA-256
///     objects/ab/cdef….raw    large files (`largeFileThreshold`) as they are, sealed (LargeObjects.swift)
///     actions/ab/<key>.json   action cache: stage key → output artifact digest (+ provenance)
///     refs/<pipeline>/<stage>.json   the latest result of each stage of each pipeline
///     runs/<time>-<pid>.json  one record per `haps-pipe run`
///     work/<key>/             journals, checkpoints and scratch of a stage that has not finished
///     trees/<digest>/         read-only unpacked copies of artifacts that stages read (+ .stamp)
///     memo/<pid>-<random>.log   recorded model calls, one append-only log per writing process
///     filestat/               cache of the digests of users' input files by (size, mtime, inode)
///     locks/                  flock files: one per key being computed, one for the whole store
public final class Store: @unchecked Sendable {
    public let root: String
    /// Recorded model calls (`memo/`), indexed on first use.
    public let callMemo: CallMemo
    /// Files of at least this many bytes are stored raw and streamed, never read whole
    /// (`Store.largeFileThreshold`; tests pass a small one).
    public let largeFileBytes: Int64

    public init(root: String, largeFileBytes: Int64 = Store.largeFileThreshold) throws(FileError) {
        self.largeFileBytes = largeFileBytes
        var r = root
        while r.count > 1 && r.hasSuffix("/") { r.removeLast() }
        if !r.hasPrefix("/") { r = FileManager.default.currentDirectoryPath + "/" + r }
        self.root = r
        callMemo = CallMemo(directory: r + "/memo")
        if FileIO.exists(r) && !FileIO.isDirectory(r) {
            throw FileError(path: r, operation: "use as the store", reason: "it is a file, not a directory (--store names a directory, created when missing)")
        }
        try FileIO.makeDirectory(r)
    }

    // MARK: Objects

    public func hasObject(_ d: Digest) -> Bool { FileIO.exists(lz4ObjectPath(d)) || FileIO.exists(rawObjectPath(d)) }

    /// Stores bytes (LZ4-compressed) under their digest; a no-op when already present.
    /// `private` objects (a user's file that others may not read) are readable by the
    /// owner only, and so are the files unpacked from them: the store never widens who may
    /// read a file's bytes.
    @discardableResult
    public func putObject(_ bytes: [UInt8], private isPrivate: Bool = false) throws -> Digest {
        let d = Digest.of(bytes)
        try putObject(bytes, digest: d, private: isPrivate)
        return d
    }

    func putObject(_ bytes: [UInt8], digest d: Digest, private isPrivate: Bool = false) throws {
        if hasObject(d) {
            if isPrivate { makeObjectPrivate(d) }  // already stored: this copy of the bytes is private
            return
        }
        try FileIO.writeAtomically(try LZ4Frame.compress(bytes), to: lz4ObjectPath(d), mode: isPrivate ? 0o400 : 0o444)
    }

    /// Narrows an object to its owner (a private file's bytes stored before as public).
    func makeObjectPrivate(_ d: Digest) {
        if let st = FileIO.status(objectPath(d)), st.permissions & 0o044 != 0 { chmod(objectPath(d), 0o400) }
    }

    /// Whether an object may be read by the owner only (see `putObject(_:private:)`).
    public func isPrivateObject(_ d: Digest) -> Bool {
        guard let st = FileIO.status(objectPath(d)) else { return false }
        return st.permissions & 0o044 == 0
    }

    /// Reads and verifies an object (a raw one whole: for a large file's bytes in memory; see
    /// `verifyObject` and `placeRawObject` for what need not hold them). A damaged object is
    /// reported, deleted, and never returned.
    public func object(_ d: Digest) throws(StoreError) -> [UInt8] {
        let path = objectPath(d)
        let stored: [UInt8]
        do { stored = try FileIO.read(path) } catch {
            throw StoreError(.missingObject, "object \(d.short) is missing from the store (\(path))", digest: d)
        }
        let bytes: [UInt8]
        do { bytes = path.hasSuffix(".raw") ? stored : try LZ4Frame.decompress(stored) } catch {
            quarantine(path)
            throw StoreError(.corruptObject, "object \(d.short) is corrupt (\(error)); it was removed and will be recomputed", digest: d)
        }
        guard Digest.of(bytes) == d else {
            quarantine(path)
            throw StoreError(.corruptObject, "object \(d.short) is corrupt (its content no longer matches its digest); it was removed and will be recomputed", digest: d)
        }
        return bytes
    }

    /// Moves a damaged object aside (kept for inspection under `corrupt/`, never read again).
    func quarantine(_ path: String) {
        let dest = "\(root)/corrupt/\(Path.lastComponent(path))-\(Int(Date().timeIntervalSince1970))"
        try? FileIO.makeDirectory("\(root)/corrupt")
        if rename(path, dest) != 0 { unlink(path) }
    }

    // MARK: Artifacts

    /// Stores every file under `directory` and the manifest that lists them. A symbolic link
    /// is stored as what it points to when that is inside `directory`; one that leads out of
    /// it is an error (a stage's output holds what the stage wrote, nothing from elsewhere).
    public func ingest(directory: String, kind: ArtifactKind) throws -> Digest {
        var files: [String: ArtifactManifest.Entry] = [:]
        let listed: [String]
        do { listed = try FileIO.listFiles(under: directory) } catch {
            let outside = FileIO.realPath(error.path).map { "it is a symbolic link to \($0), outside the output directory; copy the file instead" }
            throw FileError(path: error.path, operation: "store output", reason: error.reason.contains(", outside ") ? outside ?? error.reason : error.reason)
        }
        for rel in listed {
            let full = directory + "/" + rel
            let st = FileIO.status(full)
            if let st, st.size >= largeFileBytes {
                let stored = try putLargeFile(full, private: false)
                files[rel] = .init(digest: stored.digest, size: stored.size, executable: st.isExecutable)
                continue
            }
            let bytes = try FileIO.read(full)
            let d = try putObject(bytes)
            files[rel] = .init(digest: d, size: Int64(bytes.count), executable: st?.isExecutable ?? false)
        }
        let manifest = ArtifactManifest(kind: kind, files: files)
        try putObject(manifest.bytes, digest: manifest.digest)
        return manifest.digest
    }

    public func manifest(_ d: Digest) throws(StoreError) -> ArtifactManifest {
        let bytes = try object(d)
        let json: JSONValue
        do { json = try JSONParser.parse(bytes: bytes) } catch {
            throw StoreError(.badMetadata, "object \(d.short) is not an artifact manifest", digest: d)
        }
        return try ArtifactManifest(json: json)
    }

    /// One file of an artifact, read (and verified) straight from its object, without unpacking
    /// the rest; nil when the artifact has no such file.
    public func file(_ path: String, ofArtifact d: Digest) throws(StoreError) -> [UInt8]? {
        guard let entry = try manifest(d).files[path] else { return nil }
        return try object(entry.digest)
    }

    /// Every object an artifact consists of (its manifest and its files).
    public func objects(ofArtifact d: Digest) throws(StoreError) -> [Digest] {
        [d] + (try manifest(d)).files.values.map(\.digest)
    }

    // MARK: Action cache

    func actionPath(_ key: Digest) -> String { "\(root)/actions/\(key.hex.prefix(2))/\(key.hex).json" }

    public func action(_ key: Digest) -> ActionEntry? {
        guard let bytes = try? FileIO.read(actionPath(key)),
              let json = try? JSONParser.parse(bytes: bytes) else { return nil }
        return ActionEntry(json: json)
    }

    public func recordAction(_ entry: ActionEntry) throws {
        try FileIO.writeAtomically(entry.json.canonical, to: actionPath(entry.key))
    }

    public func removeAction(_ key: Digest) { unlink(actionPath(key)) }

    /// Stat fingerprints of an artifact's object files, recorded with the action so that a
    /// cache hit can be checked cheaply; see `checkIntact`.
    public func objectFingerprints(ofArtifact d: Digest) throws -> [Digest: FileIO.Stat] {
        var out: [Digest: FileIO.Stat] = [:]
        for o in try objects(ofArtifact: d) {
            if let st = FileIO.status(objectPath(o)) { out[o] = st }
        }
        return out
    }

    /// What is missing of a cached output (an object gone, or not of its recorded size), or
    /// nil when every object is there: a check by `stat` alone, for `plan` and `status`.
    public func objectsPresent(_ entry: ActionEntry) -> String? {
        for (d, recorded) in entry.objectStats {
            guard let now = FileIO.status(objectPath(d)) else { return "object \(d.short) of the cached output is missing" }
            if now.size != recorded.size { return "object \(d.short) of the cached output is truncated or changed" }
        }
        return nil
    }

    /// Whether a cached output can be trusted. Objects whose files still have the size, mtime
    /// and inode recorded when they were stored are trusted without reading them; any other
    /// object is read and verified in full (a damaged one is removed and reported).
    public func checkIntact(_ entry: ActionEntry, verifyAll: Bool = false) -> Result<Void, StoreError> {
        for (d, recorded) in entry.objectStats {
            let current = FileIO.status(objectPath(d))
            if current == nil {
                return .failure(StoreError(.missingObject, "object \(d.short) of the cached output is missing", digest: d))
            }
            if verifyAll || current!.size != recorded.size || current!.mtimeNanos != recorded.mtimeNanos || current!.inode != recorded.inode {
                do { try verifyObject(d) } catch { return .failure(error) }
            }
        }
        return .success(())
    }

    // MARK: Locks

    func keyLockPath(_ key: Digest) -> String { "\(root)/locks/\(key.hex.prefix(2))/\(key.hex).lock" }

    /// The lock that makes one process compute a key while others wait for its result; with
    /// `wait: false`, nil at once when another process holds it.
    public func lockKey(_ key: Digest, wait: Bool = true) throws(FileError) -> FileLock? {
        if wait { return try FileLock(path: keyLockPath(key)) }
        return try FileLock.tryLock(path: keyLockPath(key))
    }

    /// Whether some process is computing `key` now (holds its lock). Never blocks.
    public func isBeingComputed(_ key: Digest) -> Bool {
        guard FileIO.exists(keyLockPath(key)) else { return false }
        guard let probe = try? lockKey(key, wait: false) else { return true }
        probe.unlock()
        return false
    }

    /// Shared by runs, exclusive for `gc`, so that gc never deletes what a run is writing.
    public func lockStore(_ mode: FileLock.Mode, wait: Bool = true) throws(FileError) -> FileLock? {
        let path = "\(root)/locks/store.lock"
        if wait { return try FileLock(path: path, mode: mode) }
        return try FileLock.tryLock(path: path, mode: mode)
    }

    // MARK: Work areas

    /// The directory where a stage keeps journals, checkpoints and scratch until it succeeds.
    public func workDirectory(_ key: Digest) -> String { "\(root)/work/\(key.hex)" }

    /// Where the output of a key's program is kept after it succeeded (a `command` stage's
    /// `command.log`): beside the store's results, not in the artifact, whose digest it would
    /// otherwise change with every timestamp it prints.
    public func logPath(_ key: Digest) -> String { "\(root)/logs/\(key.hex).log" }

    /// Moves a finished stage's log out of its work area before the area is removed.
    func keepLog(of key: Digest) {
        let log = workDirectory(key) + "/command.log"
        guard FileIO.exists(log) else { return }
        try? FileIO.makeDirectory(root + "/logs")
        rename(log, logPath(key))
    }

    // MARK: Refs and run records

    func refPath(pipeline: String, stage: String) -> String { "\(root)/refs/\(pipeline)/\(stage).json" }

    public func ref(pipeline: String, stage: String) -> StageRef? {
        guard let bytes = try? FileIO.read(refPath(pipeline: pipeline, stage: stage)),
              let json = try? JSONParser.parse(bytes: bytes) else { return nil }
        return StageRef(json: json)
    }

    public func writeRef(_ ref: StageRef, pipeline: String, stage: String) throws {
        try FileIO.writeAtomically(ref.json.canonical, to: refPath(pipeline: pipeline, stage: stage), sync: false)
    }

    /// Ref files of `stage` (in any pipeline) that exist but cannot be read as a ref.
    public func damagedRefs(stage: String) -> [String] {
        let base = "\(root)/refs"
        return ((try? FileManager.default.contentsOfDirectory(atPath: base)) ?? []).sorted().compactMap { p in
            let path = refPath(pipeline: p, stage: stage)
            return FileIO.exists(path) && ref(pipeline: p, stage: stage) == nil ? path : nil
        }
    }

    /// All refs, as (pipeline, stage, ref).
    public func allRefs() -> [(pipeline: String, stage: String, ref: StageRef)] {
        var out: [(String, String, StageRef)] = []
        let base = "\(root)/refs"
        for p in ((try? FileManager.default.contentsOfDirectory(atPath: base)) ?? []).sorted() {
            for f in ((try? FileManager.default.contentsOfDirectory(atPath: "\(base)/\(p)")) ?? []).sorted() where f.hasSuffix(".json") {
                let stage = String(f.dropLast(5))
                if let r = ref(pipeline: p, stage: stage) { out.append((p, stage, r)) }
            }
        }
        return out.map { (pipeline: $0.0, stage: $0.1, ref: $0.2) }
    }

    public func writeRunRecord(_ record: JSONValue, id: String) throws {
        try FileIO.writeAtomically(record.canonical + "\n", to: "\(root)/runs/\(id).json", sync: false)
    }

    /// Run records, newest first.
    public func runRecordIDs() -> [String] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: "\(root)/runs")) ?? []
        return names.filter { $0.hasSuffix(".json") }.map { String($0.dropLast(5)) }.sorted(by: >)
    }

    public func runRecord(id: String) -> JSONValue? {
        guard let bytes = try? FileIO.read("\(root)/runs/\(id).json") else { return nil }
        return try? JSONParser.parse(bytes: bytes)
    }
}

extension Store {
    /// The artifact or object whose digest starts with `prefix` (at least 6 hex digits).
    public func resolveDigestPrefix(_ prefix: String) throws(StoreError) -> Digest? {
        let p = prefix.lowercased()
        guard p.count >= 6, p.allSatisfy({ $0.isHexDigit }) else { return nil }
        if let d = Digest(hex: p) { return hasObject(d) ? d : nil }
        let dir = "\(root)/objects/\(p.prefix(2))"
        let listed = (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []
        let names = Set(listed.filter { $0.hasPrefix(String(p.dropFirst(2))) && !$0.contains(".tmp-") }
            .map { $0.hasSuffix(".raw") ? String($0.dropLast(4)) : $0 }).sorted()
        if names.count > 1 { throw StoreError(.ambiguous, "digest prefix '\(prefix)' matches \(names.count) objects; give more digits") }
        return names.first.flatMap { Digest(hex: String(p.prefix(2)) + $0) }
    }
}
