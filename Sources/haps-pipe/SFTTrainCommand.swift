import ArgumentParser
import Pipeline
import Stages

/// `haps-pipe sft-train`: the reference's router SFT (sft.py) as one command, run as a small
/// pipeline on the store (score the baseline tables, then `sft-train`), so that it is
/// checkpointed every step and resumes where a killed run stopped.
struct SFTTrainCommand: ParsableCommand {
    static var configuration: CommandConfiguration {
        CommandConfiguration(
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
            """ + "\n\n" + flags.help)
    }

    /// sft-train's parameters as flags, also under the reference's sft.py names (--bsz,
    /// --grad-accum) and transformers' (--num-train-epochs, --learning-rate, ...).
    static let flags = StageFlags(
        stageType: "sft-train", setByCommand: [("pair", "--pair")],
        aliases: ["bsz": "batch_size", "grad-accum": "gradient_accumulation",
                  "num-train-epochs": "epochs", "learning-rate": "lr", "lr-scheduler-type": "schedule",
                  "per-device-train-batch-size": "batch_size", "gradient-accumulation-steps": "gradient_accumulation"],
        ignored: ["eval-bs": "each epoch's routing evaluation batches every question"])

    @Option(name: [.customLong("sft-data"), .customLong("sft-json")], help: ArgumentHelp("The SFT rows (build-sft's sft.json).", valueName: "file")) var sftData: String
    @Option(help: ArgumentHelp("The router's backbone: a Hugging Face Llama/Qwen2/Mistral directory with tokenizer.json.", valueName: "dir")) var modelNameOrPath: String
    @Option(name: [.customLong("valid-baseline"), .customLong("valid-bsl-jsonl")],
            help: ArgumentHelp("Valid baseline table: epoch selection and the best-fixed rule.", valueName: "file")) var validBaseline: String
    @Option(name: [.customLong("train-baseline"), .customLong("train-bsl-jsonl")],
            help: ArgumentHelp("Train baseline table: the train sums per epoch.", valueName: "file")) var trainBaseline: String?
    @OptionGroup var candidateOptions: CandidateOptions
    @Option(help: ArgumentHelp("Router prompt directory (system.txt, user.txt); default: the project's wording.", valueName: "dir")) var prompts: String?
    @Option(help: ArgumentHelp("Seed of the SFT rows' order per epoch (default: a spec's, \(PipelineSpec.defaultSeed)).", valueName: "n")) var seed: Int?
    @Option(help: ArgumentHelp("Where to write the router.", valueName: "dir")) var outputDir: String
    @OptionGroup var storeOptions: StoreOptions
    @Argument(parsing: .allUnrecognized, help: .hidden) var stageArguments: [String] = []

    func run() throws {
        do {
            let given = try Self.flags.given(stageArguments).params
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
            var params = given
            if let pair = candidateOptions.pair { params.append(("pair", .string(pair))) }
            stages.append(("sft_train", .object([("type", "sft-train"), ("inputs", .object(inputs)), ("params", .object(params))])))
            let spec = try PipelineSpec.direct("sft-train", seed: seed, stages: stages)
            let store = try storeOptions.open()
            let summary = try Executor(spec: spec, store: store, options: .tool, observer: ProgressDisplay()).run()
            guard let out = summary.result("sft_train")?.output else { throw summary.interrupted ? ExitCode(130) : ExitCode.failure }
            try store.copy(artifact: out, to: outputDir)
            print("wrote the router to \(outputDir) (\(summary.result("sft_train")!.outcome.label)); " + ((try? FileIO.readString(outputDir + "/summary.txt"))?.split(separator: "\n").last.map(String.init) ?? ""))
        } catch { throw ErrorOutput.fail(error) }
    }
}

