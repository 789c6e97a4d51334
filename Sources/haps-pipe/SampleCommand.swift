import ArgumentParser
import Pipeline
import Stages

/// `haps-pipe sample`: the reference's generate_baselines.py as one command, run as a one-stage
/// pipeline on the store (so it is journaled, resumable and memoised like any stage).
struct Sample: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sample",
        abstract: "Sample every question × role assignment against model servers (the reference's generate_baselines).",
        discussion: """
            Models are the preset's pair on the reference's ports (Llama 2024, Qwen 2025, Mistral 2026; \
            the retriever on 2022) unless --model-url says otherwise. Interrupted runs resume; calls \
            already made are replayed from the store.

            Examples:
              haps-pipe sample --data-type valid --preset llama_qwen --output baseline_valid.jsonl
              haps-pipe sample --questions my.jsonl --preset mistral_qwen --retriever lexical --budget 2 --output b.jsonl
            """)

    @Option(help: ArgumentHelp("Split to read from dataset/ (train, valid or test).", valueName: "split")) var dataType: String?
    @Option(help: ArgumentHelp("Questions file (HotpotQA JSON Lines or JSON array); instead of --data-type.", valueName: "file")) var questions: String?
    @Option(help: ArgumentHelp("Candidate pair: llama_qwen, mistral_qwen or llama_mistral.", valueName: "preset")) var preset: String = "llama_qwen"
    @Option(parsing: .singleValue, help: ArgumentHelp("A candidate's server, as NAME=URL (NAME: llama, qwen or mistral); repeatable.", valueName: "name=url")) var modelURL: [String] = []
    @Option(help: ArgumentHelp("Retriever: 'lexical' (BM25 in process) or the URL of a /retrieve server.", valueName: "lexical|url")) var retriever: String = "http://127.0.0.1:2022/retrieve"
    @Option(help: "Search steps per question.") var budget: Int = 3
    @Option(help: "Dialogues in flight (more than --concurrency: dialogues wait on retrieval and on each other's identical calls).") var workers: Int = 128
    @Option(help: "Requests in flight per server URL (the reference's 32 workers).") var concurrency: Int = 32
    @Option(help: ArgumentHelp("Where to write the baseline table (reference format).", valueName: "file")) var output: String
    @OptionGroup var storeOptions: StoreOptions

    static let presets: [String: [(String, String, Int)]] = [
        "llama_qwen": [("llama", "meta-llama/Llama-3.1-8B-Instruct", 2024), ("qwen", "Qwen/Qwen2.5-7B-Instruct", 2025)],
        "mistral_qwen": [("mistral", "mistralai/Mistral-7B-Instruct-v0.3", 2026), ("qwen", "Qwen/Qwen2.5-7B-Instruct", 2025)],
        "llama_mistral": [("llama", "meta-llama/Llama-3.1-8B-Instruct", 2024), ("mistral", "mistralai/Mistral-7B-Instruct-v0.3", 2026)],
    ]

    func run() throws {
        do {
            guard let pair = Sample.presets[preset] else {
                throw UsageError("unknown --preset '\(preset)'" + NearestName.hintOrChoices(preset, among: Sample.presets.keys.sorted()))
            }
            let file: String
            switch (questions, dataType) {
            case (let q?, nil): file = q
            case (nil, let split?): file = "dataset/\(split).jsonl"
            default: throw UsageError("give either --questions FILE or --data-type SPLIT")
            }
            var urls: [String: String] = [:]
            for m in modelURL {
                guard let eq = m.firstIndex(of: "=") else { throw UsageError("--model-url '\(m)' is not NAME=URL") }
                urls[String(m[..<eq])] = String(m[m.index(after: eq)...])
            }
            guard workers >= 1, concurrency >= 1 else { throw UsageError("--workers and --concurrency must be at least 1") }
            var models: [String: JSONValue] = [:]
            for (name, model, port) in pair {
                models[name] = ["backend": "openai", "url": .string(urls[name] ?? "http://127.0.0.1:\(port)/v1"), "model": .string(model),
                                "concurrency": .number(Double(concurrency))]
            }
            let retrieverJSON: JSONValue = retriever == "lexical" ? ["backend": "lexical"] : ["backend": "http", "url": .string(retriever)]
            let doc: JSONValue = [
                "name": .string("sample-\(preset)"),
                "resources": ["models": .object(models), "retriever": retrieverJSON],
                "stages": ["sample": ["type": "sample", "inputs": ["questions": .string(file)],
                                      "params": ["candidates": .array(pair.map { .string($0.0) }), "budget": .number(Double(budget)),
                                                 "workers": .number(Double(workers))]]],
            ]
            let spec = try PipelineSpec.parse(text: doc.pretty, file: "haps-pipe sample", registry: HAPSStages.registry)
            let store = try storeOptions.open()
            let display = ProgressDisplay()
            let summary = try Executor(spec: spec, store: store, options: RunOptions(), observer: display).run()
            guard let result = summary.result("sample"), let out = result.output else {
                // The progress display has shown why; only the exit status is left to give.
                throw summary.interrupted ? ExitCode(130) : ExitCode.failure
            }
            guard let baseline = try store.file("baseline.jsonl", ofArtifact: out) else {
                throw NotFoundError("the sample stage's output \(out.short) has no baseline.jsonl")
            }
            try FileIO.writeAtomically(baseline, to: output)
            print("wrote \(output) (\(summary.result("sample")!.outcome.label); transcripts: haps-pipe show \(spec.name)/sample)")
        } catch { throw ErrorOutput.fail(error) }
    }
}
