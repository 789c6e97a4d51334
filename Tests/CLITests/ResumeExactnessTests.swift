import Foundation
import XCTest
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// Issue 25, items 2 and 5, with the real tool and real processes: `rl-train` and `sft-train`
/// killed with SIGKILL at exact moments (`HAPS_TEST_KILL_AT`: right after a journal record is
/// durably written, before the step's checkpoint) end, once resumed, with the digest of a run
/// never interrupted; kept best weights (`work/KEY/best/`) that were damaged meanwhile are
/// reported with their path and rebuilt, never used, and never wedge a rerun or `--force`.
final class ResumeExactnessTests: XCTestCase {
    var dir = ""
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures").path
    static let root = URL(fileURLWithPath: fixtures).deletingLastPathComponent().deletingLastPathComponent().path

    override func setUpWithError() throws {
        dir = try makeTempDirectory(self)
    }

    struct Outcome {
        var status: Int32
        /// Ended by SIGKILL (the test hook's kill).
        var killed: Bool
        /// Standard output and error (progress and the stages' log lines go to standard error).
        var text: String
    }

    /// Runs the tool in `dir`; with `killAt` (`journal/key`), the process kills itself with
    /// SIGKILL right after writing that journal record (HAPS_TEST_KILL_AT, a test-only hook).
    func tool(_ args: [String], killAt: String? = nil) throws -> Outcome {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: CLI.binary)
        p.arguments = args + ["--plain"]
        p.currentDirectoryURL = URL(fileURLWithPath: dir)
        var env = ProcessInfo.processInfo.environment
        env["TERM"] = "dumb"
        env["HAPS_TEST_KILL_AT"] = killAt
        p.environment = env
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        try p.run()
        let r = CLI.finish(p, out, err)
        return Outcome(status: r.status, killed: p.terminationReason == .uncaughtSignal && r.status == SIGKILL, text: r.stdout + r.stderr)
    }

    /// The digest of `stage`'s latest result in `store`, and its files' digests (to say which differ).
    func result(_ stage: String, store: String) throws -> (digest: String, files: [String: String]) {
        let shown = try CLI.run(["show", stage, "--json", "--store", store], in: dir)
        let json = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(shown.stdout.utf8)) as? [String: Any], shown.stderr)
        let files = (json["manifest"] as? [String: Any])?["files"] as? [String: [String: Any]] ?? [:]
        return (try XCTUnwrap(json["digest"] as? String), files.mapValues { $0["digest"] as? String ?? "" })
    }

    /// Checks that `stage` in `store` has the clean run's result, naming the files that differ.
    func assertSameResult(_ stage: String, store: String, as clean: (digest: String, files: [String: String]), _ what: String,
                          file: StaticString = #filePath, line: UInt = #line) throws {
        let got = try result(stage, store: store)
        let differing = Set(clean.files.keys).union(got.files.keys).filter { clean.files[$0] != got.files[$0] }.sorted()
        XCTAssertEqual(got.digest, clean.digest, "\(what): files that differ from the uninterrupted run's: \(differing)", file: file, line: line)
    }

    /// The work area of the one stage that was killed in `store` (finished stages' are removed).
    func workArea(_ store: String) throws -> String {
        let work = dir + "/" + store + "/work"
        let keys = try FileManager.default.contentsOfDirectory(atPath: work).filter {
            FileManager.default.fileExists(atPath: work + "/" + $0 + "/checkpoints")
        }
        XCTAssertEqual(keys.count, 1, "one interrupted stage in \(work): \(keys)")
        return work + "/" + (try XCTUnwrap(keys.first))
    }

    /// Runs `spec` in a new `store`, killed at `killAt`; the killed stage's work area.
    func killed(_ spec: String, store: String, at killAt: String) throws -> String {
        let first = try tool(["run", spec, "--store", store], killAt: killAt)
        XCTAssertTrue(first.killed, "killed at \(killAt): \(first.text)")
        return try workArea(store)
    }

    /// Flips one bit near the end of a file (in a safetensors file, a weight, not the header).
    func flipBit(_ path: String) throws {
        var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        bytes[bytes.count - 3] ^= 0x10
        try Data(bytes).write(to: URL(fileURLWithPath: path))
    }

    /// Cuts a file to half its length.
    func truncate(_ path: String) throws {
        let size = try XCTUnwrap(try FileManager.default.attributesOfItem(atPath: path)[.size] as? Int)
        XCTAssertEqual(Glibc.truncate(path, off_t(size / 2)), 0, path)
    }

    // MARK: rl-train

    /// The tiny router fixture as backbone and both candidates, an SFT stage giving the router
    /// (two epochs), and rl-train on four training questions and one valid question, evaluated
    /// every `evalInterval` questions: `rl.json`. `params`: more rl-train parameters (JSON members).
    func writeRLSpec(evalInterval: Int = 4, _ params: String = "") throws {
        let f = ResumeExactnessTests.fixtures + "/router"
        try FileManager.default.createDirectory(atPath: dir + "/backbone", withIntermediateDirectories: true)
        for (from, to) in [("config.json", "config.json"), ("router_init.safetensors", "model.safetensors"), ("tokenizer.json", "tokenizer.json")] {
            try FileManager.default.copyItem(atPath: f + "/" + from, toPath: dir + "/backbone/" + to)
        }
        var baseline = "", sft: [String] = []
        for i in 0..<6 {
            let q = i % 2 == 0 ? "Which is older, city \(i) or city \(i + 1)?" : "In what year was company \(i) founded?"
            let best = i % 2 == 0 ? 3 : 0
            for a in 0..<4 { baseline += #"{"question": "\#(q)", "action_index": \#(a), "f1": \#(a == best ? 1 : 0)}"# + "\n" }
            sft.append(#"{"question": "\#(q)", "reward": 1, "output": "{\"teacher\": \#(best / 2),\"student\": \#(best % 2)}"}"#)
        }
        try writeFile(baseline, dir + "/baseline.jsonl")
        try writeFile("[" + sft.joined(separator: ",") + "]", dir + "/sft.json")
        let rows = try String(contentsOfFile: ResumeExactnessTests.root + "/dataset/train.jsonl", encoding: .utf8).split(separator: "\n").prefix(4)
        try writeFile(rows.joined(separator: "\n") + "\n", dir + "/train.jsonl")
        try writeFile(rows.prefix(1).joined(separator: "\n") + "\n", dir + "/valid.jsonl")
        try writeFile(#"""
        {"name": "rl", "resources": {"models": {"a": {"backend": "local", "path": "backbone"}, "b": {"backend": "local", "path": "backbone"}},
                                     "retriever": {"backend": "lexical"}},
         "stages": {
          "score_valid": {"type": "score", "inputs": {"samples": "baseline.jsonl"}, "params": {"candidates": 2}},
          "router": {"type": "sft-train", "inputs": {"sft": "sft.json", "backbone": "backbone", "valid_scores": "score_valid"},
                     "params": {"epochs": 2, "lr": 0.001, "batch_size": 3, "gradient_accumulation": 1}},
          "rl": {"type": "rl-train", "inputs": {"router": "router", "train": "train.jsonl", "valid": "valid.jsonl"},
                 "params": {"candidates": ["a", "b"], "budget": 1, "max_tokens": 12, "epochs": 3, "eval_interval": \#(evalInterval), "alpha": 0.5,
                            "lora_r": 2, "high_router_lr": 0.001, "low_router_lr": 0.001\#(params)}}}}
        """#, dir + "/rl.json")
    }

    /// The result of `rl.json` (`writeRLSpec()`'s) run uninterrupted, computed by the first test
    /// that needs it (inputs are named by content: the same in every test's directory).
    nonisolated(unsafe) static var cleanRL: (digest: String, files: [String: String])?  // tests run one at a time

    func cleanRLResult() throws -> (digest: String, files: [String: String]) {
        if let clean = ResumeExactnessTests.cleanRL { return clean }
        let run = try tool(["run", "rl.json", "--store", "clean"])
        XCTAssertEqual(run.status, 0, run.text)
        let clean = try result("rl", store: "clean")
        ResumeExactnessTests.cleanRL = clean
        return clean
    }

    /// Killed right after an evaluation's journal record, before its step's checkpoint (the
    /// replayed step used to add a second evaluation), also with the newest checkpoint truncated
    /// (resumed from an older one, which the log names): the uninterrupted run's digest.
    func testRLTrainKilledAtAnEvaluationsJournalWriteResumesToTheSameDigest() throws {
        try writeRLSpec()
        let clean = try cleanRLResult()
        // After the first evaluation (at 4 questions, an improvement: best/ written), before step 4's checkpoint.
        _ = try killed("rl.json", store: "killed", at: "evals/e@4")
        let resumed = try tool(["run", "rl.json", "--store", "killed"])
        XCTAssertEqual(resumed.status, 0, resumed.text)
        XCTAssertTrue(resumed.text.contains("resuming from the checkpoint of step 3"), resumed.text)
        try assertSameResult("rl", store: "killed", as: clean, "killed at evals/e@4")
        // After the second, with the newest checkpoint cut short: named in the log, skipped, the older one used.
        let work = try killed("rl.json", store: "truncated", at: "evals/e@8")
        try truncate(work + "/checkpoints/step-7.ckpt")
        let again = try tool(["run", "rl.json", "--store", "truncated"])
        XCTAssertEqual(again.status, 0, again.text)
        XCTAssertTrue(again.text.contains("checkpoint \(work)/checkpoints/step-7.ckpt is damaged (truncated: "), again.text)
        XCTAssertTrue(again.text.contains("resuming from the checkpoint of step 6"), again.text)
        try assertSameResult("rl", store: "truncated", as: clean, "killed at evals/e@8, its newest checkpoint truncated")
    }

    /// A checkpoint every 5 steps with early stopping after three evaluations without
    /// improvement (every 2 questions; the tiny models' valid F1 stays 0, so the clean run stops
    /// after 8 of 12 questions). Killed after the evaluation at 6 questions, it resumes from step
    /// 5: the replayed step neither adds a second evaluation (which stopped training 2 questions
    /// early) nor sees evaluations made after it.
    func testRLTrainWithSparseCheckpointsAndEarlyStoppingResumesToTheSameDigest() throws {
        try writeRLSpec(evalInterval: 2, #", "checkpoint_every": 5, "early_patience_evals": 3"#)
        let cleanRun = try tool(["run", "rl.json", "--store", "clean"])
        XCTAssertEqual(cleanRun.status, 0, cleanRun.text)
        let clean = try result("rl", store: "clean")
        let steps = try CLI.run(["show", "rl", "--file", "steps.jsonl", "--store", "clean"], in: dir).stdout
        XCTAssertEqual(steps.split(separator: "\n").count, 8, "early stopping after the fourth evaluation: \(steps)")
        let work = try killed("rl.json", store: "killed", at: "evals/e@6")
        XCTAssertTrue(FileManager.default.fileExists(atPath: work + "/checkpoints/step-5.ckpt"))
        let resumed = try tool(["run", "rl.json", "--store", "killed"])
        XCTAssertEqual(resumed.status, 0, resumed.text)
        XCTAssertTrue(resumed.text.contains("resuming from the checkpoint of step 5"), resumed.text)
        try assertSameResult("rl", store: "killed", as: clean, "checkpoint_every 5, killed at evals/e@6")
    }

    /// rl-train's kept router and generators damaged in the work area of a killed run: a flipped
    /// bit (a plain rerun) and a truncated file (`--force`) are reported with the directory's
    /// path, and the stage trains again and ends with the clean digest.
    func testDamagedKeptWeightsOfRLTrainAreReportedAndRebuilt() throws {
        try writeRLSpec()
        let clean = try cleanRLResult()
        for (store, damage, args) in [("flipped", "generators/generator0.safetensors changed since it was kept", [String]()),
                                      ("truncated", "model.safetensors is truncated: ", ["--force", "rl"])] {
            let work = try killed("rl.json", store: store, at: "evals/e@8")
            if store == "flipped" { try flipBit(work + "/best/generators/generator0.safetensors") } else { try truncate(work + "/best/model.safetensors") }
            let rerun = try tool(["run", "rl.json", "--store", store] + args)
            XCTAssertEqual(rerun.status, 0, rerun.text)
            XCTAssertTrue(rerun.text.contains("the kept weights \(work)/best are damaged (\(damage)"), rerun.text)
            try assertSameResult("rl", store: store, as: clean, "best/ \(store)")
        }
    }

    // MARK: sft-train

    /// A tiny random Llama (Python writes its weights) with the engine's Llama 3 tokenizer
    /// fixture, and a routing task it learns in about 6 epochs (comparison questions: action 3,
    /// bridge questions: action 0), so that an epoch beats best fixed and is kept: `sft.json`.
    func writeSFTSpec(epochs: Int) throws {
        let script = #"""
        import json, os, random, struct, sys
        root = sys.argv[1]
        os.makedirs("backbone", exist_ok=True)
        cfg = json.load(open(root + "/Tests/Fixtures/router/config.json"))
        cfg.update(vocab_size=1200, bos_token_id=0, eos_token_id=1)
        json.dump(cfg, open("backbone/config.json", "w"))
        open("backbone/tokenizer.json", "w").write(open(root + "/Tests/Fixtures/engine/tokenizer-llama3.json").read())
        rng, h, inter, v, kv = random.Random(5), 32, 64, 1200, 16
        shapes = {"model.embed_tokens.weight": [v, h], "lm_head.weight": [v, h], "model.norm.weight": [h]}
        for l in range(2):
            p = "model.layers.%d." % l
            shapes.update({p + "input_layernorm.weight": [h], p + "post_attention_layernorm.weight": [h],
                           p + "self_attn.q_proj.weight": [h, h], p + "self_attn.k_proj.weight": [kv, h], p + "self_attn.v_proj.weight": [kv, h],
                           p + "self_attn.o_proj.weight": [h, h], p + "mlp.gate_proj.weight": [inter, h], p + "mlp.up_proj.weight": [inter, h],
                           p + "mlp.down_proj.weight": [h, inter]})
        header, blobs, off = {}, [], 0
        for name in sorted(shapes):
            n = 1
            for d in shapes[name]: n *= d
            b = struct.pack("<%df" % n, *([1.0] * n if name.endswith("norm.weight") else [rng.gauss(0, 0.1) for _ in range(n)]))
            header[name] = {"dtype": "F32", "shape": shapes[name], "data_offsets": [off, off + len(b)]}
            blobs.append(b); off += len(b)
        hj = json.dumps(header).encode()
        hj += b" " * ((8 - len(hj) % 8) % 8)
        open("backbone/model.safetensors", "wb").write(struct.pack("<Q", len(hj)) + hj + b"".join(blobs))
        os.makedirs("prompts", exist_ok=True)
        open("prompts/system.txt", "w").write("Route the question.")
        open("prompts/user.txt", "w").write("Q: {question}\nModels:\n{candidates}\nReply {format}")
        names = ["Alice Smith", "Bob Jones", "Carol Brown", "Dan White", "Eve Black", "Frank Green", "Gina Gray", "Hugo Stone", "Ivy Lane"]
        def question(k):
            return "Which is older, %s or %s?" % (names[k % 9], names[(k + 4) % 9]) if k % 2 == 0 else "In what year was the city where %s was born founded?" % names[k % 9]
        train = [(question(k), 3 if k % 2 == 0 else 0) for k in range(12)]
        def baseline(rows, path):
            with open(path, "w") as f:
                for text, best in rows:
                    for a in range(4): f.write(json.dumps({"question": text, "action_index": a, "f1": 1 if a == best else 0}) + "\n")
        baseline(train, "train_baseline.jsonl"); baseline(train[:6], "valid_baseline.jsonl")
        json.dump([{"question": t, "reward": 1, "output": '{"teacher": %d,"student": %d}' % (b // 2, b % 2)} for t, b in train], open("sft_rows.json", "w"))
        """#
        try writeFile(script, dir + "/make.py")
        let python = try Python.run(script: dir + "/make.py", arguments: [ResumeExactnessTests.root], in: dir)
        XCTAssertEqual(python.status, 0, "make.py: \(python.stderr)")
        try writeFile(#"""
        {"name": "sft", "stages": {
          "score_valid": {"type": "score", "inputs": {"samples": "valid_baseline.jsonl"}, "params": {"candidates": 2}},
          "score_train": {"type": "score", "inputs": {"samples": "train_baseline.jsonl"}, "params": {"candidates": 2}},
          "router": {"type": "sft-train", "inputs": {"sft": "sft_rows.json", "backbone": "backbone", "valid_scores": "score_valid",
                                                     "train_scores": "score_train", "prompts": "prompts"},
                     "params": {"epochs": \#(epochs), "lr": 0.01, "schedule": "constant", "batch_size": 4, "gradient_accumulation": 1, "warmup_ratio": 0,
                                "candidate_names": ["small", "large"]}}}}
        """#, dir + "/sft.json")
    }

    /// sft-train's kept epoch damaged in the work area of a run killed after its last epoch's
    /// journal record: a flipped bit (a plain rerun; it used to give another digest silently)
    /// and a truncated file (`--force`; it used to fail every rerun) are reported with the
    /// directory's path, and the stage trains again to the clean digest.
    func testDamagedKeptWeightsOfSFTTrainAreReportedAndRebuilt() throws {
        let epochs = 8
        try writeSFTSpec(epochs: epochs)
        let cleanRun = try tool(["run", "sft.json", "--store", "clean"])
        XCTAssertEqual(cleanRun.status, 0, cleanRun.text)
        XCTAssertTrue(cleanRun.text.contains("beats best fixed"), "an epoch is kept: \(cleanRun.text)")
        let clean = try result("router", store: "clean")
        for (store, damage, args) in [("flipped", "model.safetensors changed since it was kept", [String]()),
                                      ("truncated", "model.safetensors is truncated: ", ["--force", "router"])] {
            let work = try killed("sft.json", store: store, at: "epochs/e\(epochs - 1)")
            XCTAssertTrue(FileManager.default.fileExists(atPath: work + "/best/model.safetensors"), "an epoch was kept before the kill")
            if store == "flipped" { try flipBit(work + "/best/model.safetensors") } else { try truncate(work + "/best/model.safetensors") }
            let rerun = try tool(["run", "sft.json", "--store", store] + args)
            XCTAssertEqual(rerun.status, 0, rerun.text)
            XCTAssertTrue(rerun.text.contains("the kept weights \(work)/best are damaged (\(damage)"), rerun.text)
            try assertSameResult("router", store: store, as: clean, "best/ \(store)")
        }
    }
}
