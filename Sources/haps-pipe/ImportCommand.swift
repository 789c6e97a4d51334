import ArgumentParser
import Pipeline
import Stages

/// `haps-pipe import FILE --output DIR`: routing data from elsewhere as a score table (the
/// `import` stage's work, without a store): what a table router, `evaluate` or `score` reads.
struct Import: ParsableCommand {
    static var configuration: CommandConfiguration {
        CommandConfiguration(
            commandName: "import",
            abstract: "Turn routing data (prompts × models: a score and a cost each) into a score table and its prompts.",
            discussion: """
                Layouts: long (a row per prompt × model: CSV with a header or JSON Lines, columns \
                prompt or id, model, score, and optionally cost and type) and routerbench \
                (RouterBench's wide table: a row per prompt, a score column named by each model, a \
                MODEL|total_cost column beside it, eval_name as the type). Every bad row is \
                reported with file:line and its column. Writes scores.jsonl, summary.json, \
                summary.txt (one role, model: an action per model) and questions.jsonl into the \
                output directory. In a pipeline, the `import` stage does the same (docs/data.md).

                Examples:
                  haps-pipe import routing.csv --output imported
                  haps-pipe import routerbench.csv --layout routerbench --output imported
                  haps-pipe import runs.jsonl --prompt-column input --score-column correct --cost-column usd --output imported
                """ + "\n\n" + flags.help)
    }

    /// The import stage's parameters as flags.
    static let flags = StageFlags(stageType: "import")

    @Option(help: ArgumentHelp("The directory to write the score table into (made if missing).", valueName: "dir")) var output: String
    @Flag(help: "Print the summary as JSON.") var json = false
    @Argument(parsing: .allUnrecognized, help: ArgumentHelp("The table (CSV or JSON Lines), and any stage parameters (--layout, --prompt-column, ...).", valueName: "file"))
    var arguments: [String] = []

    func run() throws {
        do {
            let (given, operands) = try Self.flags.given(arguments, positionals: 1)
            guard let file = operands.first else { throw UsageError("give the table to import (CSV or JSON Lines)") }
            let params = try ImportStage.Params.from(.object(given))
            try FileIO.makeDirectory(output)
            let t = try ImportStage.write(params.importer, data: file, to: output)
            print(json ? t.summaryJSON.pretty : t.summaryText, terminator: json ? "\n" : "")
            FileIO.writeStderr("wrote \(output)/scores.jsonl, summary.json, summary.txt, questions.jsonl\n")
        } catch { throw ErrorOutput.fail(error) }
    }
}
