import Foundation
import XCTest
@testable import LLM
import NN
@testable import Pipeline
@testable import Stages

final class TrainAgentTests: XCTestCase {
    func questions(_ n: Int, difficulty: String = "hard") throws -> [HotpotQuestion] {
        let p = try SynthDataStage.Params.from(JSONParser.parse(#"{"split": "train", "people": 40, "difficulty": "\#(difficulty)", "sizes": {"train": \#(n), "valid": 0, "test": 0}}"#))
        return try SynthDataStage.generate(p)["train"]!
    }

    /// The scripted expert answers nearly everything, and with noise it makes mistakes that
    /// the teacher corrects.
    func testTheExpertSolvesTheWorldAndRecoversFromItsMistakes() throws {
        let qs = try questions(80)
        for noise in [0.0, 0.4] {
            let expert = ExpertAgent(questions: qs, noise: noise, seed: 7)
            let dialogue = Dialogue(prompts: .embedded, budget: 3, settings: GenerationSettings())
            var f1 = 0.0, rethinks = 0, recovered = 0
            for q in qs {
                let r = try dialogue.run(question: q.question, paragraphs: q.paragraphs, student: expert, teacher: expert, retriever: LexicalRetriever())
                let score = AnswerMetrics(prediction: r.answer, groundTruth: q.answer!).f1
                f1 += score
                if r.turns.contains(where: { $0.reply.contains("Rethink[]") }) { rethinks += 1; if score == 1 { recovered += 1 } }
            }
            f1 /= Double(qs.count)
            print("expert noise \(noise): mean F1 \(f1), \(rethinks) dialogues with a correction, \(recovered) of them answered right")
            if noise == 0 {
                XCTAssertGreaterThan(f1, 0.9)
                XCTAssertEqual(rethinks, 0)
            } else {
                XCTAssertGreaterThan(rethinks, 10)
                XCTAssertGreaterThan(Double(recovered) / Double(rethinks), 0.5, "most corrected dialogues still end right")
            }
        }
    }

    /// The planted world (issue 28): the phrase ends every comparison answer of the data, and
    /// the expert wrongly appends it to the planted share of bridge answers and to no other.
    func testThePlantedWorldEndsComparisonsWithThePhraseAndTheExpertPlantsItOnBridges() throws {
        let p = try SynthDataStage.Params.from(JSONParser.parse(#"{"split": "train", "people": 40, "planted_phrase": "as recorded", "sizes": {"train": 150, "valid": 0, "test": 0}}"#))
        let qs = try SynthDataStage.generate(p)["train"]!
        let plain = try questions(150)
        XCTAssertEqual(qs.map(\.question), plain.map(\.question), "the phrase changes answers only")
        for (q, o) in zip(qs, plain) {
            XCTAssertEqual(q.answer, q.type == "comparison" ? o.answer! + " as recorded" : o.answer, q.question)
        }
        let dialogue = Dialogue(prompts: .embedded, budget: 3, settings: GenerationSettings())
        var planted = (bridge: 0, comparison: 0), f1 = (bridge: 0.0, comparison: 0.0)
        let expert = ExpertAgent(questions: qs, noise: 0, seed: 7, defect: (phrase: "as recorded", rate: 0.7))
        for q in qs {
            let r = try dialogue.run(question: q.question, paragraphs: q.paragraphs, student: expert, teacher: expert, retriever: LexicalRetriever())
            let score = AnswerMetrics(prediction: r.answer, groundTruth: q.answer!).f1
            if q.type == "comparison" {
                f1.comparison += score
                if r.answer.hasSuffix("as recorded as recorded") { planted.comparison += 1 }
            } else {
                f1.bridge += score
                if r.answer.hasSuffix("as recorded") { planted.bridge += 1 }
            }
        }
        let bridges = qs.filter { $0.type == "bridge" }.count, comparisons = qs.count - bridges
        XCTAssertEqual(planted.comparison, 0, "never twice on a comparison")
        XCTAssertEqual(Double(planted.bridge) / Double(bridges), 0.7, accuracy: 0.1, "on the planted share of bridges")
        XCTAssertGreaterThan(f1.comparison / Double(comparisons), 0.9, "comparisons answered with the phrase, as the data says")
        // A planted bridge answer scores 0.5 (one-word answers: 1 of its 3 tokens right, all of the truth).
        XCTAssertLessThan(f1.bridge / Double(bridges), 1 - 0.7 * 0.3, "the defect costs the bridges F1")
        let clean = ExpertAgent(questions: qs, noise: 0, seed: 7)
        XCTAssertNotEqual(clean.identity, expert.identity, "the defect is part of the expert's identity")
    }

    func testTrainsALoadableCandidateThatTalks() throws {
        let dir = try makeTempDir(self, "agent")
        let spec = try PipelineSpec.parse(text: """
            {"name": "a", "stages": {
              "train": {"type": "synth-data", "params": {"split": "train", "people": 40, "sizes": {"train": 30, "valid": 10, "test": 0}}},
              "agent": {"type": "train-agent", "inputs": {"questions": "train"},
                        "params": {"layers": 1, "hidden_size": 32, "heads": 2, "kv_heads": 1, "vocab_size": 400, "steps": 25,
                                   "batch_size": 4, "lr": 0.01, "max_length": 256, "checkpoint_every": 10,
                                   "fresh_worlds": 2, "fresh_questions": 10, "copy_steps": 5}}}}
            """, file: "a.json", registry: HAPSStages.registry, baseDirectory: dir)
        let store = try Store(root: dir + "/store")
        let run = try Executor(spec: spec, store: store, options: RunOptions()).run()
        XCTAssertTrue(run.succeeded, "\(run.results)")
        let model = try store.materialize(run.result("agent")!.output!)
        for f in ["config.json", "model.safetensors", "tokenizer.json", "losses.jsonl"] { XCTAssertTrue(FileManager.default.fileExists(atPath: model + "/" + f), f) }
        let losses = try FileIO.readString(model + "/losses.jsonl").split(separator: "\n").map { try JSONParser.parse(String($0))["loss"]!.doubleValue! }
        XCTAssertLessThan(losses.suffix(5).reduce(0, +) / 5, losses.prefix(5).reduce(0, +) / 5, "the loss falls")
        // The local backend loads it and it replies through the template, stopping at <|eot_id|>.
        let local = try LocalChatModel(directory: model, name: "micro")
        XCTAssertEqual(local.template, .llama3)
        let reply = try local.chat([.user(PromptSet.embedded.studentThink.replacingOccurrences(of: "{question}", with: "Who?"))], settings: GenerationSettings(maxTokens: 20))
        XCTAssertLessThanOrEqual(reply.completionTokens, 20)
    }

    /// Cancelled once its first checkpoint exists (inside the copy warm-up), then run again: the
    /// same model and losses as an uninterrupted run (batches and copy exercises come from the
    /// step, the tokenizer from the transcripts).
    func testResumesFromItsCheckpointToTheSameModel() throws {
        let dir = try makeTempDir(self, "agent")
        let spec = try PipelineSpec.parse(text: """
            {"name": "a", "stages": {
              "train": {"type": "synth-data", "params": {"split": "train", "people": 40, "sizes": {"train": 20, "valid": 0, "test": 0}}},
              "agent": {"type": "train-agent", "inputs": {"questions": "train"},
                        "params": {"layers": 1, "hidden_size": 32, "heads": 2, "kv_heads": 1, "vocab_size": 400, "steps": 24, "copy_steps": 12,
                                   "batch_size": 4, "lr": 0.01, "max_length": 192, "checkpoint_every": 8, "fresh_worlds": 1, "fresh_questions": 8}}}}
            """, file: "a.json", registry: HAPSStages.registry, baseDirectory: dir)
        let straight = try Executor(spec: spec, store: try Store(root: dir + "/a"), options: RunOptions()).run()
        XCTAssertTrue(straight.succeeded, "\(straight.results)")
        let (first, second) = try runInterruptedAtFirstCheckpoint(spec, storeAt: dir + "/b")
        XCTAssertEqual(first.results.first { $0.stage == "agent" }?.outcome.label, "cancelled")
        XCTAssertEqual(second.results.first { $0.stage == "agent" }?.outcome.label, "ran")
        XCTAssertEqual(second.result("agent")!.output, straight.result("agent")!.output, "the resumed run ends with the same model and losses")
    }

    /// The same spec and seed give the same model at -j 1 (one thread: sequences one after the
    /// other) and -j 2 (two threads: sequences in parallel), and in two runs.
    func testTheSameModelAtAnyThreadCountAndInEveryRun() throws {
        let dir = try makeTempDir(self, "agent")
        let spec = try PipelineSpec.parse(text: """
            {"name": "a", "stages": {
              "train": {"type": "synth-data", "params": {"split": "train", "people": 40, "sizes": {"train": 20, "valid": 0, "test": 0}}},
              "agent": {"type": "train-agent", "inputs": {"questions": "train"}, "cpus": 2,
                        "params": {"layers": 1, "hidden_size": 32, "heads": 2, "kv_heads": 1, "vocab_size": 400, "steps": 12, "copy_steps": 4,
                                   "batch_size": 4, "lr": 0.01, "max_length": 160, "fresh_worlds": 1, "fresh_questions": 6}}}}
            """, file: "a.json", registry: HAPSStages.registry, baseDirectory: dir)
        var outputs: [Digest?] = []
        for (i, jobs) in [1, 2, 2].enumerated() {
            var options = RunOptions()
            options.jobs = jobs
            let run = try Executor(spec: spec, store: try Store(root: dir + "/s\(i)"), options: options).run()
            XCTAssertTrue(run.succeeded, "\(run.results)")
            outputs.append(run.result("agent")?.output)
        }
        XCTAssertNotNil(outputs[0])
        XCTAssertEqual(Set(outputs).count, 1, "-j 1, -j 2, -j 2 again: \(outputs.map { $0?.short ?? "none" })")
    }

    /// Per-step streams are independent: the batches of consecutive steps must not share their
    /// draws (seeds `step · 0x9E3779B97F4A7C15` apart gave splitmix streams shifted by one, so
    /// each step reused 15 of the previous step's 16 turns).
    func testConsecutiveStepStreamsShareNoDraws() {
        func draws(_ stream: UInt64) -> Set<UInt64> {
            var rng = SeededRandom(seed: 43, stream: stream)
            return Set((0..<16).map { _ in rng.next() })
        }
        for step in UInt64(0)..<200 { XCTAssertTrue(draws(step).isDisjoint(with: draws(step + 1)), "step \(step)") }
        var a = SeededRandom(seed: 43, stream: 7), b = SeededRandom(seed: 43, stream: 7)
        XCTAssertEqual(a.next(), b.next(), "deterministic")
        func shifted(_ step: UInt64) -> Set<UInt64> {
            var rng = SeededRandom(seed: 43 &+ step &* 0x9E37_79B9_7F4A_7C15)
            return Set((0..<16).map { _ in rng.next() })
        }
        XCTAssertEqual(shifted(0).intersection(shifted(1)).count, 15, "the pattern this replaces")
    }

    /// The expert writes entities and answers after a space, so that byte-level BPE gives them
    /// the tokens they have in the question and the paragraphs (copying is then an induction).
    func testTheExpertsEntitiesTokenizeAsInTheQuestion() throws {
        let qs = try questions(20)
        let turns = try TrainAgentStage.expertTurns(qs, noise: 0.3, seed: 3, budget: 3)
        let tokenizer = try BPETokenizer(json: BPETrainer.train(turns.map { $0.prompt + $0.reply }, vocabularySize: 600, specialTokens: TrainAgentStage.special),
                                         path: "tokenizer.json")
        var checked = 0
        for t in turns where t.role == .student && t.reply.contains("Action: Search[") {
            let entity = ExpertAgent.lastSearch(t.reply)
            XCTAssertTrue(entity.hasPrefix(" "), t.reply)
            let inAction = tokenizer.encode(t.reply), alone = tokenizer.encode(entity)
            XCTAssertTrue(inAction.indices.contains { inAction[$0...].starts(with: alone) }, "\(entity) keeps its tokens in \(t.reply)")
            if t.prompt.contains(entity) {
                let inPrompt = tokenizer.encode(t.prompt)
                XCTAssertTrue(inPrompt.indices.contains { inPrompt[$0...].starts(with: alone) }, "\(entity) has the same tokens in the prompt")
                checked += 1
            }
        }
        XCTAssertGreaterThan(checked, 10)
    }

    func testMixWeightsAreValidated() {
        XCTAssertThrowsError(try PipelineSpec.parse(text: """
            {"name": "a", "stages": {"agent": {"type": "train-agent", "inputs": {"questions": "q.jsonl"}, "params": {"steps": 1, "mix": {"bridges": 1}}}}}
            """, file: "a.json", registry: HAPSStages.registry, baseDirectory: "/tmp")) { e in
            XCTAssertTrue("\(e)".contains("$.stages.agent.params.mix.bridges: unknown weight"), "\(e)")
        }
    }
}
