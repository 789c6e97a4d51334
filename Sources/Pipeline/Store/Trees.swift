#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#endif

/// Unpacked artifacts (`trees/<digest>/`), the copies that stages read. They are read-only
/// (files 0444, or 0400 when their object is private; directories 0555), and each has a stamp (`trees/<digest>.stamp`: every file's
/// size, mtime and inode as unpacked), because permissions do not stop every writer (root
/// ignores them): a tree that no longer matches its stamp is never handed to a stage again,
/// and a stage that changed one of its inputs fails (`changedTree`). A large file's raw object
/// is hard-linked into the tree, not copied (LargeObjects.swift): a write to the tree's file is
/// a write to the object, which breaks the object's seal, so the object is rehashed (and
/// quarantined when damaged) before it is used again.
extension Store {
    func treePath(_ d: Digest) -> String { "\(root)/trees/\(d.hex)" }
    func treeStampPath(_ d: Digest) -> String { "\(root)/trees/\(d.hex).stamp" }

    /// Unpacks an artifact to `trees/<digest>/` (verifying every object) and returns the path.
    /// A tree already unpacked is reused when it still matches its stamp, else unpacked anew.
    public func materialize(_ d: Digest) throws -> String {
        let dest = treePath(d)
        // One unpacker of a tree at a time (stages and processes may share an input): the
        // tree and its stamp appear together.
        let lock = try treeLock(d)
        defer { lock.unlock() }
        if FileIO.isDirectory(dest) {
            if changedTree(d) == nil { return dest }
            removeTree(d)
        }
        let m = try manifest(d)
        let tmp = "\(root)/trees/.tmp-\(d.short)-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileIO.makeDirectory(tmp)
        defer { FileIO.removeTree(tmp) }
        for (rel, entry) in m.files {
            // Owner-only when the object is (a user's private file): never wider than the source.
            let mode: mode_t = (entry.executable ? 0o555 : 0o444) & (isPrivateObject(entry.digest) ? 0o500 : 0o555)
            if isRawObject(entry.digest) {
                try placeRawObject(entry.digest, at: tmp + "/" + rel, mode: mode, link: !entry.executable)
                continue
            }
            try FileIO.writeAtomically(try object(entry.digest), to: tmp + "/" + rel, mode: mode, sync: false)
        }
        let stamp = try stampOf(tmp, files: m.files.keys.sorted())
        FileIO.setDirectoriesReadOnly(tmp)
        try FileIO.writeAtomically(stamp.canonical, to: treeStampPath(d), sync: false)
        if rename(tmp, dest) != 0 { throw FileError(path: dest, operation: "create", errno: errno) }
        return dest
    }

    /// Checks an input tree after a stage ran; a changed one is removed (unpacked anew when
    /// next needed). Returns how it changed, or nil.
    public func checkTreeAfterUse(_ d: Digest) -> String? {
        guard let lock = try? treeLock(d) else { return changedTree(d) }
        defer { lock.unlock() }
        guard let change = changedTree(d) else { return nil }
        removeTree(d)
        return change
    }

    private func treeLock(_ d: Digest) throws -> FileLock {
        try FileLock(path: "\(root)/locks/trees/\(d.hex).lock")
    }

    /// How an unpacked tree differs from its stamp (a file added, removed or rewritten), or
    /// nil when it matches. A tree without a stamp counts as changed.
    public func changedTree(_ d: Digest) -> String? {
        let dir = treePath(d)
        guard let bytes = try? FileIO.read(treeStampPath(d)), let stamp = try? JSONParser.parse(bytes: bytes),
              let recorded = stamp.objectMembers else { return "it has no stamp" }
        guard let files = try? FileIO.listFiles(under: dir) else { return "it cannot be listed" }
        let expected = Set(recorded.map(\.key))
        if let extra = files.first(where: { !expected.contains($0) }) { return "'\(extra)' was added" }
        for (rel, fields) in recorded {
            guard let st = FileIO.status(dir + "/" + rel) else { return "'\(rel)' was removed" }
            let now: JSONValue = [.number(Double(st.size)), .number(Double(st.mtimeNanos)), .number(Double(st.inode))]
            if now != fields { return "'\(rel)' was changed" }
        }
        return nil
    }

    /// Deletes an unpacked tree and its stamp (it is unpacked again when next needed).
    public func removeTree(_ d: Digest) {
        unlink(treeStampPath(d))
        FileIO.removeTree(treePath(d))
    }

    private func stampOf(_ dir: String, files: [String]) throws -> JSONValue {
        var members: [(key: String, value: JSONValue)] = []
        for rel in files {
            guard let st = FileIO.status(dir + "/" + rel) else { throw FileError(path: dir + "/" + rel, operation: "stat", reason: "missing after unpacking") }
            members.append((rel, [.number(Double(st.size)), .number(Double(st.mtimeNanos)), .number(Double(st.inode))]))
        }
        return .object(members)
    }
}
