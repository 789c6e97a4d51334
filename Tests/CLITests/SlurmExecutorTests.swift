import Foundation
import XCTest

/// The Slurm executor on a real Slurm: `scripts/test.sh` starts a one-node cluster on this
/// machine (`scripts/local-slurm.sh`: munged, slurmctld and slurmd with a generated
/// slurm.conf) and exports SLURM_CONF. Without one these tests are skipped, saying why; with
/// HAPS_REQUIRE_SLURM=1 (set by scripts/test.sh once the daemons are up) they fail instead.
final class SlurmExecutorTests: XCTestCase {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
    var dir = ""

    override func setUpWithError() throws {
        let env = ProcessInfo.processInfo.environment
        let ping = try? shell("scontrol ping")
        if ping?.status != 0 || !(ping?.text.contains("is UP") ?? false) {
            let why = "no Slurm cluster answers (SLURM_CONF=\(env["SLURM_CONF"] ?? "unset"); scontrol ping: \(ping?.text ?? "not installed")); scripts/test.sh starts one with scripts/local-slurm.sh"
            if env["HAPS_REQUIRE_SLURM"] == "1" { XCTFail(why); throw XCTSkip(why) }
            throw XCTSkip(why)
        }
        dir = try makeTempDirectory(self)
    }

    func shell(_ command: String) throws -> (status: Int32, text: String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/sh")
        p.arguments = ["-c", command + " 2>&1"]
        let out = Pipe()
        p.standardOutput = out
        try p.run()
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        return (p.terminationStatus, text)
    }

    /// The Slurm job ids a run submitted, from its "submitted as Slurm job N" lines.
    func submitted(_ text: String) -> [String] {
        text.split(separator: "\n").compactMap { line in line.range(of: "submitted as Slurm job ").map { String(line[$0.upperBound...]) } }
    }

    func jobState(_ id: String) throws -> String {
        let r = try shell("scontrol show job -o \(id)")
        guard let range = r.text.range(of: "JobState=") else { return "UNKNOWN: \(r.text)" }
        return String(r.text[range.upperBound...].prefix { $0 != " " })
    }

    /// A spec of one command stage, polled every 0.2 s.
    func writeSpec(_ run: String, name: String = "s.json") throws {
        let command = run.replacingOccurrences(of: "\"", with: "\\\"")
        try writeFile("""
            {"name": "cluster", "executor": {"type": "slurm", "poll_seconds": 0.2},
             "stages": {"s": {"type": "command", "params": {"run": "\(command)", "outputs": ["x.txt"]}}}}
            """, dir + "/" + name)
    }

    /// The demo pipeline as Slurm jobs gives every stage the digest a local run gives; its
    /// run record names each stage's job; a second run submits nothing.
    func testTheDemoPipelineRunsAsSlurmJobsWithTheLocalDigests() throws {
        let spec = dir + "/demo.json"
        var demo = try String(contentsOfFile: SlurmExecutorTests.root + "/pipelines/demo.json", encoding: .utf8)
        demo = demo.replacingOccurrences(of: #""seed": 43,"#, with: #""seed": 43, "executor": {"type": "slurm", "poll_seconds": 0.2},"#)
        try demo.write(toFile: spec, atomically: true, encoding: .utf8)
        let local = try CLI.run(["run", spec, "--store", dir + "/local", "--executor", "local", "--plain"], in: SlurmExecutorTests.root)
        XCTAssertEqual(local.status, 0, local.stderr)
        XCTAssertFalse(local.stderr.contains("Slurm job"), local.stderr)
        let cluster = try CLI.run(["run", spec, "--store", dir + "/cluster", "--plain"], in: SlurmExecutorTests.root)
        XCTAssertEqual(cluster.status, 0, cluster.stderr)
        XCTAssertEqual(submitted(cluster.stderr).count, 10, cluster.stderr)
        let a = try CLI.run(["status", spec, "--store", dir + "/local"], in: SlurmExecutorTests.root)
        let b = try CLI.run(["status", spec, "--store", dir + "/cluster"], in: SlurmExecutorTests.root)
        XCTAssertEqual(a.stdout.split(separator: "\n").dropFirst(), b.stdout.split(separator: "\n").dropFirst(), "the same digest for every stage")
        XCTAssertTrue(b.stdout.contains("evaluate") && b.stdout.contains("up to date"), b.stdout)
        let runs = try FileManager.default.contentsOfDirectory(atPath: dir + "/cluster/runs").filter { $0.contains("demo") }
        let record = try XCTUnwrap(runs.compactMap { try? JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir + "/cluster/runs/" + $0))) as? [String: Any] }
            .first { $0["executor"] as? String == "slurm" })
        let stages = try XCTUnwrap(record["stages"] as? [[String: Any]])
        XCTAssertEqual(stages.compactMap { $0["slurm_job"] as? String }.sorted(), submitted(cluster.stderr).sorted())
        let again = try CLI.run(["run", spec, "--store", dir + "/cluster", "--plain"], in: SlurmExecutorTests.root)
        XCTAssertEqual(again.status, 0, again.stderr)
        XCTAssertTrue(again.stderr.contains("demo: 10 cached"), again.stderr)
        XCTAssertEqual(submitted(again.stderr), [])
    }

    /// The quickstart at micro size as Slurm jobs (23 stages: training, sampling through the
    /// local engine, routers, joint RL, live evaluation): every stage gets the digest of a
    /// local run of the same spec.
    func testTheMicroQuickstartRunsAsSlurmJobsWithTheLocalDigests() throws {
        let dir = try QuickstartTests.directory(self)
        var text = try String(contentsOfFile: QuickstartTests.spec, encoding: .utf8)
        text = text.replacingOccurrences(of: #""name": "quickstart","#, with: #""name": "quickstart", "executor": {"type": "slurm", "poll_seconds": 0.2},"#)
        try text.write(toFile: dir + "/quickstart.json", atomically: true, encoding: .utf8)
        let local = try CLI.run(["run", "quickstart.json", "--store", "local", "--executor", "local", "--plain"] + QuickstartTests.micro, in: dir)
        XCTAssertEqual(local.status, 0, local.stderr)
        let cluster = try CLI.run(["run", "quickstart.json", "--plain"] + QuickstartTests.micro, in: dir)
        XCTAssertEqual(cluster.status, 0, cluster.stderr)
        XCTAssertTrue(cluster.stderr.contains("quickstart: 23 ran"), cluster.stderr)
        XCTAssertEqual(submitted(cluster.stderr).count, 23, cluster.stderr)
        let a = try CLI.run(["status", "quickstart.json", "--store", "local"] + QuickstartTests.micro, in: dir)
        let b = try CLI.run(["status", "quickstart.json"] + QuickstartTests.micro, in: dir)
        XCTAssertEqual(a.stdout.split(separator: "\n").dropFirst(), b.stdout.split(separator: "\n").dropFirst(), "the same digest for every stage")
    }

    /// A sweep goes through the Slurm executor unchanged: the shared stage runs once, each
    /// point's own stage once, each as a job.
    func testASweepRunsItsMergedStagesAsJobs() throws {
        try writeFile("""
            {"name": "sw", "executor": {"type": "slurm", "poll_seconds": 0.2}, "stages": {
              "a": {"type": "command", "params": {"run": "echo base > {outputs.x.txt}", "outputs": ["x.txt"]}},
              "b": {"type": "command", "inputs": {"a": "a"}, "params": {"run": "cat {inputs.a}/x.txt > {outputs.x.txt}; echo {params.k} >> {outputs.x.txt}",
                    "outputs": ["x.txt"], "params": {"k": 1}}}}}
            """, dir + "/sw.json")
        let r = try CLI.run(["sweep", "run", "sw.json", "--grid", "b.params.k=1,2,3", "--name", "k", "--plain"], in: dir)
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(submitted(r.stderr).count, 4, "a once, b per point: \(r.stderr)")
        let status = try CLI.run(["sweep", "status", "k"], in: dir)
        XCTAssertEqual(status.status, 0, status.stderr)
        XCTAssertFalse(status.stdout.contains("Slurm jobs in flight"), status.stdout)
    }

    /// A job that fails is reported with Slurm's state, its exit code and the end of its log.
    func testAFailedJobIsReportedWithItsStateAndLog() throws {
        try writeSpec("echo the disk is on fire >&2; exit 3")
        let r = try CLI.run(["run", "s.json", "--plain"], in: dir)
        XCTAssertEqual(r.status, 1, r.stderr)
        XCTAssertTrue(r.stderr.contains("ended FAILED (exit code 1:0"), r.stderr)
        XCTAssertTrue(r.stderr.contains("the disk is on fire"), r.stderr)
        XCTAssertTrue(r.stderr.contains("/jobs/"), r.stderr)
    }

    /// kill -9 of the driver leaves its job running, and `status` shows it with its Slurm id;
    /// the next run adopts that job instead of submitting the stage again, and finishes with
    /// its result.
    func testADriverStartedAgainAfterKill9AdoptsTheRunningJob() throws {
        try writeSpec("sleep 4; echo done > {outputs.x.txt}")
        let (driver, _, _) = try CLI.start(["run", "s.json", "--plain"], in: dir)
        let submittedFile = try waitForSubmission()
        let id = try String(contentsOfFile: submittedFile, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        kill(driver.processIdentifier, SIGKILL)
        driver.waitUntilExit()
        XCTAssertTrue(["PENDING", "RUNNING", "CONFIGURING"].contains(try jobState(id)), "the job outlives its driver")
        let status = try CLI.run(["status", "s.json"], in: dir)
        XCTAssertTrue(status.stdout.contains("as Slurm job \(id)"), status.stdout)
        let storeStatus = try CLI.run(["status"], in: dir)
        XCTAssertTrue(storeStatus.stdout.contains("Slurm jobs in flight:\n  cluster/s: "), storeStatus.stdout)
        let again = try CLI.run(["run", "s.json", "--plain"], in: dir)
        XCTAssertEqual(again.status, 0, again.stderr)
        XCTAssertTrue(again.stderr.contains("adopting Slurm job \(id)"), again.stderr)
        XCTAssertEqual(submitted(again.stderr), [], "nothing submitted twice")
        let show = try CLI.run(["show", "s", "--file", "x.txt"], in: dir)
        XCTAssertEqual(show.stdout, "done\n", show.stderr)
        XCTAssertEqual(try jobState(id), "COMPLETED")
    }

    /// Ctrl-C stops the run and cancels its jobs (scancel).
    func testCtrlCCancelsTheSubmittedJobs() throws {
        try writeSpec("sleep 60; touch {outputs.x.txt}")
        let (driver, out, err) = try CLI.start(["run", "s.json", "--plain"], in: dir)
        let submittedFile = try waitForSubmission()
        let id = try String(contentsOfFile: submittedFile, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        Thread.sleep(forTimeInterval: 0.5)
        kill(driver.processIdentifier, SIGINT)
        let r = CLI.finish(driver, out, err)
        XCTAssertEqual(r.status, 130, r.stderr)
        XCTAssertTrue(r.stderr.contains("cancelled"), r.stderr)
        var state = ""
        for _ in 0..<50 { state = try jobState(id); if state == "CANCELLED" { break }; Thread.sleep(forTimeInterval: 0.2) }
        XCTAssertEqual(state, "CANCELLED")
    }

    /// A job that Slurm requeues (as preemption does) while its training stage runs starts
    /// again from the stage's last checkpoint, and the driver waits it out: the result is the
    /// weights of an uninterrupted local run, bit for bit.
    func testARequeuedJobResumesItsStageFromTheCheckpoint() throws {
        let lines = (0..<32).map { i in "[" + (0..<10).map { String(2 + (i + $0) % 22) }.joined(separator: ",") + "]" }
        try lines.joined(separator: "\n").write(toFile: dir + "/tokens.jsonl", atomically: true, encoding: .utf8)
        try writeFile("""
            {"name": "t", "executor": {"type": "slurm", "poll_seconds": 0.2},
             "stages": {"lm": {"type": "train-decoder", "inputs": {"sequences": "tokens.jsonl"},
              "params": {"family": "qwen2", "vocab_size": 24, "hidden_size": 16, "intermediate_size": 32, "layers": 2, "heads": 4,
                         "kv_heads": 2, "steps": 1500, "batch_size": 4, "lr": 0.01, "init_std": 0.1, "checkpoint_every": 50,
                         "eos_token_id": 1}}}}
            """, dir + "/t.json")
        let local = try CLI.run(["run", "t.json", "--store", "local", "--executor", "local", "--plain"], in: dir)
        XCTAssertEqual(local.status, 0, local.stderr)
        let (driver, out, err) = try CLI.start(["run", "t.json", "--plain"], in: dir)
        let id = try String(contentsOfFile: try waitForSubmission(), encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        let work = dir + "/artifacts/work"
        var checkpointed = false
        for _ in 0..<600 where !checkpointed {
            let keys = (try? FileManager.default.contentsOfDirectory(atPath: work)) ?? []
            checkpointed = keys.contains { !((try? FileManager.default.contentsOfDirectory(atPath: "\(work)/\($0)/checkpoints")) ?? []).isEmpty }
            Thread.sleep(forTimeInterval: 0.05)
        }
        XCTAssertTrue(checkpointed, "a checkpoint within 30 s")
        XCTAssertEqual(try shell("scontrol requeue \(id)").status, 0)
        Thread.sleep(forTimeInterval: 1)
        _ = try shell("scontrol update JobId=\(id) StartTime=now")  // a requeued job waits ~2 minutes otherwise
        let r = CLI.finish(driver, out, err)
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stderr.contains("Slurm requeued job \(id) (restart 1)"), r.stderr)
        let logs = try FileManager.default.contentsOfDirectory(atPath: dir + "/artifacts/jobs").map { dir + "/artifacts/jobs/" + $0 + "/slurm-\(id).log" }
        XCTAssertTrue(logs.contains { readFile($0).contains("resuming from the checkpoint of step") }, logs.map(readFile).joined())
        func digest(_ store: String) throws -> String {
            let s = try CLI.run(["status", "t.json", "--store", store], in: dir)
            return String(s.stdout.split(separator: "\n").last ?? "")
        }
        XCTAssertEqual(try digest("local"), try digest("artifacts"))
        XCTAssertTrue(try digest("local").contains("up to date"))
    }

    /// The path of the `submitted` record of the (single) job under the test's store.
    func waitForSubmission() throws -> String {
        let jobs = dir + "/artifacts/jobs"
        for _ in 0..<300 {
            for key in (try? FileManager.default.contentsOfDirectory(atPath: jobs)) ?? [] where FileManager.default.fileExists(atPath: "\(jobs)/\(key)/submitted") {
                return "\(jobs)/\(key)/submitted"
            }
            Thread.sleep(forTimeInterval: 0.05)
        }
        struct NoJob: Error {}
        XCTFail("no job was submitted within 15 s")
        throw NoJob()
    }
}
