import ArgumentParser
import Pipeline
import Stages

/// `haps-pipe rl-train`: the reference's joint RL (rl_batch.py) as one command, with its flags
/// in kebab case, run as a one-stage pipeline on the store (checkpointed every step; a killed
/// run resumes where it stopped).
struct RLTrainCommand: ParsableCommand {
    static var configuration: CommandConfiguration {
        CommandConfiguration(
        commandName: "rl-train",
        abstract: "Train the router and the LoRA parameter generators jointly by policy gradient (the reference's rl_batch.py).",
        discussion: """
            Per training question: route greedily, generate each chosen candidate's LoRA update \
            from the router's pooled state, sample the dialogue (T 1.0, top-p 0.9), reward F1 \
            (0 → -1), and step the router and the generators used. The candidates must be local \
            model directories (their gradients are needed; a server gives none). Every \
            --eval-interval questions the valid questions are routed, adapted and answered \
            greedily; the best valid F1 sum is kept. The result, written to --output-dir, is the \
            router (a model directory) with generators/, steps.jsonl, evals.jsonl and summary.txt; \
            in a pipeline, the `evaluate` stage takes it as an input and runs it live (docs/routing.md).

            Examples:
              haps-pipe rl-train --router-path router --model llama=models/Llama-3.2-1B-Instruct \\
                  --model qwen=models/Qwen2.5-0.5B-Instruct --train-data dataset/train.jsonl \\
                  --valid-data dataset/valid.jsonl --test-data dataset/test.jsonl --high-router-lr 1e-6 --output-dir joint
              haps-pipe rl-train --router-path router --model a=models/a --model b=models/b --train-data train.jsonl \\
                  --valid-data valid.jsonl --retriever lexical --alpha 0 --output-dir no-lora
            
            """ + "\n\n" + flags.help)
    }

    /// rl-train's parameters as flags; the reference's rl_batch.py spells them the same (kebab
    /// case) or names what this command takes as an input or a `--model`.
    static let flags = StageFlags(
        stageType: "rl-train", setByCommand: [("candidates", "--model"), ("retriever", "--retriever")],
        ignored: ["preset": "give the candidates with --model NAME=DIR and the router with --base-router-path",
                  "s-device": "the CPU engine runs every model (GPU placement is the torch engine's, docs/engine.md)",
                  "t-device": "the CPU engine runs every model (GPU placement is the torch engine's, docs/engine.md)",
                  "r-device": "the CPU engine runs every model (GPU placement is the torch engine's, docs/engine.md)",
                  "batch-route-bs": "evaluations route and generate every question in flight at once",
                  "batch-ab-bs": "evaluations route and generate every question in flight at once",
                  "dialogue-bs": "evaluations run every dialogue in flight at once, their calls batched"])

    @Option(name: [.customLong("router-path"), .customLong("base-router-path")],
            help: ArgumentHelp("The SFT router (haps-pipe sft-train's --output-dir).", valueName: "dir")) var routerPath: String
    @Option(parsing: .singleValue, help: ArgumentHelp("A candidate, as NAME=DIR (a local Llama/Qwen2/Mistral directory), candidate 0 first; repeatable.", valueName: "name=dir"))
    var model: [String] = []
    @Option(name: [.customLong("train-data"), .customLong("train-jsonl")],
            help: ArgumentHelp("Training questions (HotpotQA JSON Lines or JSON array).", valueName: "file")) var trainData: String
    @Option(name: [.customLong("valid-data"), .customLong("valid-jsonl")],
            help: ArgumentHelp("Valid questions: evaluation and early stopping.", valueName: "file")) var validData: String
    @Option(name: [.customLong("test-data"), .customLong("test-jsonl")],
            help: ArgumentHelp("Test questions, evaluated at each improvement.", valueName: "file")) var testData: String?
    @Option(help: ArgumentHelp("Retriever: 'lexical' (BM25 in process) or the URL of a /retrieve server.", valueName: "lexical|url")) var retriever: String = "http://127.0.0.1:2022/retrieve"
    @Option(help: ArgumentHelp("Seed of the generators' initialisation and the sampling (default: a spec's, \(PipelineSpec.defaultSeed)); the question order is the reference's.", valueName: "n"))
    var seed: Int?
    @Option(help: ArgumentHelp("Where to write the router and generators.", valueName: "dir")) var outputDir: String
    @OptionGroup var storeOptions: StoreOptions
    @Argument(parsing: .allUnrecognized, help: .hidden) var stageArguments: [String] = []

    func run() throws {
        do {
            let given = try Self.flags.given(stageArguments).params
            let candidates = try model.map { m -> (name: String, dir: String) in
                guard let eq = m.firstIndex(of: "="), eq != m.startIndex else { throw UsageError("--model '\(m)' is not NAME=DIR") }
                return (String(m[..<eq]), String(m[m.index(after: eq)...]))
            }
            guard candidates.count >= 1 else { throw UsageError("give the candidates with --model NAME=DIR (candidate 0 first)") }
            guard Set(candidates.map(\.name)).count == candidates.count else { throw UsageError("--model: a candidate name is given twice") }
            try requireExisting([("--router-path", routerPath), ("--train-data", trainData), ("--valid-data", validData), ("--test-data", testData)]
                                + candidates.map { ("--model \($0.name)", $0.dir) })
            let models = JSONValue.object(candidates.map { ($0.name, ["backend": "local", "path": .string($0.dir)]) })
            let retrieverJSON: JSONValue = retriever == "lexical" ? ["backend": "lexical"] : ["backend": "http", "url": .string(retriever)]
            var inputs: [(String, JSONValue)] = [("router", .string(routerPath)), ("train", .string(trainData)), ("valid", .string(validData))]
            if let testData { inputs.append(("test", .string(testData))) }
            let params: [(String, JSONValue)] = [("candidates", .array(candidates.map { .string($0.name) }))] + given
            let spec = try PipelineSpec.direct("rl-train", seed: seed, resources: ["models": models, "retriever": retrieverJSON],
                                               stages: [("rl_train", .object([("type", "rl-train"), ("inputs", .object(inputs)), ("params", .object(params))]))])
            let store = try storeOptions.open()
            let summary = try Executor(spec: spec, store: store, options: .tool, observer: ProgressDisplay()).run()
            guard let out = summary.result("rl_train")?.output else { throw summary.interrupted ? ExitCode(130) : ExitCode.failure }
            try store.copy(artifact: out, to: outputDir)
            print("wrote the router and generators to \(outputDir) (\(summary.result("rl_train")!.outcome.label)); "
                  + ((try? FileIO.readString(outputDir + "/summary.txt"))?.split(separator: "\n").last.map(String.init) ?? ""))
        } catch { throw ErrorOutput.fail(error) }
    }
}
