import Foundation
import XCTest
@testable import Pipeline
@testable import Stages

/// The HAPS stage types as pipeline stages: questions → score, build-sft on a samples file.
final class StagePipelineTests: XCTestCase {
    func testScoreAndBuildSFTRunAsCachedStages() throws {
        let dir = NSTemporaryDirectory() + "stages-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(atPath: dir) }
        let fixtures = Fixtures.root + "/build-sft"
        let hotpot = Fixtures.hotpotQA + "/valid.jsonl"
        let spec = try PipelineSpec.parse(text: """
            {"name": "data", "stages": {
              "valid": {"type": "questions", "inputs": {"file": "\(hotpot)"}, "params": {"limit": 10, "shuffle": true}},
              "score": {"type": "score", "inputs": {"samples": "\(fixtures)/baseline.jsonl"}, "params": {"use_recorded": true}},
              "sft": {"type": "build-sft", "inputs": {"samples": "\(fixtures)/baseline.jsonl"},
                      "params": {"tie_policy": "all", "balance": "smart_oversample", "smart_target": 40}}
            }}
            """, file: "data.json", registry: HAPSStages.registry, baseDirectory: dir)
        let store = try Store(root: dir + "/store")
        let run = try Executor(spec: spec, store: store, options: RunOptions()).run()
        XCTAssertTrue(run.succeeded, "\(run.results)")
        let sft = try store.materialize(run.result("sft")!.output!)
        XCTAssertEqual(try FileIO.readString(sft + "/sft.json"), try FileIO.readString(fixtures + "/expected_5.json"))
        XCTAssertTrue(try FileIO.readString(sft + "/stats.txt").contains("rows written: 164"))
        let score = try store.materialize(run.result("score")!.output!)
        let summary = try JSONParser.parse(FileIO.readString(score + "/summary.json"))
        XCTAssertEqual(summary["complete_questions"]?.intValue, 59)
        XCTAssertEqual(try FileIO.readString(score + "/scores.jsonl").split(separator: "\n").count, 354)
        let questions = try store.materialize(run.result("valid")!.output!)
        XCTAssertEqual(try HotpotQA.load(questions + "/questions.jsonl").count, 10)

        let again = try Executor(spec: spec, store: store, options: RunOptions()).run()
        XCTAssertTrue(again.results.allSatisfy { $0.outcome == .cached })
    }

    func testStageParametersAreValidated() throws {
        XCTAssertThrowsError(try PipelineSpec.parse(text: """
            {"name": "x", "stages": {"sft": {"type": "build-sft", "inputs": {"samples": "score"}, "params": {"tie_policy": "random", "balance": "over"}},
             "score": {"type": "score", "inputs": {"samples": "sft"}}}}
            """, file: "x.json", registry: HAPSStages.registry)) { e in
            XCTAssertEqual((e as? SpecError)?.lines, [
                "x.json:1:98: $.stages.sft.params.tie_policy: unknown tie_policy 'random'; one of: all, random_one, deterministic_one",
                "x.json:1:122: $.stages.sft.params.balance: unknown balance 'over'; one of: none, undersample, oversample, smart_oversample",
                "x.json:1:66: $.stages.sft.inputs.samples: stage 'score' outputs 'score-table' but input 'samples' of 'build-sft' expects 'samples'",
                "x.json:2:40: $.stages.score.inputs.samples: stage 'sft' outputs 'sft-data' but input 'samples' of 'score' expects 'samples'",
                "x.json:1:15: $.stages: dependency cycle: sft -> score -> sft",
            ])
        }
    }
}
