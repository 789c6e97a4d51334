import ArgumentParser
import Pipeline
import Stages

/// `haps-pipe rl-train`: the reference's joint RL (rl_batch.py) as one command, with its flags
/// in kebab case, run as a one-stage pipeline on the store (checkpointed every step; a killed
/// run resumes where it stopped).
struct RLTrainCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
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
            """)

    @Option(help: ArgumentHelp("The SFT router (haps-pipe sft-train's --output-dir).", valueName: "dir")) var routerPath: String
    @Option(parsing: .singleValue, help: ArgumentHelp("A candidate, as NAME=DIR (a local Llama/Qwen2/Mistral directory), candidate 0 first; repeatable.", valueName: "name=dir"))
    var model: [String] = []
    @Option(help: ArgumentHelp("Training questions (HotpotQA JSON Lines or JSON array).", valueName: "file")) var trainData: String
    @Option(help: ArgumentHelp("Valid questions: evaluation and early stopping.", valueName: "file")) var validData: String
    @Option(help: ArgumentHelp("Test questions, evaluated at each improvement.", valueName: "file")) var testData: String?
    @Option(help: ArgumentHelp("Retriever: 'lexical' (BM25 in process) or the URL of a /retrieve server.", valueName: "lexical|url")) var retriever: String = "http://127.0.0.1:2022/retrieve"
    @Option(help: "The built-in prompt set: standard or embedded.") var prompts: String = "standard"
    @Option(help: "Search steps per question.") var budget: Int = Dialogue.defaultBudget
    @Option(help: "The router's learning rate (the script's default; the README's command passes 1e-6).") var highRouterLR: Double = 5e-6
    @Option(help: "The generators' learning rate.") var lowRouterLR: Double = 1e-5
    @Option(help: "The LoRA update's scale (0: no low-level router).") var alpha: Double = 0.01
    @Option(help: "Epochs over the training questions.") var epochs: Int = 3
    @Option(help: "Training questions between evaluations on valid.") var evalInterval: Int = 30
    @Option(help: "Evaluations without improvement before stopping.") var earlyPatienceEvals: Int = 4
    @Option(help: "Candidate layers (from the last) whose o_proj gets the update.") var layers: Int = 1
    @Option(help: "The update's rank.") var loraR: Int = 8
    @Option(help: "Longest sampled reply in tokens.") var maxTokens: Int = 256
    @Flag(help: "No gradient through the pooled state into the router backbone (the no-sharing ablation).") var noBackboneGradient = false
    @Flag(help: "Keep the router's weights fixed.") var routerFrozen = false
    @Flag(help: "Round the router's weights to bfloat16 after each update, as the reference's bf16 router.") var routerBF16 = false
    @Option(help: "Subtract the mean of the last N rewards from the reward (0: none, as the reference).") var baselineWindow: Int = 0
    @Option(help: "Dialogues sampled per question (1: the reference).") var samples: Int = 1
    @Flag(help: "With --samples > 1: each reward less the mean of the other samples'.") var groupBaseline = false
    @Option(help: "Seed (question order is the reference's; this seeds sampling).") var seed: Int = 43
    @Option(help: ArgumentHelp("Where to write the router and generators.", valueName: "dir")) var outputDir: String
    @OptionGroup var storeOptions: StoreOptions

    func run() throws {
        do {
            let candidates = try model.map { m -> (name: String, dir: String) in
                guard let eq = m.firstIndex(of: "="), eq != m.startIndex else { throw UsageError("--model '\(m)' is not NAME=DIR") }
                return (String(m[..<eq]), String(m[m.index(after: eq)...]))
            }
            guard candidates.count >= 1 else { throw UsageError("give the candidates with --model NAME=DIR (candidate 0 first)") }
            guard Set(candidates.map(\.name)).count == candidates.count else { throw UsageError("--model: a candidate name is given twice") }
            try requireExisting([("--router-path", routerPath), ("--train-data", trainData), ("--valid-data", validData), ("--test-data", testData)]
                                + candidates.map { ("--model \($0.name)", $0.dir) })
            guard SampleStage.BuiltinPrompts(rawValue: prompts) != nil else {
                throw UsageError("unknown --prompts '\(prompts)'" + NearestName.hintOrChoices(prompts, among: SampleStage.BuiltinPrompts.allCases.map(\.rawValue)))
            }
            let models = JSONValue.object(candidates.map { ($0.name, ["backend": "local", "path": .string($0.dir)]) })
            let retrieverJSON: JSONValue = retriever == "lexical" ? ["backend": "lexical"] : ["backend": "http", "url": .string(retriever)]
            var inputs: [(String, JSONValue)] = [("router", .string(routerPath)), ("train", .string(trainData)), ("valid", .string(validData))]
            if let testData { inputs.append(("test", .string(testData))) }
            let number = { (x: Double) in JSONValue.number(x) }
            let params: [(String, JSONValue)] = [
                ("candidates", .array(candidates.map { .string($0.name) })), ("prompts", .string(prompts)), ("budget", number(Double(budget))),
                ("high_router_lr", number(highRouterLR)), ("low_router_lr", number(lowRouterLR)), ("alpha", number(alpha)),
                ("epochs", number(Double(epochs))), ("eval_interval", number(Double(evalInterval))),
                ("early_patience_evals", number(Double(earlyPatienceEvals))), ("layers", number(Double(layers))), ("lora_r", number(Double(loraR))),
                ("max_tokens", number(Double(maxTokens))), ("backbone_gradient", .bool(!noBackboneGradient)), ("router_frozen", .bool(routerFrozen)),
                ("router_bf16", .bool(routerBF16)), ("baseline_window", number(Double(baselineWindow))), ("samples", number(Double(samples))),
                ("group_baseline", .bool(groupBaseline)),
            ]
            let doc: JSONValue = .object([
                ("name", "rl-train"), ("seed", number(Double(seed))), ("resources", ["models": models, "retriever": retrieverJSON]),
                ("stages", ["rl_train": .object([("type", "rl-train"), ("inputs", .object(inputs)), ("params", .object(params))])]),
            ])
            let spec = try PipelineSpec.parse(text: doc.pretty, file: "haps-pipe rl-train", registry: HAPSStages.registry)
            let store = try storeOptions.open()
            let summary = try Executor(spec: spec, store: store, options: .tool, observer: ProgressDisplay()).run()
            guard let out = summary.result("rl_train")?.output else { throw summary.interrupted ? ExitCode(130) : ExitCode.failure }
            try store.copy(artifact: out, to: outputDir)
            print("wrote the router and generators to \(outputDir) (\(summary.result("rl_train")!.outcome.label)); "
                  + ((try? FileIO.readString(outputDir + "/summary.txt"))?.split(separator: "\n").last.map(String.init) ?? ""))
        } catch { throw ErrorOutput.fail(error) }
    }
}
