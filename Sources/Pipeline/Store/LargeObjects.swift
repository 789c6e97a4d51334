#if canImport(Glibc)
import Glibc
#endif

/// Large files (model weights, at least `Store.largeFileThreshold` bytes) are stored as one
/// plain, uncompressed copy, `objects/ab/cdef….raw`, written a buffer at a time as it is hashed,
/// and unpacked into trees as hard links to that copy: so a 16 GB model costs 16 GB of store
/// and one pass over its bytes, not a compressed copy plus an unpacked one (docs/store.md).
///
/// A raw object is read-only (0444, or 0400 for a user's private file) and **sealed**: its
/// mtime is set to `rawObjectSeal` when it is stored. A write to it, through the object or
/// through a tree's link to it, moves the mtime, so a raw object whose mtime is not the seal is
/// rehashed before it is used again (and quarantined when its bytes no longer match).
extension Store {
    /// Files of at least this many bytes are stored raw (64 MiB): below it the LZ4 objects'
    /// compression and in-memory handling cost nothing worth avoiding.
    public static let largeFileThreshold: Int64 = 64 << 20

    /// The mtime a raw object carries while it is known to hold its digest's bytes
    /// (2000-01-01T00:00:00Z: no write sets a file's mtime to it).
    static let rawObjectSeal = timespec(tv_sec: 946_684_800, tv_nsec: 0)

    func lz4ObjectPath(_ d: Digest) -> String {
        let h = d.hex
        return "\(root)/objects/\(h.prefix(2))/\(h.dropFirst(2))"
    }

    func rawObjectPath(_ d: Digest) -> String { lz4ObjectPath(d) + ".raw" }

    /// The path of an object as it is stored (raw or LZ4); the LZ4 path when it is missing.
    func objectPath(_ d: Digest) -> String {
        let lz4 = lz4ObjectPath(d)
        if FileIO.exists(lz4) { return lz4 }
        let raw = lz4 + ".raw"
        return FileIO.exists(raw) ? raw : lz4
    }

    /// Whether an object is stored raw (a large file), not as an LZ4 frame.
    public func isRawObject(_ d: Digest) -> Bool {
        !FileIO.exists(lz4ObjectPath(d)) && FileIO.exists(rawObjectPath(d))
    }

    /// Whether a raw object's mtime is still its seal (nothing wrote to it since it was stored
    /// or last verified).
    func isSealed(_ st: FileIO.Stat) -> Bool {
        st.mtimeNanos == Int64(Store.rawObjectSeal.tv_sec) * 1_000_000_000 + Int64(Store.rawObjectSeal.tv_nsec)
    }

    /// Stores a large file as a raw object: copied (`FileStream.copy`), then the copy hashed (the
    /// bytes hashed are the bytes stored); when the digest is already stored the copy is
    /// dropped. Returns the digest and size of what was stored.
    func putLargeFile(_ path: String, private isPrivate: Bool) throws -> FileStream.Summary {
        let h = UInt64.random(in: 0...UInt64.max)
        let tmp = "\(root)/objects/.tmp-\(getpid())-\(h)"
        try FileIO.makeDirectory("\(root)/objects")
        let fd = open(tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, isPrivate ? 0o400 : 0o444)
        if fd < 0 { throw FileError(path: tmp, operation: "create", errno: errno) }
        defer { unlink(tmp) }  // after the rename below, a no-op
        let summary: FileStream.Summary
        do {
            defer { close(fd) }
            summary = try FileStream.copy(from: path, to: fd, destination: tmp)
            var times = [Store.rawObjectSeal, Store.rawObjectSeal]
            if futimens(fd, &times) != 0 { throw FileError(path: tmp, operation: "set the seal (mtime) of", errno: errno) }
            if fsync(fd) != 0 { throw FileError(path: tmp, operation: "fsync", errno: errno) }
        }
        let d = summary.digest
        if hasObject(d) {
            if isPrivate { makeObjectPrivate(d) }
            return summary
        }
        let dest = rawObjectPath(d)
        try FileIO.makeDirectory(Path.directory(dest))
        if rename(tmp, dest) != 0 { throw FileError(path: dest, operation: "rename into", errno: errno) }
        return summary
    }

    /// Rehashes a raw object (a buffer at a time) and seals it again when its bytes match its
    /// digest; a damaged one is quarantined and reported.
    func verifyRawObject(_ d: Digest) throws(StoreError) {
        let path = rawObjectPath(d)
        let summary: FileStream.Summary
        do { summary = try FileStream.hash(path) } catch {
            if !FileIO.exists(path) { throw StoreError(.missingObject, "object \(d.short) is missing from the store (\(path))", digest: d) }
            throw StoreError(.io, "cannot verify object \(d.short): \(error)", digest: d)
        }
        guard summary.digest == d else {
            quarantine(path)
            throw StoreError(.corruptObject, "object \(d.short) is corrupt (its content no longer matches its digest: the file, or a tree's link to it, was written to); it was removed and will be recomputed", digest: d)
        }
        var times = [Store.rawObjectSeal, Store.rawObjectSeal]
        _ = utimensat(AT_FDCWD, path, &times, 0)  // a read-only store stays unsealed: verified on each use
    }

    /// A raw object that is fit to use: sealed, or rehashed now and found intact. Returns its path.
    func soundRawObject(_ d: Digest) throws(StoreError) -> String {
        let path = rawObjectPath(d)
        guard let st = FileIO.status(path) else {
            throw StoreError(.missingObject, "object \(d.short) is missing from the store (\(path))", digest: d)
        }
        if !isSealed(st) { try verifyRawObject(d) }
        return path
    }

    /// Reads and verifies any object without holding a raw one in memory (`checkIntact`).
    public func verifyObject(_ d: Digest) throws(StoreError) {
        if isRawObject(d) { try verifyRawObject(d) } else { _ = try object(d) }
    }

    /// Whether an object is stored and, for a raw one, sound (see `soundRawObject`); a damaged
    /// raw object is quarantined, so the caller stores the bytes anew.
    func hasSoundObject(_ d: Digest) -> Bool {
        guard isRawObject(d) else { return hasObject(d) }
        return (try? soundRawObject(d)) != nil
    }

    /// Puts a raw object's file at `dest` (in a tree being unpacked): a hard link to the object
    /// (no second copy), else a reflink, else a verified copy (another file system, or an
    /// executable entry: a link would share the object's mode).
    func placeRawObject(_ d: Digest, at dest: String, mode: mode_t, link allowLink: Bool) throws {
        let source = try soundRawObject(d)
        try FileIO.makeDirectory(Path.directory(dest))
        if allowLink && link(source, dest) == 0 { return }
        if FileStream.clone(source, to: dest, mode: mode) { return }
        try copyRawObject(d, from: source, to: dest, mode: mode, sync: false)
    }

    /// A stand-alone copy of a raw object at `dest`, hashed as it is copied: a copy of damaged
    /// bytes is removed and the object quarantined.
    func copyRawObject(_ d: Digest, from source: String, to dest: String, mode: mode_t, sync: Bool) throws {
        let tmp = "\(dest).tmp-\(getpid())-\(UInt64.random(in: 0...UInt64.max))"
        let fd = open(tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, mode)
        if fd < 0 { throw FileError(path: tmp, operation: "create", errno: errno) }
        defer { unlink(tmp) }
        do {
            defer { close(fd) }
            let summary = try FileStream.copy(from: source, to: fd, destination: tmp)
            if summary.digest != d {
                quarantine(source)
                throw StoreError(.corruptObject, "object \(d.short) is corrupt (its content no longer matches its digest); it was removed and will be recomputed", digest: d)
            }
            if sync && fsync(fd) != 0 { throw FileError(path: tmp, operation: "fsync", errno: errno) }
        }
        if rename(tmp, dest) != 0 { throw FileError(path: dest, operation: "rename into", errno: errno) }
    }
}
