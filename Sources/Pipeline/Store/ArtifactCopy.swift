#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#endif

/// Copies of artifacts out of the store, for `export` and for the training commands that hand
/// their result to the user as a directory of their own (a copy is writable and independent of
/// the store, whose files are read-only and may be collected).
extension Store {
    /// Writes a plain, writable copy of an artifact's files under `directory` (what the
    /// training commands hand the user as their output directory), straight from the verified
    /// objects: nothing is written to the store, so a read-only store exports too. A private
    /// object's file (a user's file others could not read) is copied readable by its owner only.
    public func copy(artifact: Digest, to directory: String) throws {
        let manifest = try manifest(artifact)
        try FileIO.makeDirectory(directory)
        for (name, entry) in manifest.files.sorted(by: { $0.key < $1.key }) {
            let mode: mode_t = (entry.executable ? 0o755 : 0o644) & (isPrivateObject(entry.digest) ? 0o700 : 0o777)
            if isRawObject(entry.digest) {  // a large file: streamed, never held in memory
                try FileIO.makeDirectory(Path.directory(directory + "/" + name))
                try copyRawObject(entry.digest, from: try soundRawObject(entry.digest), to: directory + "/" + name, mode: mode, sync: true)
                continue
            }
            try FileIO.writeAtomically(try object(entry.digest), to: directory + "/" + name, mode: mode)
        }
    }

    /// The store's root when `path` (existing or not; relative to the working directory)
    /// lies inside the store, else nil; links on the way are resolved.
    public func containing(_ path: String) -> String? {
        var existing = path.hasPrefix("/") ? path : FileManager.default.currentDirectoryPath + "/" + path
        var rest: [String] = []
        while FileIO.realPath(existing) == nil && existing != "/" {
            rest.insert(Path.lastComponent(existing), at: 0)
            existing = Path.directory(existing)
        }
        let real = ([FileIO.realPath(existing) ?? existing] + rest).joined(separator: "/")
        let store = FileIO.realPath(root) ?? root
        return real == store || real.hasPrefix(store + "/") ? root : nil
    }
}
