#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#endif
public import LLM
public import NN
public import Pipeline

/// The `sft-train` stage: the reference's router warm-up (`sft.py`). A causal LM (the
/// backbone) learns to answer the routing prompt with the SFT row's `{"teacher": t,"student":
/// s}` (loss on the target only). After every epoch it routes the train and valid questions
/// greedily and scores the chosen actions on the score tables; it keeps the epoch with the best
/// valid F1 sum, and only if that beats the best fixed action's valid sum (the reference's
/// rule) — otherwise the router it outputs routes every question to that action, and says so.
/// Output kind `router`: the model directory with `router.json`, `epochs.jsonl`,
/// `losses.jsonl`, `selection.json` and `summary.txt`.
public struct SFTTrainStage: StageType {
    public struct Params: StageParameters {
        /// The training's settings, as `RouterSFT` reads them.
        var training = RouterSFTSettings()
        @Param("new tokens of a routing reply") var max_new_tokens = 16
        @Param("candidate names shown in the prompt, by id (default: the pair's model names, else 'candidate N')") var candidate_names: [String]? = nil
        @Param("candidate preset whose model names the prompt shows: " + CandidateNames.presets.keys.sorted().joined(separator: ", ")) var pair: String? = nil
        @Param("the Llama 3 date block's date, e.g. '26 Jul 2024' (the reference's prompts carry one); none when unset") var date: String? = nil
        @Param("route with a second BOS, as the reference's re-tokenised prompt has") var double_bos_when_routing = false
        @Param("steps between checkpoints") var checkpoint_every = 1
        /// The engine that trains the backbone: engine, device, dtype.
        var engine = EngineParams()
        public init() {}
    }

    public static let name = "sft-train"
    public static let version = 2
    public static let summary = "The router's SFT warm-up: a causal LM learns the best assignment per question; the best valid epoch is kept if it beats best fixed."

    public static func ports(_ p: Params) -> StagePorts {
        StagePorts(inputs: [InputPort("sft", kind: .sftData, help: "the SFT rows (build-sft)"),
                            InputPort("backbone", kind: .model, help: "the router's causal LM (a Hugging Face Llama/Qwen2/Mistral directory with tokenizer.json)"),
                            InputPort("valid_scores", kind: .scoreTable, help: "valid's score table: epoch selection and the best-fixed rule"),
                            InputPort("train_scores", kind: .scoreTable, optional: true, help: "train's score table: the train sums per epoch"),
                            InputPort("prompts", kind: .any, optional: true, help: "a router prompt directory (system.txt, user.txt; default: the project's wording)")],
                   output: .router)
    }

    public static func validate(_ p: Params, at path: JSONPath) -> [SpecProblem] {
        var problems = p.training.validate(at: path) + p.engine.validate(at: path)
        for (name, value) in [("max_new_tokens", p.max_new_tokens), ("checkpoint_every", p.checkpoint_every)] where value < 1 {
            problems.append(SpecProblem(path.appending(name), "expected a positive integer, found \(value)"))
        }
        if let pair = p.pair, CandidateNames.presets[pair] == nil {
            problems.append(SpecProblem(path.appending("pair"), "unknown pair '\(pair)'" + NearestName.hintOrChoices(pair, among: CandidateNames.presets.keys.sorted())))
        }
        return problems
    }

    public static func preflight(_ p: Params, resources: [String: JSONValue], inputs: Set<String>) -> [String] { p.engine.preflight() }

    /// From `selection.json`: the kept epoch's valid mean F1 and whether one was kept.
    public static func figures(directory: String) -> [Figure] {
        guard let text = try? FileIO.readString(directory + "/selection.json"), let j = try? JSONParser.parse(text) else { return [] }
        return [("valid_f1", j["valid_f1_mean"]?.doubleValue), ("kept_epoch", j["epoch"]?.doubleValue ?? 0)].compactMap { n, v in v.map { Figure(n, $0) } }
    }

    /// One SFT row: the question and the target text.
    struct Row { var question: String; var output: String }

    static func rows(_ path: String, space: ActionSpace) throws -> [Row] {
        let text = try JSONLines.text(path)
        let json: JSONValue
        do { json = try JSONParser.parse(text) } catch {
            throw DataError(file: path, line: error.location.line, "invalid JSON: \(error.message)")
        }
        guard let items = json.arrayValue else { throw DataError(file: path, line: nil, "expected a JSON array of SFT rows") }
        var out: [Row] = []
        for (i, item) in items.enumerated() {
            guard let q = item["question"]?.stringValue, let o = item["output"]?.stringValue else {
                throw DataError(file: path, line: nil, "row \(i): needs string 'question' and 'output'")
            }
            guard let parsed = try? JSONParser.parse(o), space.roles.allSatisfy({ (parsed[$0]?.intValue).map { (0..<space.candidates).contains($0) } ?? false }) else {
                throw DataError(file: path, line: nil, "row \(i): output \(o) is not an assignment of \(space.roles.joined(separator: ", ")) to candidates 0..<\(space.candidates)")
            }
            out.append(Row(question: q, output: o))
        }
        return out
    }

    public static func run(_ p: Params, _ context: StageContext) throws {
        let valid = try ScoreMatrix(directory: context.inputs["valid_scores"]!.directory)
        let train = try context.inputs["train_scores"].map { try ScoreMatrix(directory: $0.directory) }
        let space = valid.space
        let sft = context.inputs["sft"]!  // build-sft's artifact (sft.json, stats.txt), or a user's one file
        let data = try rows(sft.fileNames.contains("sft.json") ? sft.path(of: "sft.json") : sft.path, space: space)
        var settings = DecoderRouter.Settings(candidates: p.candidate_names ?? p.pair.flatMap { CandidateNames.presets[$0] }
                                                  ?? (0..<space.candidates).map { "candidate \($0)" })
        guard settings.candidates.count == space.candidates else {
            throw RouterError("candidate_names has \(settings.candidates.count) names; the score tables have \(space.candidates) candidates")
        }
        settings.prompt = try context.inputs["prompts"].map { try RouterPrompt.load(directory: $0.directory) } ?? .standard
        settings.date = p.date; settings.doubleBOSWhenRouting = p.double_bos_when_routing; settings.maxNewTokens = p.max_new_tokens
        try BLAS.shared().threads = context.threads
        let engine = try p.engine.makeEngine(context)
        let backbone = try DecoderRouter(directory: context.inputs["backbone"]!.directory, engine: engine, space: space, settings: settings)
        let examples = try data.map { try backbone.example(question: $0.question, output: $0.output) }

        if data.isEmpty {  // nothing to learn (build-sft kept no question): the reference would keep no checkpoint
            context.log("warning: the SFT data has no rows (build-sft kept no question whose best F1 reaches min_max_score); no training")
        }
        let longest = try space.indices.map { try backbone.targetTokens(space.output(for: space.assignment(of: $0))).count }.max() ?? 0
        if longest > p.max_new_tokens {
            context.log("warning: with this tokenizer a reply takes up to \(longest) tokens, more than max_new_tokens \(p.max_new_tokens): routing replies will be cut and read as action 0; raise max_new_tokens")
        }
        let trainer = RouterSFT(router: backbone, settings: p.training, rows: data.count)
        let perStep = p.training.rowsPerStep, stepsPerEpoch = p.training.stepsPerEpoch(rows: data.count)
        let steps = stepsPerEpoch * p.training.epochs  // 0 without rows
        let bestFixed = valid.bestFixedAction, bestFixedSum = valid.f1.reduce(0) { $0 + $1[bestFixed] }
        context.log("\(data.count) SFT rows, \(stepsPerEpoch) steps an epoch of \(perStep) (\(p.training.batch_size) × \(p.training.gradient_accumulation)), \(steps) steps; "
                    + "best fixed on valid: action \(bestFixed), F1 sum \(Format.fixed(bestFixedSum, 2))")

        let best = TrainingLoop.keptWeights(context)  // before the journals: a damaged one clears them
        let epochs = try context.journal("epochs")
        let streams = BatchStreams(seed: context.seed)
        let losses = try TrainingLoop(steps: steps, checkpointEvery: p.checkpoint_every).run(trainer, context, status: { step in
            "epoch \(min(p.training.epochs, step / stepsPerEpoch + 1))/\(p.training.epochs)"
        }) { step in
            let epoch = step / stepsPerEpoch, within = step % stepsPerEpoch
            let order = streams.permutation(epoch: epoch, count: data.count)
            let items = order[(within * perStep)..<min(data.count, (within + 1) * perStep)].map { examples[$0] }
            let loss = try trainer.train(items.map(\.tokens), targetsFrom: items.map(\.targetsFrom))
            if within == stepsPerEpoch - 1, !epochs.contains("e\(epoch)") {
                let record = try evaluateEpoch(epoch + 1, router: backbone, valid: valid, train: train, context: context)
                let previousBest = (0..<epoch).compactMap { epochs.json("e\($0)")?["valid_f1_sum"]?.doubleValue }.max() ?? -.infinity
                let sum = record["valid_f1_sum"]!.doubleValue!
                if sum > previousBest && sum > bestFixedSum {  // the reference's rule: best valid, and better than best fixed
                    try best.replace { try engine.saveModel(backbone.model, to: $0) }
                }
                try epochs.append(key: "e\(epoch)", json: record)
            }
            return .init(loss: Double(loss), tokens: items.reduce(0) { $0 + $1.tokens.count })
        }
        try writeOutput(p, context: context, backbone: backbone, epochs: (0..<p.training.epochs).compactMap { epochs.json("e\($0)") },
                        best: best, bestFixed: bestFixed, bestFixedSum: bestFixedSum, valid: valid, losses: losses)
    }

    /// Routes valid (and train) greedily with the epoch's weights and scores the choices.
    static func evaluateEpoch(_ epoch: Int, router: DecoderRouter, valid: ScoreMatrix, train: ScoreMatrix?, context: StageContext) throws -> JSONValue {
        context.progress.setStatus("epoch \(epoch): routing \(valid.count) valid questions")
        let (validActions, replies, unparsed) = try router.actionsAndReplies(valid.questions)
        let validSum = zip(validActions, valid.f1).reduce(0.0) { $0 + $1.1[$1.0] }
        if unparsed > 0 {
            context.log("epoch \(epoch): \(unparsed) of \(valid.count) valid replies name no assignment (routed to action 0), e.g. \(replies.first { DecoderRouter.parsed($0, space: valid.space) == nil }!.debugDescription)")
        }
        var record: [(String, JSONValue)] = [("epoch", .number(Double(epoch))), ("valid_f1_sum", .number(validSum)),
                                             ("valid_f1_mean", .number(validSum / Double(max(1, valid.count)))),
                                             ("valid_predictions", .array(valid.space.indices.map { a in .number(Double(validActions.filter { $0 == a }.count)) })),
                                             ("valid_unparsed", .number(Double(unparsed)))]
        if let train {
            context.progress.setStatus("epoch \(epoch): routing \(train.count) train questions")
            let actions = try router.actions(train.questions)
            let sum = zip(actions, train.f1).reduce(0.0) { $0 + $1.1[$1.0] }
            record += [("train_f1_sum", .number(sum)), ("train_f1_mean", .number(sum / Double(max(1, train.count)))),
                       ("train_predictions", .array(train.space.indices.map { a in .number(Double(actions.filter { $0 == a }.count)) }))]
        }
        context.log("epoch \(epoch): valid F1 sum \(Format.fixed(validSum, 2))" + (record.first { $0.0 == "train_f1_sum" }.map { ", train \(Format.fixed($0.1.doubleValue!, 2))" } ?? ""))
        return .object(record)
    }

    static func writeOutput(_ p: Params, context: StageContext, backbone: DecoderRouter, epochs: [JSONValue],
                            best keptWeights: SealedDirectory, bestFixed: Int, bestFixedSum: Double, valid: ScoreMatrix, losses: LossLog) throws {
        let out = context.outputDirectory
        let kept = keptWeights.exists
        if kept { _ = try keptWeights.verifiedFiles() }  // a damaged one is an error here (the next run rebuilds it), never used
        let best = epochs.filter { $0["valid_f1_sum"]!.doubleValue! > bestFixedSum }.max { $0["valid_f1_sum"]!.doubleValue! < $1["valid_f1_sum"]!.doubleValue! }
        if kept { try backbone.engine.loadWeights(backbone.model, directory: keptWeights.path) }
        let router = kept ? backbone : try backbone.with(fallbackAction: bestFixed)
        try router.save(directory: out)
        try FileIO.writeAtomically(epochs.map { $0.canonical + "\n" }.joined(), to: out + "/epochs.jsonl")
        try FileIO.writeAtomically(losses.jsonLines, to: out + "/losses.jsonl")
        let n = Double(max(1, valid.count))
        let selection: JSONValue = .object([
            ("kept", .bool(kept)), ("epoch", kept ? best?["epoch"] ?? .null : .null),
            ("valid_f1_sum", kept ? best?["valid_f1_sum"] ?? .null : .number(bestFixedSum)),
            ("valid_f1_mean", .number((kept ? best?["valid_f1_sum"]?.doubleValue ?? 0 : bestFixedSum) / n)),
            ("best_fixed_action", .number(Double(bestFixed))), ("best_fixed_valid_f1_sum", .number(bestFixedSum)),
            ("rule", "keep the epoch with the best valid F1 sum, only if it beats the best fixed action's"),
        ])
        try FileIO.writeAtomically(selection.pretty + "\n", to: out + "/selection.json")
        var lines = ["epoch  valid F1 sum  valid F1 mean  train F1 mean  valid predictions per action"]
        for e in epochs {
            lines.append("\(String(e["epoch"]!.intValue!).leftPadding(5))  \(Format.fixed(e["valid_f1_sum"]!.doubleValue!, 2).leftPadding(12))  "
                         + "\(Format.fixed(e["valid_f1_mean"]!.doubleValue!, 4).leftPadding(13))  "
                         + (e["train_f1_mean"]?.doubleValue.map { Format.fixed($0, 4) } ?? "-").leftPadding(13)
                         + "  " + (e["valid_predictions"]?.arrayValue ?? []).map { String($0.intValue ?? 0) }.joined(separator: " "))
        }
        let verdict = kept
            ? "kept epoch \(best?["epoch"]?.intValue ?? 0): valid F1 sum \(Format.fixed(best?["valid_f1_sum"]?.doubleValue ?? 0, 2)) beats best fixed (action \(bestFixed), \(Format.fixed(bestFixedSum, 2)))"
            : "no epoch beat the best fixed action on valid (action \(bestFixed), F1 sum \(Format.fixed(bestFixedSum, 2))): the router routes every question to it, as the reference keeps no checkpoint"
        lines.append(verdict)
        try FileIO.writeAtomically(lines.joined(separator: "\n") + "\n", to: out + "/summary.txt")
        context.log(verdict)
    }
}
