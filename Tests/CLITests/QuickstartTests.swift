import Foundation
import XCTest

/// `pipelines/quickstart.json` end to end at micro size (the same spec, with `--set` making the
/// world, the candidates and joint RL tiny): it runs offline, scores with the breakdown by
/// question type, evaluates HAPS live beside the routers, and reruns as a no-op. The full-size targets are checked by bench/quickstart.
final class QuickstartTests: XCTestCase {
    static let spec = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("pipelines/quickstart.json").path

    /// A directory to run the quickstart in, with the encoder the embedding routers read where
    /// the spec names it (relative to where it runs).
    static func directory(_ test: XCTestCase) throws -> String {
        let dir = try makeTempDirectory(test)
        let models = URL(fileURLWithPath: spec).deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("models").path
        try FileManager.default.createSymbolicLink(atPath: dir + "/models", withDestinationPath: models)
        return dir
    }

    /// `--set` arguments that make the world, the candidates and joint RL tiny.
    static let micro: [String] = {
        var micro: [String] = []
        for split in ["train", "valid", "test"] { micro += ["--set", #"world_\#(split).sizes={"train": 10, "valid": 5, "test": 5}"#] }
        for agent in ["agent_a", "agent_b"] {
            for (k, v) in [("steps", "12"), ("copy_steps", "4"), ("batch_size", "4"), ("fresh_worlds", "1"), ("fresh_questions", "8"),
                           ("hidden_size", "32"), ("vocab_size", "400"), ("max_length", "256")] {
                micro += ["--set", "\(agent).\(k)=\(v)"]
            }
        }
        for split in ["train", "valid", "test"] { micro += ["--set", "sample_\(split).max_tokens=24"] }
        micro += ["--set", "sft_train.epochs=2", "--set", #"world_rl.sizes={"train": 10, "valid": 5, "test": 5, "rl": 4}"#,
                  "--set", #"world_rl_valid.sizes={"train": 10, "valid": 5, "test": 5, "rl": 4, "rl_valid": 3}"#, "--set", "evaluate.max_tokens=24"]
        for stage in ["rl_train", "rl_train_no_lora", "rl_train_no_sharing"] {
            micro += ["--set", "\(stage).samples=2", "--set", "\(stage).max_tokens=24", "--set", "\(stage).eval_interval=2"]
        }
        return micro
    }()

    func testTheQuickstartRunsEndToEndAtMicroSize() throws {
        let dir = try QuickstartTests.directory(self), micro = QuickstartTests.micro
        let r = try CLI.run(["run", QuickstartTests.spec, "--plain"] + micro, in: dir)
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stderr.contains("quickstart: 23 ran"), r.stderr)
        XCTAssertTrue(r.stderr.contains("result of evaluate:"), r.stderr)
        let summary = try CLI.run(["show", "score_valid", "--file", "summary.txt"], in: dir)
        XCTAssertEqual(summary.status, 0, summary.stderr)
        XCTAssertTrue(summary.stdout.hasPrefix("questions: 5 (5 with every action"), summary.stdout)
        XCTAssertTrue(summary.stdout.contains("questions where the teacher's candidate alone changes the F1:"), summary.stdout)
        XCTAssertTrue(summary.stdout.contains("by question type:"), summary.stdout)
        let json = try CLI.run(["show", "score_valid", "--file", "summary.json"], in: dir)
        let parsed = try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as! [String: Any]
        XCTAssertEqual((parsed["by_type"] as! [String: Any]).values.map { ($0 as! [String: Any])["questions"] as! Int }.reduce(0, +), 5)
        let again = try CLI.run(["run", QuickstartTests.spec, "--plain"] + micro, in: dir)
        XCTAssertTrue(again.stderr.contains("quickstart: 23 cached"), again.stderr)
        let evaluation = try CLI.run(["show", "evaluate"], in: dir)
        XCTAssertEqual(evaluation.status, 0, evaluation.stderr)
        for row in ["sft_train", "router_per_type", "router_knn", "router_logistic", "router_mf", "rl_train", "rl_train+best_fixed", "rl_train_no_lora",
                    "rl_train_no_sharing", "best_fixed", "oracle", "random", "fixed_3"] {
            XCTAssertTrue(evaluation.stdout.contains("\n" + row + " "), "\(row) in\n\(evaluation.stdout)")
        }
        XCTAssertTrue(evaluation.stdout.contains("5 questions; best fixed chosen on valid"), evaluation.stdout)
        XCTAssertTrue(evaluation.stdout.contains("mean F1 by question type:"), evaluation.stdout)
        XCTAssertTrue(evaluation.stdout.contains("HAPS against the router its training started from (F1, paired 95% CI):\n  rl_train − sft_train: "),
                      evaluation.stdout)
        let missing = try CLI.run(["show", "score_valid", "--file", "summary.jsn"], in: dir)
        XCTAssertEqual(missing.status, 1)
        XCTAssertTrue(missing.stderr.contains("has no file 'summary.jsn'; did you mean 'summary.json'?"), missing.stderr)
    }

    /// Ctrl-C takes effect while stages compute: with as many training stages as cores, every
    /// thread of Dispatch's pool would be theirs, and a handler there waited until one ended
    /// (124 s during the quickstart's training on 2 cores). Here the candidates would train for
    /// minutes; the run must stop within seconds (10 here; it takes about 1), keeping what it did.
    func testCtrlCTakesEffectWhileEveryCoreTrains() throws {
        let dir = try QuickstartTests.directory(self)
        let cores = ProcessInfo.processInfo.activeProcessorCount
        var args = ["run", QuickstartTests.spec, "--plain", "-j", "\(cores)", "--until", "agent_a", "--until", "agent_b"]
        for split in ["train", "valid", "test"] { args += ["--set", #"world_\#(split).sizes={"train": 10, "valid": 5, "test": 5}"#] }
        for agent in ["agent_a", "agent_b"] {
            // Little data to prepare (which does not look for Ctrl-C), so that training is under way.
            args += ["--set", "\(agent).steps=100000", "--set", "\(agent).hidden_size=32", "--set", "\(agent).vocab_size=400",
                     "--set", "\(agent).fresh_worlds=1", "--set", "\(agent).fresh_questions=8", "--set", "\(agent).batch_size=4"]
        }
        let (p, out, err) = try CLI.start(args, in: dir)
        // Both candidates are training once each has a work directory and a second has passed.
        let started = Date().addingTimeInterval(60)
        func training() -> Int { ((try? FileManager.default.contentsOfDirectory(atPath: dir + "/artifacts/work")) ?? []).count }
        while training() < 2 && Date() < started && p.isRunning { usleep(50_000) }
        XCTAssertGreaterThanOrEqual(training(), 2, "both candidates started")
        sleep(4)
        kill(p.processIdentifier, SIGINT)
        let deadline = Date().addingTimeInterval(10)
        while p.isRunning && Date() < deadline { usleep(50_000) }
        let stopped = !p.isRunning
        if !stopped { kill(p.processIdentifier, SIGKILL) }
        let r = CLI.finish(p, out, err)
        XCTAssertTrue(stopped, "still training 10 s after Ctrl-C: \(r.stderr.suffix(2000))")
        XCTAssertEqual(r.status, 130, r.stderr)
        XCTAssertTrue(r.stderr.contains("■ agent_a          interrupted after"), r.stderr)
        XCTAssertTrue(r.stderr.contains("■ agent_b          interrupted after"), r.stderr)
    }
}
