import Foundation
import XCTest
@testable import LLM
@testable import Pipeline
@testable import Stages
import TestSupport

/// The sample stage end to end against the loopback server (models "react-*" follow the
/// standard prompt set: search once, then answer Paris).
final class SampleStageTests: XCTestCase {
    nonisolated(unsafe) static var server: Result<FaultServer, any Error>?
    override class func setUp() { server = Result { try FaultServer() } }
    override class func tearDown() { try? server?.get().stop(); server = nil }
    override func setUpWithError() throws { _ = try SampleStageTests.server?.get() }

    var base: String { (try? SampleStageTests.server?.get().base) ?? "" }

    func calls(_ model: String) throws -> Int {
        let r = try HTTPClient().postJSON("\(base)/count/\(model)", body: Array("{}".utf8))
        return try JSONParser.parse(bytes: r.body)["count"]!.intValue!
    }

    func spec(dir: String, models: (String, String), port: Int? = nil, budget: Int = 1) throws -> PipelineSpec {
        let url = port.map { "http://127.0.0.1:\($0)/v1" } ?? "\(base)/v1"
        return try PipelineSpec.parse(text: """
            {"name": "s", "resources": {
               "models": {"a": {"backend": "openai", "url": "\(url)", "model": "org/\(models.0)", "price": {"prompt": 1.0, "completion": 2.0}},
                          "b": {"backend": "openai", "url": "\(url)", "model": "\(models.1)", "name": "bee", "price": {"prompt": 3.0, "completion": 4.0}}},
               "retriever": {"backend": "lexical"}},
             "stages": {"sample": {"type": "sample", "inputs": {"questions": "q.jsonl"}, "params": {"candidates": ["a", "b"], "budget": \(budget), "workers": 1}},
                        "score": {"type": "score", "inputs": {"samples": "sample"}}}}
            """, file: "s.json", registry: HAPSStages.registry, baseDirectory: dir)
    }

    func testSamplesEveryQuestionAndAssignmentThenReplaysFromTheStore() throws {
        let dir = NSTemporaryDirectory() + "sample-\(UUID().uuidString)"
        let q = { (id: String, answer: String) in
            #"{"_id": "\#(id)", "answer": "\#(answer)", "question": "Capital of France?", "supporting_facts": [["France", 0]], "context": [["France", ["France's capital is Paris."]], ["Italy", ["Rome is in Italy."]]], "type": "bridge", "level": "easy"}"#
        }
        try FileIO.writeAtomically(q("1", "Paris") + "\n" + q("2", "Rome") + "\n", to: dir + "/q.jsonl")
        let store = try Store(root: dir + "/store")
        let spec = try spec(dir: dir, models: ("react-a1", "react-b1"))
        let run = try Executor(spec: spec, store: store, options: RunOptions()).run()
        XCTAssertTrue(run.succeeded, "\(run.results)")
        let out = try store.materialize(try XCTUnwrap(run.result("sample")?.output))
        let rows = try JSONLines.read(out + "/baseline.jsonl").map(\.value)
        XCTAssertEqual(rows.map { "\($0["qid"]!.intValue!)/\($0["action_index"]!.intValue!)" }, ["0/0", "0/1", "0/2", "0/3", "1/0", "1/1", "1/2", "1/3"])
        XCTAssertEqual(rows.map { $0["f1"]!.doubleValue! }, [1, 1, 1, 1, 0, 0, 0, 0], "\(rows.map { $0["answer"]!.canonical }) \((try? FileIO.readString(out + "/transcripts.jsonl"))?.prefix(3000) ?? "")")
        XCTAssertEqual(rows[1]["teacher"]?.stringValue, "a", "a candidate is named by its resource")
        XCTAssertEqual(rows[1]["student"]?.stringValue, "bee", "or by the resource's name field")
        let baselineLines = try FileIO.readString(out + "/baseline.jsonl").split(separator: "\n")
        XCTAssertTrue(baselineLines[0].hasPrefix(#"{"qid": 0, "action_index": 0, "question": "Capital of France?", "teacher": "a""#))
        // As the reference writes them: F1 1 as a Python float, a zero metric as its ZERO_METRIC int.
        XCTAssertTrue(baselineLines[0].hasSuffix(#""answer": "Paris", "ground_truth": "Paris", "f1": 1.0, "precision": 1.0, "recall": 1.0, "em": 1}"#), String(baselineLines[0]))
        XCTAssertTrue(baselineLines[4].hasSuffix(#""ground_truth": "Rome", "f1": 0, "precision": 0, "recall": 0, "em": 0}"#), String(baselineLines[4]))
        // Token usage and the models' prices give every row a cost, and the score report a cost figure.
        let sample0 = try JSONLines.read(out + "/samples.jsonl")[0].value
        let t = { (k: String) in sample0[k]!.doubleValue! }
        XCTAssertEqual(t("cost"), (t("teacher_prompt_tokens") * 1 + t("teacher_completion_tokens") * 2 + t("student_prompt_tokens") * 1
                                   + t("student_completion_tokens") * 2) / 1e6, accuracy: 1e-15, "action 0: both roles on model a")
        XCTAssertGreaterThan(t("cost"), 0)
        let summary = try FileIO.readString(try store.materialize(try XCTUnwrap(run.result("score")?.output)) + "/summary.txt")
        XCTAssertTrue(summary.contains("cost per question (USD): 0: 0.000"), summary.debugDescription)
        XCTAssertTrue(summary.contains("\n1       teacher a, student bee "), "the score names the candidates as the rows do: \(summary)")
        let transcript = try JSONLines.read(out + "/transcripts.jsonl")[0].value
        XCTAssertEqual(transcript["turns"]?.arrayValue?.count, 5, "think, summarize, teacher think, teacher summarize, final think")
        let made = try calls("org/react-a1") + calls("react-b1")
        XCTAssertGreaterThan(made, 0)
        XCTAssertLessThan(made, 40, "identical calls across assignments are asked once")

        // Recomputing the stage asks the servers nothing: every call is a recorded fact.
        var options = RunOptions()
        options.force = ["sample"]
        let again = try Executor(spec: spec, store: store, options: options).run()
        XCTAssertEqual(again.result("sample")?.outcome, .ran)
        XCTAssertEqual(again.result("sample")?.output, run.result("sample")?.output)
        XCTAssertEqual(try calls("org/react-a1") + calls("react-b1"), made)
        XCTAssertEqual(again.result("score")?.outcome, .cached, "same samples, same score: early cutoff")
    }

    final class Messages: RunObserver, @unchecked Sendable {
        let lock = NSLock()
        var lines: [String] = []
        func stageStarted(_ stage: String, reasons: [String], progress: ProgressReporter) {}
        func stageFinished(_ result: StageResult) {}
        func message(_ stage: String?, _ text: String) { lock.withLock { lines.append(text) } }
        func runFinished() {}
    }

    /// Raising the budget pays only for the new turns: the first turns are replayed.
    func testRaisingTheBudgetPaysOnlyForNewTurns() throws {
        let dir = NSTemporaryDirectory() + "sample-\(UUID().uuidString)"
        try FileIO.writeAtomically(#"{"_id": "1", "answer": "Paris", "question": "Capital?", "supporting_facts": [], "context": [["F", ["Paris."]]]}"# + "\n", to: dir + "/q.jsonl")
        let store = try Store(root: dir + "/store")
        _ = try Executor(spec: try spec(dir: dir, models: ("react-c1", "react-d1"), budget: 1), store: store, options: RunOptions()).run()
        let before = try calls("org/react-c1") + calls("react-d1")
        let messages = Messages()
        let run = try Executor(spec: try spec(dir: dir, models: ("react-c1", "react-d1"), budget: 2), store: store, options: RunOptions(),
                               observer: messages).run()
        XCTAssertTrue(run.succeeded, "\(run.results)")
        let made = try calls("org/react-c1") + calls("react-d1") - before
        let line = try XCTUnwrap(messages.lines.first { $0.contains("model calls made") }, "\(messages.lines)")
        XCTAssertTrue(line.contains("; \(made) model calls made, "), line)
        let replayed = Int(line.components(separatedBy: " made, ")[1].components(separatedBy: " replayed")[0])!
        XCTAssertGreaterThan(replayed, 0, "the shared first turns are replayed")
        XCTAssertGreaterThan(made, 0, "the new turns are asked")
    }

    func testAbsentServersFailFastNamingEveryEndpoint() throws {
        let dir = NSTemporaryDirectory() + "sample-\(UUID().uuidString)"
        try FileIO.writeAtomically(#"{"_id": "1", "answer": "x", "question": "q", "supporting_facts": [], "context": []}"# + "\n", to: dir + "/q.jsonl")
        let store = try Store(root: dir + "/store")
        let t0 = Date()
        let run = try Executor(spec: try spec(dir: dir, models: ("m1", "m2"), port: 9), store: store, options: RunOptions()).run()
        XCTAssertLessThan(Date().timeIntervalSince(t0), 3)
        guard case .failed(let message)? = run.result("sample")?.outcome else { return XCTFail("\(run.results)") }
        XCTAssertEqual(message, """
            resource 'servers': 2 endpoints do not answer:
              models.a: nothing answers at http://127.0.0.1:9/v1
                start it: vllm serve org/m1 --port 9
              models.b: nothing answers at http://127.0.0.1:9/v1
                start it: vllm serve m2 --port 9
            """)
    }
}

/// The preflight probes the protocol, not only the port: a program that is not an OpenAI
/// server (here Python's file server) is named with what it answered.
final class PreflightProbeTests: XCTestCase {
    func testAPortThatAnswersAsSomethingElseIsNamed() throws {
        let dir = NSTemporaryDirectory() + "probe-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let s = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var addr = sockaddr_in(); addr.sin_family = sa_family_t(AF_INET); addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        _ = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(s, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(s, $0, &len) } }
        let port = Int(UInt16(bigEndian: addr.sin_port)); close(s)
        // Python's file server, without the reverse DNS lookup its server_bind makes (seconds
        // without a network, between binding the port and answering).
        let server = try Python.start("""
            import http.server, socketserver, sys, functools
            class S(http.server.HTTPServer):
                def server_bind(self):
                    socketserver.TCPServer.server_bind(self)
                    self.server_name, self.server_port = "localhost", self.server_address[1]
            S(("127.0.0.1", int(sys.argv[1])), functools.partial(http.server.SimpleHTTPRequestHandler, directory=sys.argv[2])).serve_forever()
            """, arguments: [String(port), dir])
        defer { server.stop() }
        // Until it answers HTTP at all (a loaded machine may take seconds to start Python).
        let started = Date()
        while Date().timeIntervalSince(started) < 60, Backends.notOpenAI("http://127.0.0.1:\(port)/v1")?.contains("HTTP 404") != true {
            Thread.sleep(forTimeInterval: 0.1)
        }
        let bad = Backends.unreachable(["models.a": ["backend": "openai", "url": .string("http://127.0.0.1:\(port)/v1"), "model": "m"]])
        XCTAssertEqual(bad.count, 1, "\(bad)")
        XCTAssertTrue(bad.first?.hasPrefix("models.a: what answers at http://127.0.0.1:\(port)/v1 is not an OpenAI-compatible server (GET http://127.0.0.1:\(port)/v1/models: HTTP 404") ?? false, "\(bad)")
        XCTAssertTrue(bad.first?.contains("start it: vllm serve m --port \(port)") ?? false, "\(bad)")
    }
}

/// Identical calls made at the same moment by different dialogues reach the model once.
final class MemoizedChatModelTests: XCTestCase {
    final class SlowModel: ChatModel, @unchecked Sendable {
        let lock = NSLock()
        var calls = 0
        var failFirst: Bool
        init(failFirst: Bool) { self.failFirst = failFirst }
        var identity: String { "slow" }
        struct Refused: Error {}
        func chat(_ messages: [ChatMessage], settings: GenerationSettings) throws -> ChatReply {
            let fail: Bool = lock.withLock { calls += 1; defer { failFirst = false }; return failFirst }
            usleep(100_000)
            if fail { throw Refused() }
            return ChatReply(text: "echo " + messages[0].content, promptTokens: 2, completionTokens: 1, finishReason: "stop")
        }
    }

    func ask(_ model: MemoizedChatModel, threads: Int, text: String) -> [String?] {
        final class Results: @unchecked Sendable { let lock = NSLock(); var texts: [String?] = [] }
        let results = Results()
        results.texts = Array(repeating: nil, count: threads)
        DispatchQueue.concurrentPerform(iterations: threads) { i in
            let r = try? model.chat([ChatMessage(role: "user", content: text)], settings: GenerationSettings())
            results.lock.withLock { results.texts[i] = r?.text }
        }
        return results.texts
    }

    func testTheKeySeparatesEveryField() {
        func key(_ m: [(String, String)], _ s: GenerationSettings = GenerationSettings(), id: String = "m", adapter: String? = nil) -> Digest {
            MemoizedChatModel.key(identity: id, adapter: adapter, messages: m.map { ChatMessage(role: $0.0, content: $0.1) }, settings: s)
        }
        let base = key([("user", "ab"), ("assistant", "c")])
        XCTAssertEqual(base, key([("user", "ab"), ("assistant", "c")]))
        let sampled = GenerationSettings(temperature: 0.7)
        let others = [key([("user", "a"), ("assistant", "bc")]), key([("user", "abc")]), key([("user", "ab"), ("assistant", "c")], id: "n"),
                      key([("user", "ab"), ("assistant", "c")], sampled),
                      key([("user", "ab"), ("assistant", "c")], GenerationSettings(temperature: 0.7, seed: 44)),
                      key([("user", "ab"), ("assistant", "c")], GenerationSettings(stop: ["messages 2"])),
                      key([("user", "ab"), ("assistant", "c")], adapter: "0123abcd"),
                      key([("user", "ab"), ("assistant", "c")], adapter: "4567ef01"),
                      key([("user", "ab"), ("assistant", "c")], sampled, adapter: "0123abcd")]
        XCTAssertEqual(Set(others + [base]).count, others.count + 1)
    }

    /// A greedy reply does not depend on the seed: a run with another stage seed replays it.
    func testGreedyCallsIgnoreTheSeedAndSampledCallsDoNot() {
        func key(_ s: GenerationSettings) -> Digest { MemoizedChatModel.key(identity: "m", messages: [ChatMessage(role: "user", content: "q")], settings: s) }
        XCTAssertEqual(key(GenerationSettings(seed: 43)), key(GenerationSettings(seed: 7)))
        XCTAssertEqual(key(GenerationSettings(seed: 43)), key(GenerationSettings(seed: nil)))
        XCTAssertNotEqual(key(GenerationSettings(temperature: 1, seed: 43)), key(GenerationSettings(temperature: 1, seed: 7)))
    }

    /// Records made before the LoRA field existed stay valid: a base-model key is the v1 digest
    /// of (identity, settings, stop, messages), computed here independently.
    func testBaseModelKeysAreUnchangedByTheAdapterField() {
        var h = DigestBuilder()
        for f in ["haps-pipe call v1", "m", "temperature=0.0 top_p=1.0 max_tokens=256 seed=43", "stop 0", "messages 1", "user", "q"] {
            var n = UInt64(f.utf8.count).littleEndian
            withUnsafeBytes(of: &n) { h.update($0) }
            Array(f.utf8).withUnsafeBytes { h.update($0) }
        }
        XCTAssertEqual(MemoizedChatModel.key(identity: "m", messages: [ChatMessage(role: "user", content: "q")], settings: GenerationSettings()), h.finalize())
    }

    /// A model under a LoRA update (here: a wrapper reporting one) never replays the base model's call.
    func testCallsUnderAnAdapterDoNotReplayBaseCalls() throws {
        struct Adapted: ChatModel {
            let base: any ChatModel
            var identity: String { base.identity }
            var adapter: String? { "feedbeef" }
            func chat(_ messages: [ChatMessage], settings: GenerationSettings) throws -> ChatReply { try base.chat(messages, settings: settings) }
        }
        let store = try Store(root: NSTemporaryDirectory() + "memo-\(UUID().uuidString)")
        let slow = SlowModel(failFirst: false)
        _ = ask(MemoizedChatModel(slow, store: store, counter: CallCounter()), threads: 1, text: "same")
        XCTAssertEqual(slow.calls, 1)
        let counter = CallCounter()
        XCTAssertEqual(ask(MemoizedChatModel(Adapted(base: slow), store: store, counter: counter), threads: 1, text: "same"), ["echo same"])
        XCTAssertEqual(slow.calls, 2, "the adapted call was made, not replayed")
        XCTAssertEqual(counter.replayed, 0)
        _ = ask(MemoizedChatModel(Adapted(base: slow), store: store, counter: counter), threads: 1, text: "same")
        XCTAssertEqual(slow.calls, 2, "and is itself replayed under the same update")
    }

    func testConcurrentIdenticalCallsAreMadeOnce() throws {
        let store = try Store(root: NSTemporaryDirectory() + "memo-\(UUID().uuidString)")
        let base = SlowModel(failFirst: false), counter = CallCounter()
        let model = MemoizedChatModel(base, store: store, counter: counter)
        XCTAssertEqual(ask(model, threads: 8, text: "same"), Array(repeating: "echo same", count: 8))
        XCTAssertEqual(base.calls, 1)
        XCTAssertEqual(counter.made, 1)
        XCTAssertEqual(counter.replayed, 7)
    }

    func testWhenTheSharedCallFailsAWaiterMakesItAgain() throws {
        let store = try Store(root: NSTemporaryDirectory() + "memo-\(UUID().uuidString)")
        let base = SlowModel(failFirst: true)
        let model = MemoizedChatModel(base, store: store, counter: CallCounter())
        let out = ask(model, threads: 4, text: "flaky")
        XCTAssertEqual(out.filter { $0 == nil }.count, 1, "only the thread whose call failed sees the failure")
        XCTAssertEqual(out.filter { $0 == "echo flaky" }.count, 3)
        XCTAssertEqual(base.calls, 2)
    }
}
