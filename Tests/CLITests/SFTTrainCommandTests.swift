import Foundation
import XCTest

/// `haps-pipe sft-train` and `haps-pipe rl-train` with the reference's flags: a tiny Llama
/// backbone (the router fixture), baseline tables and SFT rows written here; the router lands in
/// --output-dir, joint RL from it lands in its own, and a bad flag is named as the user typed it.
final class SFTTrainCommandTests: XCTestCase {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/router").path

    /// A tiny Llama backbone (the router fixture), baseline tables and SFT rows in a new
    /// directory, and `sft-train` run on them into router/ (what `r` printed).
    func makeRouter() throws -> (dir: String, f: String, r: CLI.Result) {
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
        return (dir, f, r)
    }

    func testTrainsARouterIntoTheOutputDirectory() throws {
        let (dir, f, r) = try makeRouter()
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
        // The reference's sft.py spellings name the same parameters: the same work, cached.
        let reference = try CLI.run(["sft-train", "--sft-json", "sft.json", "--model-name-or-path", "backbone", "--valid-bsl-jsonl", "baseline.jsonl",
                                     "--train-bsl-jsonl", "baseline.jsonl", "--epochs", "2", "--lr", "0.001", "--grad-accum", "1", "--bsz", "3",
                                     "--eval-bs", "64", "--output-dir", "router-ref"], in: dir)
        XCTAssertEqual(reference.status, 0, reference.stderr)
        XCTAssertTrue(reference.stdout.hasPrefix("wrote the router to router-ref (cached)"), reference.stdout)
        XCTAssertTrue(reference.stderr.contains("note: --eval-bs has no effect"), reference.stderr)

        // Joint RL from that router, the backbone standing in for both candidates.
        let root = URL(fileURLWithPath: f).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
        for (split, n) in [("train", 2), ("valid", 1)] {
            let rows = try String(contentsOfFile: root + "/dataset/\(split).jsonl", encoding: .utf8).split(separator: "\n").prefix(n)
            try writeFile(rows.joined(separator: "\n") + "\n", dir + "/\(split).jsonl")
        }
        let rl = ["rl-train", "--router-path", "router", "--model", "a=backbone", "--model", "b=backbone", "--train-data", "train.jsonl",
                  "--valid-data", "valid.jsonl", "--retriever", "lexical", "--budget", "1", "--max-tokens", "4", "--epochs", "1",
                  "--eval-interval", "1", "--alpha", "0.5", "--lora-r", "2", "--high-router-lr", "0.001", "--low-router-lr", "0.001"]
        let joint = try CLI.run(rl + ["--output-dir", "joint"], in: dir)
        XCTAssertEqual(joint.status, 0, joint.stderr)
        XCTAssertTrue(joint.stdout.hasPrefix("wrote the router and generators to joint (ran); kept the router and generators"), joint.stdout)
        for file in ["router.json", "model.safetensors", "generators/generators.json", "generators/generator0.safetensors",
                     "generators/generator1.safetensors", "steps.jsonl", "evals.jsonl", "summary.txt"] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: dir + "/joint/" + file), file)
        }
        XCTAssertEqual(lines(dir + "/joint/steps.jsonl").count, 2)
        XCTAssertEqual(lines(dir + "/joint/evals.jsonl").count, 2)
        let again = try CLI.run(rl + ["--output-dir", "joint2"], in: dir)
        XCTAssertTrue(again.stdout.hasPrefix("wrote the router and generators to joint2 (cached)"), again.stdout)
        let noModel = try CLI.run(["rl-train", "--router-path", "router", "--model", "a=nope", "--train-data", "train.jsonl",
                                   "--valid-data", "valid.jsonl", "--output-dir", "j3"], in: dir)
        XCTAssertEqual(noModel.status, 2, "a usage error")
        XCTAssertTrue(noModel.stderr.contains("--model a nope: no such file or directory"), noModel.stderr)
        let prompts = try CLI.run(rl + ["--prompts", "embeded", "--output-dir", "j3"], in: dir)
        XCTAssertTrue(prompts.stderr.contains("unknown --prompts 'embeded'; did you mean 'embedded'?"), prompts.stderr)
    }

    /// `rl-train` killed with SIGKILL at a random step, run again: it resumes from its checkpoint
    /// and writes the same bytes as a run never interrupted.
    func testRLTrainKilledAtARandomStepResumesToTheSameBytes() throws {
        let (dir, _, r) = try makeRouter()
        XCTAssertEqual(r.status, 0, r.stderr)
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
        let rows = try String(contentsOfFile: root + "/dataset/train.jsonl", encoding: .utf8).split(separator: "\n").prefix(4)
        try writeFile(rows.joined(separator: "\n") + "\n", dir + "/train.jsonl")
        try writeFile(rows.prefix(1).joined(separator: "\n") + "\n", dir + "/valid.jsonl")
        let args = ["rl-train", "--router-path", "router", "--model", "a=backbone", "--model", "b=backbone", "--train-data", "train.jsonl",
                    "--valid-data", "valid.jsonl", "--retriever", "lexical", "--budget", "1", "--max-tokens", "24", "--epochs", "3",
                    "--eval-interval", "4", "--alpha", "0.5", "--lora-r", "2", "--high-router-lr", "0.001", "--low-router-lr", "0.001"]
        let clean = try CLI.run(args + ["--output-dir", "clean", "--store", "clean-store"], in: dir)
        XCTAssertEqual(clean.status, 0, clean.stderr)

        let killAt = Int.random(in: 1...9)
        let (p, _, _) = try CLI.start(args + ["--output-dir", "resumed", "--store", "store"], in: dir)
        var reached = -1
        let deadline = Date().addingTimeInterval(120)
        while p.isRunning, reached < killAt, Date() < deadline {
            let work = (try? FileManager.default.contentsOfDirectory(atPath: dir + "/store/work")) ?? []
            reached = work.flatMap { (try? FileManager.default.contentsOfDirectory(atPath: dir + "/store/work/\($0)/checkpoints")) ?? [] }
                .compactMap { Int($0.dropFirst("step-".count).dropLast(".ckpt".count)) }.max() ?? -1
            usleep(2_000)
        }
        XCTAssertTrue(p.isRunning, "the run ended before step \(killAt)")
        kill(p.processIdentifier, SIGKILL)
        p.waitUntilExit()
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/resumed"), "killed at step \(reached), before its end")
        let resumed = try CLI.run(args + ["--output-dir", "resumed", "--store", "store"], in: dir)
        XCTAssertEqual(resumed.status, 0, resumed.stderr)
        XCTAssertTrue(resumed.stderr.contains("resum"), "it resumed from the checkpoint of step \(reached): \(resumed.stderr)")
        for file in ["model.safetensors", "generators/generator0.safetensors", "generators/generator1.safetensors", "steps.jsonl", "evals.jsonl", "summary.txt"] {
            XCTAssertEqual(FileManager.default.contents(atPath: dir + "/resumed/" + file), FileManager.default.contents(atPath: dir + "/clean/" + file),
                           "\(file) after a kill at step \(reached)")
        }
    }
}
