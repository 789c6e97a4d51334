import Foundation
import XCTest
import LLM
@testable import Pipeline
@testable import Stages

/// `train-decoder` as a pipeline stage: trains, writes a loadable model, and resumes from its
/// checkpoint to the same weights as an uninterrupted run.
final class TrainDecoderStageTests: XCTestCase {
    func spec(_ dir: String, steps: Int = 40) throws -> PipelineSpec {
        // Counting sequences modulo 22 (ids 2..23): structure a tiny model learns quickly.
        let lines = (0..<32).map { i in "[" + (0..<10).map { String(2 + (i + $0) % 22) }.joined(separator: ",") + "]" }
        try lines.joined(separator: "\n").write(toFile: dir + "/tokens.jsonl", atomically: true, encoding: .utf8)
        return try PipelineSpec.parse(text: """
            {"name": "t", "stages": {"lm": {"type": "train-decoder", "inputs": {"sequences": "tokens.jsonl"},
              "params": {"family": "qwen2", "vocab_size": 24, "hidden_size": 16, "intermediate_size": 32, "layers": 2, "heads": 4,
                         "kv_heads": 2, "steps": \(steps), "batch_size": 4, "lr": 0.01, "init_std": 0.1, "checkpoint_every": 10,
                         "eos_token_id": 1}}}}
            """, file: "t.json", registry: HAPSStages.registry, baseDirectory: dir)
    }

    func testTrainsALoadableModelAndResumesToTheSameWeights() throws {
        let dir = try makeTempDir(self, "train")
        let spec = try spec(dir)
        let straight = try Store(root: dir + "/a")
        let reference = try Executor(spec: spec, store: straight, options: RunOptions()).run()
        XCTAssertTrue(reference.succeeded, "\(reference.results)")
        let tree = try straight.materialize(reference.result("lm")!.output!)
        let model = try DecoderModel(directory: tree)
        XCTAssertEqual(model.config.family, .qwen2)
        XCTAssertEqual(model.config.eosTokenIDs, [1])
        let losses = try FileIO.readString(tree + "/losses.jsonl").split(separator: "\n").map { try JSONParser.parse(String($0))["loss"]!.doubleValue! }
        XCTAssertEqual(losses.count, 40)
        XCTAssertLessThan(losses.last!, losses.first! / 2, "\(losses.first!) → \(losses.last!)")

        // Interrupted once its first checkpoint exists, then run again.
        try assertResumesToTheSameOutput(spec, stage: "lm", expected: reference.result("lm")!.output, storeAt: dir + "/b")
    }

    func testBadParametersAndSequencesAreNamed() throws {
        let dir = try makeTempDir(self, "train")
        XCTAssertThrowsError(try PipelineSpec.parse(text: """
            {"name": "t", "stages": {"lm": {"type": "train-decoder", "inputs": {"sequences": "x.jsonl"},
              "params": {"family": "qwen", "vocab_size": 24, "hidden_size": 16, "layers": 2, "heads": 3, "steps": 1, "lr": 0.01}}}}
            """, file: "t.json", registry: HAPSStages.registry, baseDirectory: dir)) { e in
            let text = "\(e)"
            XCTAssertTrue(text.contains("$.stages.lm.params.family: unknown family 'qwen'; did you mean 'qwen2'?"), text)
        }
        // A bad value of a parameter with a default does not hide the stage's other problems.
        XCTAssertThrowsError(try PipelineSpec.parse(text: """
            {"name": "t", "stages": {"lm": {"type": "train-decoder", "inputs": {"sequences": "x.jsonl"},
              "params": {"family": "qwen2", "schedule": "cosin", "vocab_size": 24, "hidden_size": 16, "layers": 2, "heads": 3, "steps": 1, "lr": 0.01}}}}
            """, file: "t.json", registry: HAPSStages.registry, baseDirectory: dir)) { e in
            let text = "\(e)"
            XCTAssertTrue(text.contains("$.stages.lm.params.schedule: unknown schedule 'cosin'; did you mean 'cosine'?"), text)
            XCTAssertTrue(text.contains("$.stages.lm.params.heads: hidden_size 16 is not a multiple of heads 3"), text)
        }
        let s = try spec(dir, steps: 2)
        try "[2, 3]\n[2, 99]\n".write(toFile: dir + "/tokens.jsonl", atomically: true, encoding: .utf8)
        let run = try Executor(spec: s, store: try Store(root: dir + "/s"), options: RunOptions()).run()
        XCTAssertFalse(run.succeeded)
        XCTAssertTrue("\(run.results)".contains("tokens.jsonl:2: token id 99 is outside the vocabulary (vocab_size 24)"), "\(run.results)")
    }
}
