#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Dispatch
#if canImport(Glibc)
import Glibc
#endif

extension Store {
    /// Snapshots a user's input file or directory into the store (each file's bytes as an
    /// object, and the manifest that lists them), so that a stage reads exactly the bytes its
    /// key was computed from, even if the user's file changes while it runs. File digests are
    /// cached by (path, size, mtime, ctime, inode), so a no-op rerun stats the file instead of
    /// reading it; `rehash` reads every file again (`run --verify`). `snapshot: false` only
    /// computes the digest (what `plan` needs), storing nothing. Links in a directory are
    /// followed only within it (`FileIO.listFiles`); a file others may not read is stored
    /// readable by its owner only. A large file (`largeFileBytes`) is hashed and stored a
    /// buffer at a time, as a raw object (LargeObjects.swift), never read whole.
    public func importExternal(path: String, kind: ArtifactKind, snapshot: Bool = true, rehash: Bool = false) throws -> Digest {
        var files: [String: ArtifactManifest.Entry] = [:]
        guard let st = FileIO.status(path) else {
            throw FileError(path: path, operation: "read input", reason: "no such file or directory")
        }
        if st.isDirectory {
            for rel in try FileIO.listFiles(under: path) {
                let full = path + "/" + rel
                if let s = FileIO.status(full) { files[rel] = try fileEntry(full, stat: s, snapshot: snapshot, rehash: rehash) }
            }
        } else {
            files[Path.lastComponent(path)] = try fileEntry(path, stat: st, snapshot: snapshot, rehash: rehash)
        }
        let manifest = ArtifactManifest(kind: kind, files: files)
        let d = manifest.digest
        if snapshot && !hasObject(d) { try putObject(manifest.bytes, digest: d) }
        return d
    }

    private func fileEntry(_ path: String, stat st: FileIO.Stat, snapshot: Bool, rehash: Bool) throws -> ArtifactManifest.Entry {
        let absolute = path.hasPrefix("/") ? path : FileManager.default.currentDirectoryPath + "/" + path
        let cachePath = "\(root)/filestat/\(Digest.of(string: absolute).hex.prefix(32))"
        let isPrivate = st.permissions & 0o004 == 0  // others may not read it (0600, 0640, ...)
        if !rehash, let bytes = try? FileIO.read(cachePath), let json = try? JSONParser.parse(bytes: bytes),
           json["path"]?.stringValue == absolute,
           json["size"]?.doubleValue == Double(st.size), json["mtime"]?.doubleValue == Double(st.mtimeNanos),
           json["ctime"]?.doubleValue == Double(st.ctimeNanos), json["inode"]?.doubleValue == Double(st.inode),
           let d = json["digest"]?.stringValue.flatMap(Digest.init(hex:)), !snapshot || hasSoundObject(d) {
            if snapshot && isPrivate { makeObjectPrivate(d) }
            return .init(digest: d, size: st.size, executable: st.isExecutable)
        }
        // One read: the bytes hashed are the bytes stored.
        let d: Digest, size: Int64
        if st.size >= largeFileBytes {
            let read = snapshot ? try putLargeFile(path, private: isPrivate) : try FileStream.hash(path)
            (d, size) = (read.digest, read.size)
        } else {
            let bytes = try FileIO.read(path)
            d = snapshot ? try putObject(bytes, private: isPrivate) : Digest.of(bytes)
            size = Int64(bytes.count)
        }
        let record: JSONValue = .object(["path": .string(absolute), "size": .number(Double(st.size)),
                                         "mtime": .number(Double(st.mtimeNanos)), "ctime": .number(Double(st.ctimeNanos)),
                                         "inode": .number(Double(st.inode)), "digest": .string(d.hex)])
        try? FileIO.writeAtomically(record.canonical, to: cachePath, sync: false)
        return .init(digest: d, size: size, executable: st.isExecutable)
    }

    /// Whether the input check `check` passed on the content `digest` (`InputCheck`).
    public func inputCheckPassed(_ check: String, on digest: Digest) -> Bool {
        FileIO.exists(inputCheckPath(check, digest))
    }

    public func recordInputCheckPassed(_ check: String, on digest: Digest) {
        try? FileIO.makeDirectory(root + "/checked")
        try? FileIO.writeAtomically(check + " " + digest.hex + "\n", to: inputCheckPath(check, digest), sync: false)
    }

    private func inputCheckPath(_ check: String, _ digest: Digest) -> String {
        "\(root)/checked/\(Digest.of(string: check + "\u{0}" + digest.hex).hex.prefix(32))"
    }
}
