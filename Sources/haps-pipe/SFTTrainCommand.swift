import ArgumentParser
import Pipeline
import Stages

/// `haps-pipe sft-train`: the reference's router SFT (sft.py) as one command, run as a small
/// pipeline on the store (score the baseline tables, then `sft-train`), so that it is
/// checkpointed every step and resumes where a killed run stopped.
struct SFTTrainCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sft-train",
        abstract: "Train the high-level router on SFT data (the reference's sft.py); keeps the best valid epoch if it beats best fixed.",
        discussion: """
            The baselines are scored as `haps-pipe score` scores them; after each epoch the router \
            routes the valid (and train) questions greedily and the chosen actions are scored on \
            them. The kept router is written to --output-dir (a Hugging Face model directory with \
            router.json, epochs.jsonl, selection.json, summary.txt). Interrupted runs resume from \
            the last step's checkpoint.

            Examples:
              haps-pipe sft-train --sft-data sft.json --model-name-or-path models/Llama-3.2-1B-Instruct \\
                  --valid-baseline baseline_valid.jsonl --train-baseline baseline_train.jsonl --pair llama_qwen --output-dir router
              haps-pipe sft-train --sft-data sft.json --model-name-or-path models/tiny --valid-baseline v.jsonl \\
                  --num-train-epochs 3 --learning-rate 1e-3 --gradient-accumulation-steps 1 --output-dir router
            """)

    @Option(help: ArgumentHelp("The SFT rows (build-sft's sft.json).", valueName: "file")) var sftData: String
    @Option(help: ArgumentHelp("The router's backbone: a Hugging Face Llama/Qwen2/Mistral directory with tokenizer.json.", valueName: "dir")) var modelNameOrPath: String
    @Option(help: ArgumentHelp("Valid baseline table: epoch selection and the best-fixed rule.", valueName: "file")) var validBaseline: String
    @Option(help: ArgumentHelp("Train baseline table: the train sums per epoch.", valueName: "file")) var trainBaseline: String?
    @OptionGroup var candidateOptions: CandidateOptions
    @Option(help: "Epochs over the SFT rows.") var numTrainEpochs: Int = 10
    @Option(help: "Peak learning rate.") var learningRate: Double = 1e-5
    @Option(help: "Share of the steps spent warming up.") var warmupRatio: Double = 0.03
    @Option(help: "Schedule after warm-up: cosine, linear or constant.") var lrSchedulerType: String = "cosine"
    @Option(help: "Sequences per micro-batch.") var perDeviceTrainBatchSize: Int = 8
    @Option(help: "Micro-batches summed into one optimiser step.") var gradientAccumulationSteps: Int = 8
    @Option(help: "AdamW weight decay.") var weightDecay: Double = 0
    @Option(help: "Gradient clipping norm (0: none).") var maxGradNorm: Double = 1
    @Option(help: "New tokens of a routing reply.") var maxNewTokens: Int = 16
    @Option(help: ArgumentHelp("The Llama 3 date block's date (e.g. '26 Jul 2024'); none when unset.", valueName: "date")) var date: String?
    @Flag(help: "Route with a second BOS, as the reference's re-tokenised prompt has.") var doubleBOSWhenRouting = false
    @Option(help: ArgumentHelp("Router prompt directory (system.txt, user.txt); default: the project's wording.", valueName: "dir")) var prompts: String?
    @Option(help: "Seed (the SFT rows' order per epoch).") var seed: Int = 43
    @Option(help: ArgumentHelp("Where to write the router.", valueName: "dir")) var outputDir: String
    @OptionGroup var storeOptions: StoreOptions

    func run() throws {
        do {
            guard ScheduleKind(rawValue: lrSchedulerType) != nil else {
                throw UsageError("unknown --lr-scheduler-type '\(lrSchedulerType)'" + NearestName.hintOrChoices(lrSchedulerType, among: ScheduleKind.allCases.map(\.rawValue)))
            }
            try requireExisting([("--sft-data", sftData), ("--model-name-or-path", modelNameOrPath), ("--valid-baseline", validBaseline),
                                 ("--train-baseline", trainBaseline), ("--prompts", prompts)])
            var scoreParams: [(String, JSONValue)] = [("candidates", .number(Double(candidateOptions.space.candidates)))]
            if let pair = candidateOptions.pair { scoreParams.append(("pair", .string(pair))) }
            if let names = try candidateOptions.names(), candidateOptions.pair == nil {
                scoreParams.append(("model_name_to_id", .object(names.ids.sorted { $0.key < $1.key }.map { ($0.key, .number(Double($0.value))) })))
            }
            var stages: [(String, JSONValue)] = [("score_valid", ["type": "score", "inputs": ["samples": .string(validBaseline)], "params": .object(scoreParams)])]
            var inputs: [(String, JSONValue)] = [("sft", .string(sftData)), ("backbone", .string(modelNameOrPath)), ("valid_scores", "score_valid")]
            if let trainBaseline {
                stages.append(("score_train", ["type": "score", "inputs": ["samples": .string(trainBaseline)], "params": .object(scoreParams)]))
                inputs.append(("train_scores", "score_train"))
            }
            if let prompts { inputs.append(("prompts", .string(prompts))) }
            var params: [(String, JSONValue)] = [
                ("epochs", .number(Double(numTrainEpochs))), ("lr", .number(learningRate)), ("warmup_ratio", .number(warmupRatio)),
                ("schedule", .string(lrSchedulerType)), ("batch_size", .number(Double(perDeviceTrainBatchSize))),
                ("gradient_accumulation", .number(Double(gradientAccumulationSteps))), ("weight_decay", .number(weightDecay)),
                ("max_grad_norm", .number(maxGradNorm)), ("max_new_tokens", .number(Double(maxNewTokens))),
                ("double_bos_when_routing", .bool(doubleBOSWhenRouting)),
            ]
            if let date { params.append(("date", .string(date))) }
            if let pair = candidateOptions.pair { params.append(("pair", .string(pair))) }
            stages.append(("sft_train", .object([("type", "sft-train"), ("inputs", .object(inputs)), ("params", .object(params))])))
            let doc: JSONValue = .object([("name", "sft-train"), ("seed", .number(Double(seed))), ("stages", .object(stages))])
            let spec = try PipelineSpec.parse(text: doc.pretty, file: "haps-pipe sft-train", registry: HAPSStages.registry)
            let store = try storeOptions.open()
            let summary = try Executor(spec: spec, store: store, options: .tool, observer: ProgressDisplay()).run()
            guard let out = summary.result("sft_train")?.output else { throw summary.interrupted ? ExitCode(130) : ExitCode.failure }
            try store.copy(artifact: out, to: outputDir)
            print("wrote the router to \(outputDir) (\(summary.result("sft_train")!.outcome.label)); " + ((try? FileIO.readString(outputDir + "/summary.txt"))?.split(separator: "\n").last.map(String.init) ?? ""))
        } catch { throw ErrorOutput.fail(error) }
    }
}

