import ArgumentParser
import JSON
import LLM
import NN
import Pipeline
import Stages

/// `haps-pipe embed`: sentence embeddings with a local sentence-transformers directory.
struct Embed: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "embed",
        abstract: "Embed texts with a sentence-transformers model directory (all-MiniLM-L6-v2 and kin) on the CPU engine.",
        discussion: """
            FILE holds one JSON string per line; each output line is the JSON array of that text's \
            embedding, pooled and normalised as the model's sentence-transformers configuration \
            says (texts longer than its max_seq_length are truncated).

            Example:
              printf '"Paris is in France."\\n"Berlin"\\n' > texts.jsonl
              haps-pipe embed --model models/all-MiniLM-L6-v2 texts.jsonl
            """)

    @Option(help: ArgumentHelp("Model directory (config.json, model.safetensors, tokenizer.json or vocab.txt, modules.json).", valueName: "dir"))
    var model: String = "models/all-MiniLM-L6-v2"
    @Argument(help: ArgumentHelp("JSON Lines: one string per line.", valueName: "file")) var file: String
    @Option(help: "Texts per batch.") var batchSize: Int = 64
    @Option(help: "OpenBLAS threads (default: all cores).") var threads: Int?

    func run() throws {
        do {
            guard batchSize >= 1 else { throw UsageError("--batch-size must be at least 1") }
            if let threads { try BLAS.shared().threads = threads }
            var texts: [String] = []
            for (n, v) in try JSONLines.read(file) {
                guard let text = v.stringValue else { throw UsageError("\(file):\(n): expected a JSON string") }
                texts.append(text)
            }
            let encoder = try SentenceEncoder(directory: model)
            var start = 0
            while start < texts.count {
                let batch = Array(texts[start..<min(start + batchSize, texts.count)])
                var out = ""
                // Each value in Float's shortest round-trip form (valid JSON: no NaN or infinity can occur).
                for e in try encoder.embed(batch) { out += "[" + e.map { "\($0)" }.joined(separator: ",") + "]\n" }
                print(out, terminator: "")
                start += batchSize
            }
        } catch { throw ErrorOutput.fail(error) }
    }
}
