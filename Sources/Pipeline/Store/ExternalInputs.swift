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
    /// Hashes a user's input file or directory where it lies (it is not copied into the
    /// store) and records its manifest. File digests are cached by (path, size, mtime, inode),
    /// so a no-op rerun stats the file instead of reading it.
    public func importExternal(path: String, kind: ArtifactKind) throws -> Digest {
        var files: [String: ArtifactManifest.Entry] = [:]
        guard let st = FileIO.status(path) else {
            throw FileError(path: path, operation: "read input", reason: "no such file or directory")
        }
        if st.isDirectory {
            for rel in try FileIO.listFiles(under: path) {
                let full = path + "/" + rel
                if let s = FileIO.status(full) { files[rel] = try fileEntry(full, stat: s) }
            }
        } else {
            files[Path.lastComponent(path)] = try fileEntry(path, stat: st)
        }
        let manifest = ArtifactManifest(kind: kind, files: files)
        let d = manifest.digest
        if !hasObject(d) { try putObject(manifest.bytes, digest: d) }
        return d
    }

    private func fileEntry(_ path: String, stat st: FileIO.Stat) throws -> ArtifactManifest.Entry {
        let absolute = path.hasPrefix("/") ? path : FileManager.default.currentDirectoryPath + "/" + path
        let cachePath = "\(root)/filestat/\(Digest.of(string: absolute).hex.prefix(32))"
        if let bytes = try? FileIO.read(cachePath), let json = try? JSONParser.parse(bytes: bytes),
           json["path"]?.stringValue == absolute,
           json["size"]?.doubleValue == Double(st.size), json["mtime"]?.doubleValue == Double(st.mtimeNanos),
           json["inode"]?.doubleValue == Double(st.inode),
           let d = json["digest"]?.stringValue.flatMap(Digest.init(hex:)) {
            return .init(digest: d, size: st.size, executable: st.isExecutable)
        }
        let d = try digestOfFile(path)
        let record: JSONValue = .object(["path": .string(absolute), "size": .number(Double(st.size)),
                                         "mtime": .number(Double(st.mtimeNanos)), "inode": .number(Double(st.inode)),
                                         "digest": .string(d.hex)])
        try? FileIO.writeAtomically(record.canonical, to: cachePath, sync: false)
        return .init(digest: d, size: st.size, executable: st.isExecutable)
    }

    /// SHA-256 of a file, read in 4 MiB chunks.
    public func digestOfFile(_ path: String) throws -> Digest {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        if fd < 0 { throw FileError(path: path, operation: "open", errno: errno) }
        defer { close(fd) }
        var b = DigestBuilder()
        var chunk = [UInt8](repeating: 0, count: 4 << 20)
        while true {
            let n = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress!, $0.count) }
            if n < 0 { if errno == EINTR { continue }; throw FileError(path: path, operation: "read", errno: errno) }
            if n == 0 { break }
            chunk.withUnsafeBytes { b.update(UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
        }
        return b.finalize()
    }
}
