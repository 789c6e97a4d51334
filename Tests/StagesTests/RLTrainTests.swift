import Foundation
import XCTest
@testable import LLM
import JSON
import NN
@testable import Pipeline
@testable import Stages

/// Two tiny random local candidates (a, b), a tiny decoder router (router/) and four train and
/// two valid questions of the repository's dataset, in `dir`.
func makeTinyHAPS(_ dir: String) throws {
    func tiny(_ name: String, seed: UInt64) throws {
        let config = DecoderConfig(family: .llama, vocabSize: 1200, hiddenSize: 16, intermediateSize: 32, layers: 2, heads: 4, kvHeads: 2,
                                   bosTokenID: 0, eosTokenIDs: [1])
        try FileIO.makeDirectory(dir + "/" + name)
        try DecoderModel.randomlyInitialised(config, seed: seed, std: 0.2).save(directory: dir + "/" + name)
        try FileIO.writeAtomically(try FileIO.read(SFTTrainTests.tokenizer), to: dir + "/" + name + "/tokenizer.json")
    }
    try tiny("a", seed: 1); try tiny("b", seed: 2); try tiny("backbone", seed: 3)
    let router = try DecoderRouter(directory: dir + "/backbone", engine: CPUEngine(), space: ActionSpace(), settings: .init(candidates: ["a", "b"]))
    try FileIO.makeDirectory(dir + "/router")
    try router.save(directory: dir + "/router")
    let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
    // Four training questions; two valid ones, a bridge and a comparison (the updates are measured by type).
    let train = try FileIO.readString(root + "/dataset/train.jsonl").split(separator: "\n").prefix(4)
    try FileIO.writeAtomically(train.joined(separator: "\n") + "\n", to: dir + "/train.jsonl")
    let valid = try FileIO.readString(root + "/dataset/valid.jsonl").split(separator: "\n")
    let typed = try ["bridge", "comparison"].map { type in
        try XCTUnwrap(valid.first { (try? JSONParser.parse(String($0)))?["type"]?.stringValue == type }, "a \(type) question in dataset/valid.jsonl")
    }
    try FileIO.writeAtomically(typed.joined(separator: "\n") + "\n", to: dir + "/valid.jsonl")
}

/// `rl-train` on tiny random models (a router and two local candidates with the engine's test
/// tokenizer): it trains, evaluates on valid every `eval_interval` questions, writes the kept
/// router and generators, and a run killed at its first checkpoint resumes to the same output.
final class RLTrainTests: XCTestCase {
    func spec(_ dir: String, _ extra: String = "", evalInterval: Int = 2, overrides: [String] = []) throws -> PipelineSpec {
        if !FileIO.exists(dir + "/router") { try makeTinyHAPS(dir) }
        return try PipelineSpec.parse(text: """
            {"name": "r", "resources": {"models": {"a": {"backend": "local", "path": "a"}, "b": {"backend": "local", "path": "b"}},
                                        "retriever": {"backend": "lexical"}},
             "stages": {"rl": {"type": "rl-train", "inputs": {"router": "router", "train": "train.jsonl", "valid": "valid.jsonl"},
               "params": {"candidates": ["a", "b"], "budget": 1, "epochs": 1, "eval_interval": \(evalInterval), "max_tokens": 6,
                          "high_router_lr": 0.001, "low_router_lr": 0.001, "alpha": 0.5, "lora_r": 2\(extra)}}}}
            """, file: "r.json", registry: HAPSStages.registry, overrides: overrides, baseDirectory: dir)
    }

    func testTrainsEvaluatesAndResumesToTheSameOutput() throws {
        let dir = try makeTempDir(self, "rl")
        let spec = try spec(dir)
        let (run, out) = try runAndUnpack(spec, stage: "rl", storeAt: dir + "/a-store")
        let steps = try jsonLines(out + "/steps.jsonl")
        XCTAssertEqual(steps.count, 4)
        XCTAssertEqual(steps.map { $0["question"]!.intValue! }.sorted(), [0, 1, 2, 3], "every training question once in an epoch")
        XCTAssertEqual(steps.map { $0["question"]!.intValue! }, JointRLOrder.questions(count: 4, epoch: 0))
        XCTAssertEqual(FileIO.lines(try FileIO.readString(out + "/evals.jsonl")).count, 2)
        for file in ["router.json", "model.safetensors", "tokenizer.json", "generators/generator0.safetensors", "generators/generator1.safetensors", "summary.txt"] {
            XCTAssertTrue(FileIO.exists(out + "/" + file), file)
        }
        XCTAssertTrue(try RouterArtifacts.load(directory: out, engine: CPUEngine()) is DecoderRouter)
        let summary = try FileIO.readString(out + "/summary.txt")
        XCTAssertTrue(summary.contains("the kept router moved from its start by ") && !summary.contains("; 0.0% of its weights changed"), summary)
        // The router, generators, steps and evals of a run killed at its first checkpoint.
        try assertResumesToTheSameOutput(spec, stage: "rl", expected: run.result("rl")!.output, storeAt: dir + "/b-store")
    }

    /// Each evaluation says what the updates do: the valid F1 sum of the same routes without
    /// them, the share of answers they change and the updates' spread across questions. With
    /// alpha 0 the updates are exactly zero: nothing changes and both sums are equal; at alpha
    /// 0.5 (these tiny models) each candidate's updates differ between the valid questions, and
    /// summary.txt carries it all.
    func testEvaluationsReportWhatTheUpdatesDo() throws {
        let dir = try makeTempDir(self, "rl-updates")
        let (_, zero) = try runAndUnpack(try spec(dir, overrides: ["rl.alpha=0"]), stage: "rl", storeAt: dir + "/zero")
        let zeroEvals = try jsonLines(zero + "/evals.jsonl")
        XCTAssertEqual(zeroEvals.count, 2)
        for e in zeroEvals {
            XCTAssertEqual(e["answers_changed"]?.doubleValue, 0)
            XCTAssertEqual(e["valid_f1_sum_without_updates"], e["valid_f1_sum"])
            XCTAssertFalse((e["update_norm"]?.objectMembers ?? []).isEmpty)
            for (_, v) in e["update_norm"]?.objectMembers ?? [] { XCTAssertEqual(v.doubleValue, 0, "alpha 0: zero updates") }
        }
        let (_, out) = try runAndUnpack(try spec(dir), stage: "rl", storeAt: dir + "/half")
        for e in try jsonLines(out + "/evals.jsonl") {
            let changed = try XCTUnwrap(e["answers_changed"]?.doubleValue)
            XCTAssertTrue((0...1).contains(changed), "\(changed)")
            XCTAssertNotNil(e["valid_f1_sum_without_updates"]?.doubleValue)
            let spreads = (e["update_spread"]?.objectMembers ?? []).compactMap { $0.value.doubleValue }
            XCTAssertFalse(spreads.isEmpty)
            XCTAssertTrue(spreads.allSatisfy { $0 > 0 }, "two valid questions' updates differ: \(spreads)")
        }
        // The stage's figures (sweep tables, exp show): the kept evaluation's.
        let kept = try XCTUnwrap(try jsonLines(out + "/evals.jsonl").last { $0["improved"]?.boolValue == true })
        let figures = Dictionary(uniqueKeysWithValues: RLTrainStage.figures(directory: out).map { ($0.name, $0.value) })
        XCTAssertEqual(figures["kept_valid_f1_sum"], kept["valid_f1_sum"]?.doubleValue)
        XCTAssertEqual(figures["kept_after"], kept["step"]?.doubleValue)
        XCTAssertEqual(figures["kept_answers_changed"], kept["answers_changed"]?.doubleValue)
        XCTAssertNotNil(figures["kept_update_spread"])
        // Each type's shift from the mean update, over the candidates that saw two types or more.
        var shifts: [String: [Double]] = [:]
        for (_, byType) in kept["update_by_type"]?.objectMembers ?? [] where (byType.objectMembers?.count ?? 0) > 1 {
            for (type, g) in byType.objectMembers ?? [] { shifts[type, default: []].append(try XCTUnwrap(g["shift"]?.doubleValue)) }
        }
        XCTAssertFalse(shifts.isEmpty, "a candidate served both valid questions, a bridge and a comparison")
        XCTAssertEqual(Set(figures.keys.filter { $0.hasPrefix("kept_update_shift_") }), Set(shifts.keys.map { "kept_update_shift_" + $0 }))
        for (type, values) in shifts {
            XCTAssertEqual(try XCTUnwrap(figures["kept_update_shift_" + type]), values.reduce(0, +) / Double(values.count), accuracy: 1e-12)
        }
        let summary = try FileIO.readString(out + "/summary.txt")
        XCTAssertTrue(summary.contains("% of answers changed; the updates' spread across questions by candidate "), summary)
    }

    /// `pooling` "question": the generators read the router's state over the question's tokens
    /// only. The router finds them in its prompt (what differs from the empty question's
    /// prompt); the run says so in generators.json and its variant, and the loaded system pools
    /// so (evaluate's live rows); its updates are not the prompt-pooled run's.
    func testPoolingOverTheQuestion() throws {
        let dir = try makeTempDir(self, "rl-pooling")
        let (_, prompt) = try runAndUnpack(try spec(dir), stage: "rl", storeAt: dir + "/prompt")
        let (_, out) = try runAndUnpack(try spec(dir, #", "pooling": "question""#), stage: "rl", storeAt: dir + "/question")
        let settings = try JSONParser.parse(try FileIO.readString(out + "/generators/generators.json"))
        XCTAssertEqual(settings["pooling"]?.stringValue, "question")
        XCTAssertTrue(settings["variant"]?.stringValue?.contains("pooled over the question") == true, settings.canonical)
        let engine = CPUEngine()
        let candidates = try ["a", "b"].map { try EngineChatModel(directory: dir + "/" + $0, name: $0, engine: engine) }
        let system = try HAPSSystem.load(directory: out, candidates: candidates, engine: engine)
        XCTAssertEqual(system.pooling, .question)
        XCTAssertEqual(try HAPSSystem.load(directory: prompt, candidates: candidates, engine: engine).pooling, .prompt)
        XCTAssertNil(try JSONParser.parse(try FileIO.readString(prompt + "/generators/generators.json"))["pooling"],
                     "the reference's pooling is left out, so earlier artifacts keep their bytes")
        // The question's tokens in the routing prompt decode to the question.
        let question = "Who was born first, Wenmar Kahulsil or Silgar Isfenel?"
        let tokens = try system.router.promptTokens(question, routing: true)
        let span = try system.router.questionPositions(question, in: tokens)
        XCTAssertLessThan(span.count, tokens.count / 2)
        XCTAssertTrue(system.router.tokenizer.decode(Array(tokens[span]), skipSpecial: true).contains("Wenmar Kahulsil or Silgar Isfenel"))
        XCTAssertNotEqual(try system.router.pooledState(question, pooling: .question).values, try system.router.pooledState(question).values)
        XCTAssertNotEqual(try FileIO.read(out + "/generators/generator0.safetensors"), try FileIO.read(prompt + "/generators/generator0.safetensors"))
        // A bad value in generators.json is named.
        try FileManager.default.copyItem(atPath: out, toPath: dir + "/edited")
        try FileIO.writeAtomically(settings.setting(["pooling"], to: .string("tokens")).pretty, to: dir + "/edited/generators/generators.json")
        XCTAssertThrowsError(try HAPSSystem.load(directory: dir + "/edited", candidates: candidates, engine: engine)) {
            XCTAssertTrue("\($0)".contains("pooling must be \"prompt\" or \"question\""), "\($0)")
        }
    }

    /// An evaluation's updates arrive in the order its dialogues in flight make them; they are
    /// measured in one order whatever it was, so the spread (and the stage's output) is the same
    /// in every run (a local run and a Slurm job of the quickstart once differed by it).
    func testAnEvaluationsUpdatesAreMeasuredInOneOrder() throws {
        let dir = try makeTempDir(self, "rl-order")
        try makeTinyHAPS(dir)
        let base = try EngineChatModel(directory: dir + "/a", name: "a", engine: CPUEngine())
        let models = (1...6).map { i in
            LoRAChatModel(base: base, update: EngineUpdate(id: i, generator: 0, lora: LoRAUpdate(
                a: Tensor(shape: [16, 2], data: (0..<32).map { Float(($0 * 7 + i * 3) % 11) / 10 - 0.5 }),
                b: Tensor(shape: [2, 16], data: (0..<32).map { Float(($0 * 5 + i) % 13) / 10 - 0.6 }), alpha: 0.5, layers: 1)), rule: .reference)
        }
        let (forward, backward) = (RLTrainStage.CollectedUpdates(), RLTrainStage.CollectedUpdates())
        for (q, m) in models.enumerated() { forward.add(q, 0, m) }
        for (q, m) in models.enumerated().reversed() { backward.add(q, 0, m) }
        let (f, b) = (forward.byCandidate[0].1, backward.byCandidate[0].1)
        XCTAssertEqual(f.map(\.lora.a.data), b.map(\.lora.a.data))
        XCTAssertEqual(f.map(\.question), b.map(\.question), "each update keeps its question")
        let types = { (made: [(question: Int, lora: LoRAUpdate)]) in made.map { $0.question % 2 == 0 ? "even" : "odd" } }
        XCTAssertEqual(try UpdateSpread(f.map(\.lora), groups: types(f)), try UpdateSpread(b.map(\.lora), groups: types(b)), "bit for bit")
    }

    /// `questions_per_update` 2: a step is an update of two questions. steps.jsonl keeps a row
    /// a question with its update; the learning rates step once an update (4 questions, 2
    /// updates: the linear decay's steps are updates); the first question is routed and sampled as the
    /// reference's first step; evaluations fall after updates; a run killed at its first
    /// checkpoint (after the first update) resumes to the same output; an interval that
    /// would fall inside an update is refused before anything runs.
    func testSeveralQuestionsAnUpdate() throws {
        let dir = try makeTempDir(self, "rl-q")
        let spec = try spec(dir, #", "questions_per_update": 2"#)
        let (run, out) = try runAndUnpack(spec, stage: "rl", storeAt: dir + "/q-store")
        let steps = try jsonLines(out + "/steps.jsonl")
        XCTAssertEqual(steps.map { $0["update"]?.intValue }, [0, 0, 1, 1])
        XCTAssertEqual(steps.map { $0["question"]!.intValue! }, JointRLOrder.questions(count: 4, epoch: 0), "the reference's order")
        let routerLRs = steps.map { $0["router_lr"]!.doubleValue! }
        XCTAssertEqual(routerLRs[0], 0.001, accuracy: 1e-9, "the first update at the base rate")
        XCTAssertEqual(routerLRs[1], routerLRs[0], "one rate an update")
        XCTAssertEqual(routerLRs[3], routerLRs[2])
        XCTAssertEqual(routerLRs[2], 0.00055, accuracy: 1e-9, "the decay over 2 updates, not 4 questions (0.775 of the base)")
        XCTAssertEqual(try jsonLines(out + "/evals.jsonl").map { $0["step"]?.intValue }, [2, 4])

        let (_, reference) = try runAndUnpack(try self.spec(dir), stage: "rl", storeAt: dir + "/one-store")
        let first = try jsonLines(reference + "/steps.jsonl")[0]
        XCTAssertNil(first["update"], "one question an update: the reference's rows")
        for field in ["question", "action", "rewards", "logq", "loss"] { XCTAssertEqual(steps[0][field], first[field], field) }

        try assertResumesToTheSameOutput(spec, stage: "rl", expected: run.result("rl")!.output, storeAt: dir + "/resume-store")
        XCTAssertThrowsError(try self.spec(dir, #", "questions_per_update": 2"#, evalInterval: 3)) { error in
            XCTAssertTrue("\(error)".contains("eval_interval (3) must be a multiple of questions_per_update (2)"), "\(error)")
        }
    }

    /// Two rl-train stages (the reference and an ablation) at -j 1 and at -j 2: the same outputs.
    func testTheSameOutputsAtOneAndTwoJobs() throws {
        let dir = try makeTempDir(self, "rl")
        try makeTinyHAPS(dir)
        let stage = { (alpha: Double) in
            #"{"type": "rl-train", "inputs": {"router": "router", "train": "train.jsonl", "valid": "valid.jsonl"}, "params": {"candidates": ["a", "b"], "#
                + #""budget": 1, "epochs": 1, "eval_interval": 2, "max_tokens": 6, "high_router_lr": 0.001, "low_router_lr": 0.001, "alpha": \#(alpha), "lora_r": 2}}"#
        }
        let spec = try PipelineSpec.parse(text: """
            {"name": "r", "resources": {"models": {"a": {"backend": "local", "path": "a"}, "b": {"backend": "local", "path": "b"}},
                                        "retriever": {"backend": "lexical"}},
             "stages": {"rl": \(stage(0.5)), "rl_no_lora": \(stage(0))}}
            """, file: "r.json", registry: HAPSStages.registry, baseDirectory: dir)
        var outputs: [[Digest?]] = []
        for jobs in [1, 2] {
            var options = RunOptions()
            options.jobs = jobs
            let run = try Executor(spec: spec, store: try Store(root: dir + "/store-j\(jobs)"), options: options).run()
            outputs.append(["rl", "rl_no_lora"].map { run.result($0)?.output })
        }
        XCTAssertTrue(outputs[0].allSatisfy { $0 != nil }, "\(outputs)")
        XCTAssertEqual(outputs[0], outputs[1], "-j 1 and -j 2")
        XCTAssertNotEqual(outputs[0][0], outputs[0][1], "alpha changes the result")
    }

    /// A `prompts` input reaches the dialogue: the repository's copy of the built-in wording
    /// (prompts/standard) trains exactly as no input does, and the embedded set differently.
    func testAPromptsInputIsTheDialoguesWording() throws {
        let dir = try makeTempDir(self, "rl-prompts")
        try makeTinyHAPS(dir)
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
        func output(_ prompts: String?) throws -> Digest? {
            let spec = try PipelineSpec.parse(text: """
                {"name": "r", "resources": {"models": {"a": {"backend": "local", "path": "a"}, "b": {"backend": "local", "path": "b"}},
                                            "retriever": {"backend": "lexical"}},
                 "stages": {"rl": {"type": "rl-train", "inputs": {"router": "router", "train": "train.jsonl", "valid": "valid.jsonl"\(prompts.map { #", "prompts": "\#($0)""# } ?? "")},
                   "params": {"candidates": ["a", "b"], "budget": 1, "epochs": 1, "eval_interval": 4, "max_tokens": 6,
                              "high_router_lr": 0.001, "low_router_lr": 0.001, "alpha": 0.5, "lora_r": 2}}}}
                """, file: "r.json", registry: HAPSStages.registry, baseDirectory: dir)
            return try Executor(spec: spec, store: try Store(root: dir + "/store"), options: RunOptions()).run().result("rl")?.output
        }
        let builtIn = try XCTUnwrap(try output(nil))
        XCTAssertEqual(try output(root + "/prompts/standard"), builtIn, "the built-in wording, given as an input")
        XCTAssertNotEqual(try output(root + "/prompts/embedded"), builtIn, "another wording")
    }

    func testServersAreRefusedByName() throws {
        let dir = try makeTempDir(self, "rl")
        _ = try spec(dir)
        let spec = try PipelineSpec.parse(text: """
            {"name": "r", "resources": {"models": {"a": {"backend": "openai", "url": "http://127.0.0.1:9/v1", "model": "m"}}, "retriever": {"backend": "lexical"}},
             "stages": {"rl": {"type": "rl-train", "inputs": {"router": "router", "train": "train.jsonl", "valid": "valid.jsonl"},
               "params": {"candidates": ["a"]}}}}
            """, file: "r.json", registry: HAPSStages.registry, baseDirectory: dir)
        // Said before anything runs (the preflight), with what to do about it.
        XCTAssertThrowsError(try Executor(spec: spec, store: try Store(root: dir + "/s"), options: RunOptions()).run()) { error in
            XCTAssertTrue("\(error)".hasPrefix("nothing was run: stage 'rl': candidate 'a' is an openai server, and rl-train needs its weights"
                                               + " for the gradients of log q: wire its model directory as input 'model_a'"), "\(error)")
        }
        XCTAssertFalse(FileIO.exists(dir + "/s/work"), "nothing started")
    }
}

/// `evaluate` runs HAPS live through the shared dialogue sampler: with a zero update (alpha 0)
/// it reproduces, question by question, the F1 the score table has for the action HAPS chose
/// (no drift between the live path and the sampled tables).
final class LiveEvaluationTests: XCTestCase {
    func testAZeroUpdateReproducesTheScoreTable() throws {
        let dir = try makeTempDir(self, "live")
        try makeTinyHAPS(dir)
        let spec = try PipelineSpec.parse(text: """
            {"name": "l", "resources": {"models": {"a": {"backend": "local", "path": "a"}, "b": {"backend": "local", "path": "b"}},
                                        "retriever": {"backend": "lexical"}},
             "stages": {
               "sample": {"type": "sample", "inputs": {"questions": "valid.jsonl"}, "params": {"candidates": ["a", "b"], "budget": 1, "max_tokens": 6}},
               "score": {"type": "score", "inputs": {"samples": "sample"}},
               "rl": {"type": "rl-train", "inputs": {"router": "router", "train": "valid.jsonl", "valid": "valid.jsonl"},
                      "params": {"candidates": ["a", "b"], "budget": 1, "epochs": 1, "eval_interval": 100, "max_tokens": 6, "alpha": 0, "lora_r": 2}},
               "evaluate": {"type": "evaluate", "inputs": {"scores": "score", "valid_scores": "score", "questions": "valid.jsonl", "haps": "rl", "sft": "router"},
                            "params": {"candidates": ["a", "b"], "budget": 1, "max_tokens": 6, "resamples": 100}}}}
            """, file: "l.json", registry: HAPSStages.registry, baseDirectory: dir)
        let (_, out) = try runAndUnpack(spec, stage: "evaluate", storeAt: dir + "/store")
        let lines = try jsonLines(out + "/per_question.jsonl")
        XCTAssertEqual(lines.count, 2)
        for line in lines {
            for row in ["haps", "haps+best_fixed"] {
                let action = try XCTUnwrap(line[row]?["action"]?.intValue, row)
                XCTAssertEqual(line[row]?["f1"]?.doubleValue, line["fixed_\(action)"]?["f1"]?.doubleValue, "\(row) on \(line["question"]!.stringValue!)")
            }
        }
        let summary = try FileIO.readString(out + "/summary.txt")
        XCTAssertTrue(summary.contains("haps: HAPS, live (router + generated LoRA; no low-level router (alpha 0))"), summary)
        // HAPS against the router its training started from: the paired difference of the rows.
        let results = try JSONParser.parse(try FileIO.readString(out + "/results.json"))
        let comparison = try XCTUnwrap(results["comparisons"]?.arrayValue?.first, "\(results["comparisons"] ?? .null) \(summary)")
        XCTAssertEqual(comparison["row"]?.stringValue, "haps")
        XCTAssertEqual(comparison["against"]?.stringValue, "sft")
        let mean = { (row: String) in lines.map { $0[row]!["f1"]!.doubleValue! }.reduce(0, +) / Double(lines.count) }
        XCTAssertEqual(comparison["difference"]?["mean"]?.doubleValue ?? .nan, mean("haps") - mean("sft"), accuracy: 1e-12)
        XCTAssertTrue(summary.contains("HAPS against the router its training started from (F1, paired 95% CI):\n  haps − sft: "), summary)
    }
}
