import Foundation
import XCTest
@testable import LLM
@testable import Pipeline
@testable import Stages

final class TrainAgentTests: XCTestCase {
    func questions(_ n: Int, difficulty: String = "hard") throws -> [HotpotQuestion] {
        let p = try JSONDecoder().decode(SynthDataStage.Params.self, from: Data(#"{"split": "train", "people": 40, "difficulty": "\#(difficulty)", "sizes": {"train": \#(n), "valid": 0, "test": 0}}"#.utf8))
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

    func testTrainsALoadableCandidateThatTalks() throws {
        let dir = NSTemporaryDirectory() + "agent-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(atPath: dir) }
        let spec = try PipelineSpec.parse(text: """
            {"name": "a", "stages": {
              "train": {"type": "synth-data", "params": {"split": "train", "people": 40, "sizes": {"train": 30, "valid": 10, "test": 0}}},
              "agent": {"type": "train-agent", "inputs": {"questions": "train"},
                        "params": {"layers": 1, "hidden_size": 32, "heads": 2, "kv_heads": 1, "vocab_size": 400, "steps": 25,
                                   "batch_size": 4, "lr": 0.01, "max_length": 256, "checkpoint_every": 10,
                                   "fresh_worlds": 2, "fresh_questions": 10}}}}
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

    func testMixWeightsAreValidated() {
        XCTAssertThrowsError(try PipelineSpec.parse(text: """
            {"name": "a", "stages": {"agent": {"type": "train-agent", "inputs": {"questions": "q.jsonl"}, "params": {"steps": 1, "mix": {"bridges": 1}}}}}
            """, file: "a.json", registry: HAPSStages.registry, baseDirectory: "/tmp")) { e in
            XCTAssertTrue("\(e)".contains("$.stages.agent.params.mix.bridges: unknown weight"), "\(e)")
        }
    }
}
