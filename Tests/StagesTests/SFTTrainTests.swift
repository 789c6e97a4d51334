import Foundation
import XCTest
import LLM
import NN
@testable import Pipeline
@testable import Stages

/// `sft-train` on a world whose right router is known: comparison questions are answered only
/// by action 3, bridge questions only by action 0. A tiny random Llama learns the mapping; the
/// keep-best rule, the fallback when no epoch beats best fixed, and resume after a kill.
final class SFTTrainTests: XCTestCase {
    static let tokenizer = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/engine/tokenizer-llama3.json").path

    static func question(_ i: Int, comparison: Bool) -> String {
        let names = ["Alice Smith", "Bob Jones", "Carol Brown", "Dan White", "Eve Black", "Frank Green", "Gina Gray", "Hugo Stone", "Ivy Lane"]
        return comparison ? "Which is older, \(names[i % 9]) or \(names[(i + 4) % 9])?" : "In what year was the city where \(names[i % 9]) was born founded?"
    }

    /// A score table directory: F1 1 for `best(question)`, 0 for the other actions.
    static func table(_ dir: String, _ questions: [(String, Int)]) throws {
        try FileIO.makeDirectory(dir)
        var lines = ""
        for (qi, (q, best)) in questions.enumerated() {
            for a in 0..<4 {
                let f1 = a == best ? 1.0 : 0.0
                lines += JSONValue.object(["question_index": .number(Double(qi)), "question": .string(q), "action": .number(Double(a)),
                                           "teacher": .number(Double(a / 2)), "student": .number(Double(a % 2)), "f1": .number(f1),
                                           "em": .number(f1), "precision": .number(f1), "recall": .number(f1)]).canonical + "\n"
            }
        }
        try FileIO.writeAtomically(lines, to: dir + "/scores.jsonl")
    }

    /// Backbone, prompts, tables and SFT rows in `dir`; `typed`: the best action depends on the
    /// question's type (else it is 0 everywhere, and no router can beat best fixed).
    static func spec(_ dir: String, typed: Bool, epochs: Int = 12, params: String = "") throws -> PipelineSpec {
        let config = DecoderConfig(family: .llama, vocabSize: 1200, hiddenSize: 32, intermediateSize: 64, layers: 2, heads: 4, kvHeads: 2,
                                   bosTokenID: 0, eosTokenIDs: [1])
        try FileIO.makeDirectory(dir + "/backbone")
        try DecoderModel.randomlyInitialised(config, seed: 5, std: 0.1).save(directory: dir + "/backbone")
        try FileIO.writeAtomically(try FileIO.read(SFTTrainTests.tokenizer), to: dir + "/backbone/tokenizer.json")
        try FileIO.writeAtomically("Route the question.", to: dir + "/prompts/system.txt")
        try FileIO.writeAtomically("Q: {question}\nModels:\n{candidates}\nReply {format}", to: dir + "/prompts/user.txt")
        func split(_ n: Int, offset: Int) -> [(String, Int)] {
            (0..<n).map { i in (Self.question(i + offset, comparison: i % 2 == 0), typed && i % 2 == 0 ? 3 : 0) }
        }
        let train = split(12, offset: 0), valid = split(6, offset: 20)
        try Self.table(dir + "/train", train)
        try Self.table(dir + "/valid", valid)
        let rows = train.map { q, best in
            JSONValue.object(["question": .string(q), "reward": 1, "output": .string(ActionSpace().output(for: ActionSpace().assignment(of: best)))])
        }
        try FileIO.writeAtomically(JSONValue.array(rows).canonical, to: dir + "/sft/sft.json")
        return try PipelineSpec.parse(text: """
            {"name": "s", "stages": {"router": {"type": "sft-train",
              "inputs": {"sft": "sft", "backbone": "backbone", "valid_scores": "valid", "train_scores": "train", "prompts": "prompts"},
              "params": {"epochs": \(epochs), "lr": 0.01, "batch_size": 4, "gradient_accumulation": 1, "warmup_ratio": 0,
                         "candidate_names": ["small", "large"]\(params)}}}}
            """, file: "s.json", registry: HAPSStages.registry, baseDirectory: dir)
    }

    func testTheRouterLearnsTheKnownMappingAndIsKept() throws {
        let dir = try makeTempDir(self, "sft")
        let spec = try Self.spec(dir, typed: true)
        let (_, out) = try runAndUnpack(spec, stage: "router", storeAt: dir + "/store")
        let epochs = try jsonLines(out + "/epochs.jsonl")
        XCTAssertEqual(epochs.count, 12)
        XCTAssertEqual(epochs.last?["train_f1_mean"]?.doubleValue, 1, "\(epochs.map { $0.canonical })")
        let selection = try JSONParser.parse(try FileIO.readString(out + "/selection.json"))
        XCTAssertEqual(selection["kept"], true)
        XCTAssertEqual(selection["valid_f1_sum"]?.doubleValue, 6)
        XCTAssertEqual(selection["best_fixed_valid_f1_sum"]?.doubleValue, 3)
        // The saved router routes held-out questions by their type.
        let router = try RouterArtifacts.load(directory: out, engine: CPUEngine())
        let held = [Self.question(40, comparison: true), Self.question(41, comparison: false)].map { RoutingQuestion($0) }
        XCTAssertEqual(try router.route(held, embeddings: nil).map(\.action), [3, 0])
        XCTAssertTrue(try FileIO.readString(out + "/summary.txt").contains("beats best fixed"))
    }

    func testWithoutAnEpochBeatingBestFixedTheRouterRoutesBestFixed() throws {
        let dir = try makeTempDir(self, "sft")
        let spec = try Self.spec(dir, typed: false, epochs: 2)
        let (_, out) = try runAndUnpack(spec, stage: "router", storeAt: dir + "/store")
        let selection = try JSONParser.parse(try FileIO.readString(out + "/selection.json"))
        XCTAssertEqual(selection["kept"], false)
        XCTAssertTrue(try FileIO.readString(out + "/summary.txt").contains("no epoch beat the best fixed action on valid (action 0"))
        let router = try RouterArtifacts.load(directory: out, engine: CPUEngine())
        XCTAssertEqual(router.label, "decoder router (no epoch beat best fixed: routes action 0)")
        XCTAssertEqual(try router.route([RoutingQuestion(Self.question(1, comparison: true))], embeddings: nil).map(\.action), [0])
    }

    func testAKilledRunResumesToTheSameRouter() throws {
        let dir = try makeTempDir(self, "sft")
        let spec = try Self.spec(dir, typed: true, epochs: 3)
        let reference = try Executor(spec: spec, store: try Store(root: dir + "/a"), options: RunOptions()).run()
        XCTAssertTrue(reference.succeeded, "\(reference.results)")
        try assertResumesToTheSameOutput(spec, stage: "router", expected: reference.result("router")!.output, storeAt: dir + "/b")
    }

    func testRepliesParseAsTheReferenceParsesThem() {
        let space = ActionSpace()
        XCTAssertEqual(DecoderRouter.parse(#"{"teacher": 1,"student": 0}"#, space: space), 2)
        XCTAssertEqual(DecoderRouter.parse(#"first {"teacher": 0, "student": 0} then {"teacher": "1", "student": "1"}"#, space: space), 3, "the last object")
        XCTAssertEqual(DecoderRouter.parse(#"{"teacher": 2, "student": 0}"#, space: space), 0, "no candidate 2")
        XCTAssertEqual(DecoderRouter.parse(#"{"teacher": 1}"#, space: space), 0, "a role missing")
        XCTAssertEqual(DecoderRouter.parse("no json here", space: space), 0)
        XCTAssertEqual(DecoderRouter.parse("{\"teacher\": 1,\n\"student\": 1}", space: space), 3, "json.loads reads a newline as whitespace")
        XCTAssertEqual(DecoderRouter.parse(#"{"teacher": 1, "student": 1"#, space: space), 0, "unclosed")
    }
}

/// The router's example and one SFT optimiser step against transformers (fixtures recorded by
/// Tests/Fixtures/router/make_fixtures.py): the prompt ids from `apply_chat_template` with a
/// Llama 3.2-style template and the target appended, and the weights after one AdamW step of
/// two accumulated micro-batches, gradients clipped.
final class RouterFixtureTests: XCTestCase {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/router").path

    func router() throws -> (DecoderRouter, JSONValue) {
        let f = RouterFixtureTests.fixtures
        let recorded = try JSONParser.parse(try FileIO.readString(f + "/examples.json"))
        let dir = try makeTempDir(self, "router-fixture")
        for (from, to) in [("config.json", "config.json"), ("router_init.safetensors", "model.safetensors"), ("tokenizer.json", "tokenizer.json")] {
            try FileIO.writeAtomically(try FileIO.read(f + "/" + from), to: dir + "/" + to)
        }
        var settings = DecoderRouter.Settings(candidates: recorded["candidates"]!.arrayValue!.map { $0.stringValue! })
        settings.date = recorded["date"]!.stringValue!
        return (try DecoderRouter(directory: dir, engine: CPUEngine(), space: ActionSpace(), settings: settings), recorded)
    }

    func testTheExampleTokensAreWhatTransformersBuilds() throws {
        let (router, recorded) = try router()
        for e in recorded["examples"]!.arrayValue! {
            let question = e["question"]!.stringValue!
            let messages = try router.settings.prompt.messages(question: question, candidates: router.settings.candidates, space: router.space,
                                                               date: router.settings.date)
            XCTAssertEqual(messages.map(\.role), ["system", "user"])
            XCTAssertEqual(messages[0].content, "Cutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n" + e["messages"]!.arrayValue![0]["content"]!.stringValue!)
            XCTAssertEqual(messages[1].content, e["messages"]!.arrayValue![1]["content"]!.stringValue!)
            let prompt = e["prompt_ids"]!.arrayValue!.map { $0.intValue! }, target = e["target_ids"]!.arrayValue!.map { $0.intValue! }
            let example = try router.example(question: question, output: e["output"]!.stringValue!)
            XCTAssertEqual(example.tokens, prompt + target, question)
            XCTAssertEqual(example.targetsFrom, prompt.count)
        }
    }

    func testOneSFTStepMatchesTransformers() throws {
        let (router, recorded) = try router()
        let examples = try recorded["examples"]!.arrayValue!.map { try router.example(question: $0["question"]!.stringValue!, output: $0["output"]!.stringValue!) }
        // The engine's SFT step (what sft-train runs), against transformers' Trainer step.
        let before = try router.engine.weights(router.model)
        let settings = try RouterSFTSettings.from(["lr": 1e-3, "schedule": "constant", "warmup_ratio": 0, "weight_decay": 0, "max_grad_norm": 1,
                                                   "gradient_accumulation": 2])
        let trainer = RouterSFT(router: router, settings: settings, rows: examples.count)
        let loss = try trainer.train(examples.map(\.tokens), targetsFrom: examples.map(\.targetsFrom))
        let expectedLoss = try JSONParser.parse(try FileIO.readString(RouterFixtureTests.fixtures + "/loss.json"))["loss"]!.doubleValue!
        XCTAssertEqual(Double(loss), expectedLoss, accuracy: 1e-4 * expectedLoss)
        let after = try SafeTensorsFile(path: RouterFixtureTests.fixtures + "/router_step.safetensors").all()
        for (name, ours) in try router.engine.weights(router.model) {
            let theirs = try XCTUnwrap(after[name], name)
            let scale = theirs.data.map { abs($0) }.max()!
            let worst = zip(ours.data, theirs.data).map { abs($0 - $1) }.max()!
            XCTAssertLessThanOrEqual(worst, 1e-4 * scale, "\(name): off by \(worst) at scale \(scale)")
            XCTAssertNotEqual(ours.data, before[name]!.data, "\(name) moved")
        }
    }
}
