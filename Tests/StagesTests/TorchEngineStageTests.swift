import Foundation
import XCTest
import JSON
import LLM
import NN
@testable import Pipeline
@testable import Stages
import TestSupport

/// The learning stages on the torch engine (`"engine": "torch", "device": "cpu"`, float32)
/// against the same stages on the CPU engine: a micro `sft-train` (each step's loss within
/// 1e-4, the same kept epoch, the same routing of valid) and a micro `rl-train` (the same
/// routes, sampled replies and rewards at every step; the kept router and generators within
/// tolerance). The engine is all that differs: the method, seeds and dialogue are the same
/// Swift code. Needs `HAPS_TORCH_PYTHON` (`.ci/run` makes one), else skips.
final class TorchEngineStageTests: XCTestCase {
    static let onTorch = #", "engine": "torch", "device": "cpu""#

    func run(_ spec: PipelineSpec, stage: String, store: String) throws -> (run: RunSummary, output: String) {
        try runAndUnpack(spec, stage: stage, storeAt: store)
    }

    func assertClose(_ a: [Float], _ b: [Float], tolerance: Float, _ what: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(a.count, b.count, what, file: file, line: line)
        let scale = max(b.map { abs($0) }.max() ?? 0, 1e-6)
        let worst = zip(a, b).map { abs($0 - $1) }.max() ?? 0
        XCTAssertLessThanOrEqual(worst, tolerance * scale, "\(what): off by \(worst) at scale \(scale)", file: file, line: line)
    }

    func testSFTTrainOnTheTorchEngineMatchesTheCPUEngine() throws {
        _ = try TorchPython.require()
        let dir = try makeTempDir(self, "sft-torch")
        let cpu = try run(try SFTTrainTests.spec(dir, typed: true, epochs: 3), stage: "router", store: dir + "/cpu")
        let torchSpec = try SFTTrainTests.spec(dir, typed: true, epochs: 3, params: Self.onTorch)
        let torch = try run(torchSpec, stage: "router", store: dir + "/torch")
        XCTAssertNotEqual(cpu.run.result("router")?.key, torch.run.result("router")?.key, "the engine is in the key")

        let (ours, theirs) = (try jsonLines(torch.output + "/losses.jsonl"), try jsonLines(cpu.output + "/losses.jsonl"))
        XCTAssertEqual(ours.count, theirs.count)
        XCTAssertGreaterThan(theirs.count, 3)
        for (o, t) in zip(ours, theirs) {
            let (lo, lt) = (o["loss"]!.doubleValue!, t["loss"]!.doubleValue!)
            XCTAssertEqual(lo, lt, accuracy: 1e-4 * max(1, abs(lt)), "step \(t["step"]!.canonical)")
        }
        let selection = { (dir: String) in try JSONParser.parse(try FileIO.readString(dir + "/selection.json")) }
        XCTAssertEqual(try selection(torch.output)["epoch"], try selection(cpu.output)["epoch"], "the kept epoch")
        XCTAssertEqual(try selection(torch.output)["kept"], try selection(cpu.output)["kept"])
        // Every epoch's routing of valid and train, as each engine's router chose it, and the
        // kept routers' routes of the valid questions.
        let epochs = { (dir: String) in
            try jsonLines(dir + "/epochs.jsonl").map { e in ["valid_predictions", "train_predictions", "valid_f1_sum", "train_f1_sum"].map { e[$0] } }
        }
        XCTAssertEqual(try epochs(torch.output), try epochs(cpu.output))
        let valid = (0..<6).map { RoutingQuestion(SFTTrainTests.question($0 + 20, comparison: $0 % 2 == 0)) }
        let routes = { (dir: String) in try RouterArtifacts.load(directory: dir, engine: CPUEngine()).route(valid, embeddings: nil).map(\.action) }
        XCTAssertEqual(try routes(torch.output), try routes(cpu.output))

        // The run record says what the stage ran on.
        let record = torch.run.result("router")?.environment["engine"]
        XCTAssertEqual(record?["name"], "torch")
        XCTAssertNotNil(record?["versions"]?["torch"]?.stringValue)
    }

    /// The micro rl-train of RLTrainTests (makeTinyHAPS's models and questions in `dir`).
    func rlSpec(_ dir: String, _ extra: String, evalInterval: Int = 2) throws -> PipelineSpec {
        try PipelineSpec.parse(text: """
            {"name": "r", "resources": {"models": {"a": {"backend": "local", "path": "a"}, "b": {"backend": "local", "path": "b"}},
                                        "retriever": {"backend": "lexical"}},
             "stages": {"rl": {"type": "rl-train", "inputs": {"router": "router", "train": "train.jsonl", "valid": "valid.jsonl"},
               "params": {"candidates": ["a", "b"], "budget": 1, "epochs": 1, "eval_interval": \(evalInterval), "max_tokens": 6,
                          "high_router_lr": 0.001, "low_router_lr": 0.001, "alpha": 0.5, "lora_r": 2\(extra)}}}}
            """, file: "r.json", registry: HAPSStages.registry, baseDirectory: dir)
    }

    func testRLTrainOnTheTorchEngineMatchesTheCPUEngine() throws {
        _ = try TorchPython.require()
        let dir = try makeTempDir(self, "rl-torch")
        try makeTinyHAPS(dir)
        let cpu = try run(try rlSpec(dir, ""), stage: "rl", store: dir + "/cpu")
        let torch = try run(try rlSpec(dir, Self.onTorch), stage: "rl", store: dir + "/torch")
        XCTAssertEqual(torch.run.result("rl")?.environment["engine"]?["name"], "torch")
        XCTAssertEqual(cpu.run.result("rl")?.environment["engine"]?["name"], "cpu")

        // Each step: the same question, action and rewards (the sampled replies were the same),
        // log q and the advantage within 1e-4.
        let (ours, theirs) = (try jsonLines(torch.output + "/steps.jsonl"), try jsonLines(cpu.output + "/steps.jsonl"))
        XCTAssertEqual(ours.count, 4)
        XCTAssertEqual(ours.count, theirs.count)
        for (o, t) in zip(ours, theirs) {
            for field in ["question", "action", "rewards", "reward"] { XCTAssertEqual(o[field], t[field], "step \(t["step"]!.canonical): \(field)") }
            XCTAssertEqual(o["logq"]!.doubleValue!, t["logq"]!.doubleValue!, accuracy: 1e-4 * max(1, abs(t["logq"]!.doubleValue!)))
        }
        let evals = { (dir: String) in try jsonLines(dir + "/evals.jsonl").map { [$0["step"], $0["valid_f1_sum"], $0["improved"]] } }
        XCTAssertEqual(try evals(torch.output), try evals(cpu.output))

        try assertTheSameWeights(torch.output, cpu.output)
    }

    /// The kept router and generators of two rl-train outputs: the same within 1e-3 of scale
    /// (a few AdamW steps amplify float32 rounding differences of the two engines' sums).
    func assertTheSameWeights(_ ours: String, _ theirs: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let routers = try [ours, theirs].map { try DecoderModel(directory: $0).namedWeights }
        for (name, w) in routers[1] { assertClose(routers[0][name]?.data ?? [], w.data, tolerance: 1e-3, "router \(name)", file: file, line: line) }
        for g in 0..<2 {
            let path = "/generators/generator\(g).safetensors"
            let (o, t) = (try SafeTensorsFile(path: ours + path).all(), try SafeTensorsFile(path: theirs + path).all())
            XCTAssertEqual(Set(o.keys), Set(t.keys), file: file, line: line)
            for (name, w) in t { assertClose(o[name]?.data ?? [], w.data, tolerance: 1e-3, "generator \(g) \(name)", file: file, line: line) }
        }
    }

    /// Two questions an update (`questions_per_update`) and three dialogues a question
    /// (`samples`, with the group baseline): on the torch engine an update's six dialogues
    /// run at once, their calls meeting in the worker's requests (the worker's own count,
    /// with no evaluation run, whose questions' dialogues run at once anyway: fewer requests
    /// than calls), and each step is still the CPU engine's, which runs them one after
    /// another: the same actions and rewards, log q within 1e-4, the weights within 1e-3.
    func testAnUpdatesSampledDialoguesRunAtOnceAndMatchTheCPUEngine() throws {
        _ = try TorchPython.require()
        let dir = try makeTempDir(self, "rl-torch-samples")
        try makeTinyHAPS(dir)
        let samples = #", "samples": 3, "group_baseline": true, "questions_per_update": 2"#
        let cpu = try run(try rlSpec(dir, samples, evalInterval: 100), stage: "rl", store: dir + "/cpu")
        let times = dir + "/worker-times.txt"
        setenv("HAPS_TORCH_WORKER_TIMES", times, 1)
        defer { unsetenv("HAPS_TORCH_WORKER_TIMES") }
        let torch = try run(try rlSpec(dir, samples + Self.onTorch, evalInterval: 100), stage: "rl", store: dir + "/torch")
        let (ours, theirs) = (try jsonLines(torch.output + "/steps.jsonl"), try jsonLines(cpu.output + "/steps.jsonl"))
        XCTAssertEqual(ours.count, 4)
        XCTAssertEqual(ours.count, theirs.count)
        for (o, t) in zip(ours, theirs) {
            XCTAssertEqual(o["rewards"]?.arrayValue?.count, 3)
            for field in ["question", "update", "action", "rewards", "advantage"] { XCTAssertEqual(o[field], t[field], "step \(t["step"]!.canonical): \(field)") }
            XCTAssertEqual(o["logq"]!.doubleValue!, t["logq"]!.doubleValue!, accuracy: 1e-4 * max(1, abs(t["logq"]!.doubleValue!)))
        }
        let line = try FileIO.readString(times)
        let counts = try XCTUnwrap(line.firstMatch(of: /generate [0-9.]+ s \(([0-9]+), ([0-9]+) calls\)/), line)
        let (requests, calls) = (Int(counts.1)!, Int(counts.2)!)
        XCTAssertLessThan(requests, calls, "the dialogues' calls met in requests: \(line)")
        try assertTheSameWeights(torch.output, cpu.output)
    }

    /// A worker that dies in the middle of rl-train (at its third optimiser step, after two
    /// checkpoints) fails the stage with a message naming the operation and quoting the
    /// worker's log; the next run resumes from the last checkpoint and ends with the output of
    /// a run that was never interrupted, byte for byte.
    func testAWorkerThatDiesFailsTheStageAndARerunResumesToTheSameOutput() throws {
        _ = try TorchPython.require()
        let dir = try makeTempDir(self, "rl-torch-dies")
        try makeTinyHAPS(dir)
        let spec = try rlSpec(dir, Self.onTorch)
        let clean = try run(spec, stage: "rl", store: dir + "/clean")
        let store = try Store(root: dir + "/faulty")
        setenv("HAPS_TORCH_WORKER_DIE_AT", "step:3", 1)
        let failed = try Executor(spec: spec, store: store, options: RunOptions()).run()
        unsetenv("HAPS_TORCH_WORKER_DIE_AT")
        guard case .failed(let message)? = failed.result("rl")?.outcome else {
            return XCTFail("the stage should have failed: \(failed.results)")
        }
        XCTAssertTrue(message.contains("stopped answering during 'step'"), message)
        XCTAssertTrue(message.contains("dying on request 3 of 'step'"), "the worker's log is quoted: \(message)")
        let written = try FileIO.listFiles(under: dir + "/faulty/work").filter { $0.hasSuffix("/checkpoints/step-2/state.safetensors") }
        XCTAssertEqual(written.count, 1, "the worker wrote the checkpoint itself, as a sealed directory")
        let messages = SampleStageTests.Messages()
        let resumed = try Executor(spec: spec, store: store, options: RunOptions(), observer: messages).run()
        XCTAssertEqual(resumed.result("rl")?.outcome.label, "ran")
        XCTAssertTrue(messages.lines.contains("resuming from the checkpoint of step 2"), "\(messages.lines)")
        XCTAssertEqual(resumed.result("rl")?.output, clean.run.result("rl")?.output, "the resumed run's output is the uninterrupted one's")
    }

    func testTheEngineParametersAreCheckedBeforeAnythingRuns() throws {
        let dir = try makeTempDir(self, "engine-params")
        XCTAssertThrowsError(try SFTTrainTests.spec(dir, typed: true, epochs: 1, params: #", "device": "cuda""#)) { error in
            XCTAssertTrue("\(error)".contains("'device' is the torch engine's"), "\(error)")
        }
        // With the cpu engine named, a GPU pipeline's device and dtype are kept and ignored
        // (`--set STAGE.engine=cpu`).
        XCTAssertNoThrow(try SFTTrainTests.spec(dir, typed: true, epochs: 1, params: #", "engine": "cpu", "device": "cuda", "dtype": "bfloat16""#))
        XCTAssertThrowsError(try SFTTrainTests.spec(dir, typed: true, epochs: 1, params: #", "engine": "torch", "device": "gpu0""#)) { error in
            XCTAssertTrue("\(error)".contains("expected cpu, cuda or cuda:N, found \"gpu0\""), "\(error)")
        }
        XCTAssertThrowsError(try SFTTrainTests.spec(dir, typed: true, epochs: 1, params: #", "engine": "torhc""#)) { error in
            XCTAssertTrue("\(error)".contains("did you mean 'torch'"), "\(error)")
        }
        let spec = try SFTTrainTests.spec(dir, typed: true, epochs: 1, params: #", "engine": "torch", "device": {"router": "cuda:1", "default": "cpu"}, "dtype": "bfloat16""#)
        XCTAssertEqual(try EngineParams().placement(spec.stages["router"]!.paramsJSON["device"]), TorchEngine.Placement("cpu", byModel: ["router": "cuda:1"]))
    }
}
