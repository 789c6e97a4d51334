import ArgumentParser
import Pipeline
import Stages

/// `haps-pipe sample`: the reference's generate_baselines.py as one command, run as a one-stage
/// pipeline on the store (so it is journaled, resumable and memoised like any stage).
struct Sample: ParsableCommand {
    static var configuration: CommandConfiguration {
        CommandConfiguration(
        commandName: "sample",
        abstract: "Sample every question × role assignment against model servers (the reference's generate_baselines).",
        discussion: """
            Models are the preset's pair on the reference's ports (Llama 2024, Qwen 2025, Mistral 2026; \
            the retriever on 2022) unless --model-url says otherwise. Interrupted runs resume; calls \
            already made are replayed from the store.

            --protocol haps talks to the reference's own model servers (POST / with messages and \
            config); --prompts DIR reads a prompt set, in the reference's layout \
            (DIR/prompt/{student,teacher}/prompt{1,2}.txt, the fixed sentences in DIR/sentences.json) \
            or the project's (docs/sampling.md).

            Examples:
              haps-pipe sample --data-type valid --preset llama_qwen --output baseline_valid.jsonl
              haps-pipe sample --questions my.jsonl --preset mistral_qwen --retriever lexical --budget 2 --output b.jsonl
              haps-pipe sample --data-type valid --preset llama_qwen --protocol haps --prompts ../HAPS --output baseline.jsonl
              haps-pipe sample --data-type test --protocol qwen=haps --model-url qwen=http://127.0.0.1:2025 --output b.jsonl
            """ + "\n\n" + flags.help)
    }

    /// The sample stage's parameters as flags.
    static let flags = StageFlags(stageType: "sample", setByCommand: [("candidates", "--preset"), ("retriever", "--retriever"), ("prompts", "--prompts")])

    @Option(help: ArgumentHelp("Split to read from dataset/ (train, valid or test).", valueName: "split")) var dataType: String?
    @Option(help: ArgumentHelp("Questions file (HotpotQA JSON Lines or JSON array); instead of --data-type.", valueName: "file")) var questions: String?
    @Option(help: ArgumentHelp("Candidate pair: " + ReferenceModels.pairs.keys.sorted().joined(separator: ", ") + ".", valueName: "preset")) var preset: String = "llama_qwen"
    @Option(parsing: .singleValue, help: ArgumentHelp("A candidate's server, as NAME=URL (NAME: llama, qwen or mistral); repeatable.", valueName: "name=url")) var modelURL: [String] = []
    @Option(help: ArgumentHelp("Retriever: 'lexical' (BM25 in process) or the URL of a /retrieve server.", valueName: "lexical|url")) var retriever: String = "http://127.0.0.1:2022/retrieve"
    @Option(parsing: .singleValue, help: ArgumentHelp("The servers' protocol: openai (OpenAI-compatible, as vLLM; default) or haps (the reference's model servers); PROTOCOL for every model, NAME=PROTOCOL for one; repeatable.", valueName: "protocol|name=protocol"))
    var `protocol`: [String] = []
    @Option(help: ArgumentHelp("Prompt set: a directory (the reference's layout or the project's), or a built-in set (standard, embedded); default: standard.", valueName: "dir|set"))
    var prompts: String?
    @Option(help: "Requests in flight per server URL (the reference's 32 workers).") var concurrency: Int = 32
    @Option(help: ArgumentHelp("Where to write the baseline table (reference format).", valueName: "file")) var output: String
    @Option(help: ArgumentHelp("Seed of sampled calls, with --temperature above 0 (default: a spec's, \(PipelineSpec.defaultSeed)).", valueName: "n")) var seed: Int?
    @OptionGroup var storeOptions: StoreOptions
    @Argument(parsing: .allUnrecognized, help: .hidden) var stageArguments: [String] = []

    /// `--protocol` values → protocol per model name (openai unless said otherwise).
    static func protocols(_ values: [String], names: [String]) throws -> [String: String] {
        var out: [String: String] = [:]
        for v in values {
            let parts = v.split(separator: "=", maxSplits: 1).map(String.init)
            let (targets, p) = parts.count == 2 ? ([parts[0]], parts[1]) : (names, parts[0])
            guard ["openai", "haps"].contains(p) else {
                throw UsageError("unknown --protocol '\(p)'" + NearestName.hintOrChoices(p, among: ["openai", "haps"]))
            }
            for t in targets {
                guard names.contains(t) else { throw UsageError("--protocol '\(v)': no model '\(t)' in this preset" + NearestName.hintOrChoices(t, among: names)) }
                out[t] = p
            }
        }
        return out
    }

    func run() throws {
        do {
            guard let keys = ReferenceModels.pairs[preset] else {
                throw UsageError("unknown --preset '\(preset)'" + NearestName.hintOrChoices(preset, among: ReferenceModels.pairs.keys.sorted()))
            }
            let pair = keys.map { ($0, ReferenceModels.all[$0]!) }
            let file: String
            switch (questions, dataType) {
            case (let q?, nil): file = q
            case (nil, let split?):
                guard ["train", "valid", "test"].contains(split) else {
                    throw UsageError("unknown --data-type '\(split)'" + NearestName.hintOrChoices(split, among: ["train", "valid", "test"]))
                }
                file = "dataset/\(split).jsonl"
            default: throw UsageError("give either --questions FILE or --data-type SPLIT")
            }
            let builtin = prompts.flatMap { BuiltinPrompts(rawValue: $0) }
            let promptsDirectory = builtin == nil ? prompts : nil
            try requireExisting([(questions == nil ? "--data-type \(dataType!) reads" : "--questions", file), ("--prompts", promptsDirectory)])
            let given = try Self.flags.given(stageArguments).params
            var urls: [String: String] = [:]
            for m in modelURL {
                guard let eq = m.firstIndex(of: "=") else { throw UsageError("--model-url '\(m)' is not NAME=URL") }
                urls[String(m[..<eq])] = String(m[m.index(after: eq)...])
            }
            guard concurrency >= 1 else { throw UsageError("--concurrency must be at least 1") }
            let protocols = try Sample.protocols(`protocol`, names: pair.map(\.0))
            var models: [String: JSONValue] = [:]
            for (name, model) in pair {
                guard let url = urls[name] ?? model.port.map({ protocols[name] == "haps" ? "http://127.0.0.1:\($0)/" : "http://127.0.0.1:\($0)/v1" }) else {
                    throw UsageError("the reference serves no \(name) (\(model.id)) on a fixed port: give its server with --model-url \(name)=URL")
                }
                // The reference's servers answer POST / on the port; OpenAI-compatible ones under /v1.
                models[name] = ["backend": .string(protocols[name] == "haps" ? "haps" : "openai"), "url": .string(url),
                                "model": .string(model.id), "concurrency": .number(Double(concurrency)),
                                // The rows name a candidate as the reference does: "Llama-3.1-8B-Instruct".
                                "name": .string(model.name)]
            }
            let retrieverJSON: JSONValue = retriever == "lexical" ? ["backend": "lexical"] : ["backend": "http", "url": .string(retriever)]
            var inputs: [(String, JSONValue)] = [("questions", .string(file))]
            if let promptsDirectory { inputs.append(("prompts", .string(promptsDirectory))) }
            var params: [(String, JSONValue)] = [("candidates", .array(pair.map { .string($0.0) }))]
            if let builtin { params.append(("prompts", .string(builtin.rawValue))) }
            let spec = try PipelineSpec.direct("sample", name: "sample-\(preset)", seed: seed, resources: ["models": .object(models), "retriever": retrieverJSON],
                                               stages: [("sample", .object([("type", "sample"), ("inputs", .object(inputs)), ("params", .object(params + given))]))])
            let store = try storeOptions.open()
            let display = ProgressDisplay()
            let summary = try Executor(spec: spec, store: store, options: .tool, observer: display).run()
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
