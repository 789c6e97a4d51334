import ArgumentParser
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
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
