import Foundation
import XCTest

/// `haps-pipe sft-train` with the reference's flags: a tiny Llama backbone (the router fixture),
/// baseline tables and SFT rows written here; the router lands in --output-dir, and a bad flag
/// is named as the user typed it.
final class SFTTrainCommandTests: XCTestCase {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/router").path

    func testTrainsARouterIntoTheOutputDirectory() throws {
        let dir = try makeTempDirectory(self)
        let f = SFTTrainCommandTests.fixtures
        for (from, to) in [("config.json", "config.json"), ("router_init.safetensors", "model.safetensors"), ("tokenizer.json", "tokenizer.json")] {
            try FileManager.default.createDirectory(atPath: dir + "/backbone", withIntermediateDirectories: true)
            try FileManager.default.copyItem(atPath: f + "/" + from, toPath: dir + "/backbone/" + to)
        }
        var baseline = "", sft: [String] = []
        for i in 0..<6 {
            let q = i % 2 == 0 ? "Which is older, city \(i) or city \(i + 1)?" : "In what year was company \(i) founded?"
            let best = i % 2 == 0 ? 3 : 0
            for a in 0..<4 {
                baseline += #"{"question": "\#(q)", "action_index": \#(a), "f1": \#(a == best ? 1 : 0)}"# + "\n"
            }
            sft.append(#"{"question": "\#(q)", "reward": 1, "output": "{\"teacher\": \#(best / 2),\"student\": \#(best % 2)}"}"#)
        }
        try writeFile(baseline, dir + "/baseline.jsonl")
        try writeFile("[" + sft.joined(separator: ",") + "]", dir + "/sft.json")
        let r = try CLI.run(["sft-train", "--sft-data", "sft.json", "--model-name-or-path", "backbone", "--valid-baseline", "baseline.jsonl",
                             "--train-baseline", "baseline.jsonl", "--num-train-epochs", "2", "--learning-rate", "0.001",
                             "--gradient-accumulation-steps", "1", "--per-device-train-batch-size", "3", "--output-dir", "router"], in: dir)
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.hasPrefix("wrote the router to router (ran); "), r.stdout)
        for file in ["router.json", "config.json", "model.safetensors", "tokenizer.json", "epochs.jsonl", "selection.json", "summary.txt"] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: dir + "/router/" + file), file)
        }
        XCTAssertEqual(lines(dir + "/router/epochs.jsonl").count, 2)
        let bad = try CLI.run(["sft-train", "--sft-data", "sft.json", "--model-name-or-path", "nope", "--valid-baseline", "baseline.jsonl",
                               "--output-dir", "r2"], in: dir)
        XCTAssertEqual(bad.status, 2, "a usage error")
        XCTAssertTrue(bad.stderr.contains("--model-name-or-path nope: no such file or directory"), bad.stderr)
        let schedule = try CLI.run(["sft-train", "--sft-data", "sft.json", "--model-name-or-path", "backbone", "--valid-baseline", "baseline.jsonl",
                                    "--lr-scheduler-type", "cosin", "--output-dir", "r2"], in: dir)
        XCTAssertTrue(schedule.stderr.contains("unknown --lr-scheduler-type 'cosin'; did you mean 'cosine'?"), schedule.stderr)
    }
}
