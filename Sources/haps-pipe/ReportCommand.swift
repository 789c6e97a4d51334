import ArgumentParser
import Pipeline
import Stages

/// `haps-pipe report RESULT --html FILE`: an evaluation's page (what `haps-pipe ui` shows) as
/// one self-contained file to share: the rows with their intervals, the cost–quality plane,
/// every question with each row's answer, and the dialogues the rows chose.
struct Report: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report",
        abstract: "Write an evaluation as one self-contained HTML page (rows, intervals, cost–quality plane, questions and dialogues).",
        discussion: """
            The page needs no server and fetches nothing: its script and data are inside it. The \
            sampled dialogues keep each turn's reply, not its prompt (`haps-pipe ui` shows both).

            Examples:
              haps-pipe report evaluate --html evaluation.html
              haps-pipe report quickstart/evaluate --html - > evaluation.html
            """)

    @Argument(help: ArgumentHelp("An evaluate result: STAGE, PIPELINE/STAGE or a digest.", valueName: "result")) var result: String
    @Option(help: ArgumentHelp("The file to write ('-': standard output).", valueName: "file")) var html: String
    @OptionGroup var storeOptions: StoreOptions

    func run() throws {
        do {
            let page = try StoreBrowser(store: try storeOptions.open()).reportPage(result)
            if html == "-" { print(page, terminator: ""); return }
            try FileIO.writeAtomically(page, to: html)
            FileIO.writeStderr("wrote \(html) (\(page.utf8.count / 1024) KiB)\n")
        } catch let f as StoreBrowser.Failure {
            throw ErrorOutput.fail(f.notFound ? NotFoundError(f.description) as any Error : UsageError(f.description))
        } catch { throw ErrorOutput.fail(error) }
    }
}
