import ArgumentParser
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#endif
import Pipeline

/// `haps-pipe export TARGET DIR`: a plain copy of an artifact's files, to use outside the store
/// (a trained candidate for `haps-pipe generate --model`, a table for a paper).
struct Export: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export",
        abstract: "Copy an artifact's files out of the store into a directory of your own.",
        discussion: """
            TARGET is a stage's latest result (STAGE or PIPELINE/STAGE) or an artifact digest. \
            The copy is writable and independent of the store (`show TARGET --path` gives the \
            store's own read-only files instead).

            Examples:
              haps-pipe export agent_a models/agent-a && haps-pipe generate --model models/agent-a --prompt "Q: ..."
              haps-pipe export quickstart/evaluate results/
            """)

    @Argument(help: ArgumentHelp("STAGE, PIPELINE/STAGE or an artifact digest.", valueName: "target")) var target: String
    @Argument(help: ArgumentHelp("Where to copy the files (created; must be empty if it exists).", valueName: "dir")) var directory: String
    @Option(help: ArgumentHelp("Only look in this pipeline's results.", valueName: "name")) var pipeline: String?
    @OptionGroup var storeOptions: StoreOptions

    func run() throws {
        do {
            let store = try storeOptions.open()
            if let inside = store.containing(directory) {
                throw UsageError("\(directory) is inside the store (\(inside)); export copies a result out of the store: give a directory outside it")
            }
            let digest = try RefLookup.artifact(target, pipeline: pipeline, in: store)
            if FileIO.isDirectory(directory), !((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).isEmpty {
                throw UsageError("\(directory) exists and is not empty; give a new or empty directory")
            }
            try store.copy(artifact: digest, to: directory)
            let files = try store.manifest(digest).files.count
            FileIO.writeStderr("copied \(files) file\(files == 1 ? "" : "s") of \(digest.short) to \(directory)\n")
        } catch { throw ErrorOutput.fail(error) }
    }
}

extension Store {
    /// Writes a plain, writable copy of an artifact's files under `directory` (what the
    /// training commands hand the user as their output directory), straight from the verified
    /// objects: nothing is written to the store, so a read-only store exports too. A private
    /// object's file (a user's file others could not read) is copied readable by its owner only.
    func copy(artifact: Digest, to directory: String) throws {
        let manifest = try manifest(artifact)
        try FileIO.makeDirectory(directory)
        for (name, entry) in manifest.files.sorted(by: { $0.key < $1.key }) {
            let mode: mode_t = (entry.executable ? 0o755 : 0o644) & (isPrivateObject(entry.digest) ? 0o700 : 0o777)
            try FileIO.writeAtomically(try object(entry.digest), to: directory + "/" + name, mode: mode)
        }
    }

    /// The store's root when `path` (existing or not) lies inside the store, else nil; links
    /// on the way are resolved.
    func containing(_ path: String) -> String? {
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
