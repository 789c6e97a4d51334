import Foundation
import XCTest
@testable import LLM
import NN
import JSON
import TestSupport

/// `haps-pipe serve` (the haps-pipe-serve program) with real clients: our own openai, haps and
/// http backends, and the official `openai` Python package.
final class ServeTests: XCTestCase {
    static var binary: String {
        if let b = ProcessInfo.processInfo.environment["HAPS_PIPE_SERVE_BIN"] { return b }
        let runner = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        let bundle = Bundle(for: ServeTests.self).bundleURL
        return [runner.deletingLastPathComponent(), bundle, bundle.deletingLastPathComponent()]
            .map { $0.appendingPathComponent("haps-pipe-serve").path }
            .first { FileManager.default.isExecutableFile(atPath: $0) } ?? "haps-pipe-serve"
    }

    final class Server: @unchecked Sendable {
        let process = Process()
        let log: String
        var port = 0
        var base: String { "http://127.0.0.1:\(port)" }
        /// Starts the server; `fileLimit` runs it under `ulimit -n` (soft and hard) of that many files.
        init(_ args: [String], environment: [String: String] = [:], fileLimit: Int? = nil) throws {
            log = NSTemporaryDirectory() + "serve-\(UUID().uuidString).log"
            FileManager.default.createFile(atPath: log, contents: nil)
            let args = args + ["--port", "0", "--threads", "1"]
            if let fileLimit {
                process.executableURL = URL(fileURLWithPath: "/bin/sh")
                process.arguments = ["-c", "ulimit -n \(fileLimit) && exec \"$0\" \"$@\"", ServeTests.binary] + args
            } else {
                process.executableURL = URL(fileURLWithPath: ServeTests.binary)
                process.arguments = args
            }
            process.environment = ProcessInfo.processInfo.environment.merging(environment) { _, b in b }
            let out = Pipe()
            process.standardOutput = out
            process.standardInput = Pipe()
            process.standardError = FileHandle(forWritingAtPath: log)
            try process.run()
            port = try ServerAddress.read(out, log: log).port
        }
        func stop() { if process.isRunning { process.interrupt(); process.waitUntilExit() } }
        deinit { if process.isRunning { process.terminate() } }
    }

    nonisolated(unsafe) static var modelDirectory: String?
    func model() throws -> String {
        if let d = ServeTests.modelDirectory { return d }
        let d = try LocalChatModelTests.makeModel()
        ServeTests.modelDirectory = d
        return d
    }

    func testOurOwnClientsGetWhatTheEngineGives() throws {
        let dir = try model()
        let server = try Server(["--model", dir, "--name", "tiny", "--retriever", "lexical"])
        defer { server.stop() }
        let local = try LocalChatModel(directory: dir, name: "tiny")
        let settings = GenerationSettings(maxTokens: 12)
        let messages = [ChatMessage.user("Where is the Eiffel Tower?")]
        let expected = try local.chat(messages, settings: settings)

        let openai = try OpenAIChatModel(urls: [server.base + "/v1"], model: "tiny")
        let viaOpenAI = try openai.chat(messages, settings: settings)
        XCTAssertEqual(viaOpenAI.text, expected.text)
        XCTAssertEqual(viaOpenAI.promptTokens, expected.promptTokens)
        XCTAssertEqual(viaOpenAI.completionTokens, expected.completionTokens)
        XCTAssertEqual(viaOpenAI.finishReason, expected.finishReason)

        let haps = try HAPSChatModel(url: server.base + "/", name: "tiny")
        XCTAssertEqual(try haps.chat(messages, settings: settings).text, expected.text.trimmingSpaces)

        let retriever = try HTTPRetriever(url: server.base + "/retrieve")
        let ps = ["Paris is the capital of France.", "Reggie Jackson played baseball.", "Jackson is a city."]
        XCTAssertEqual(try retriever.retrieve(entity: "Reggie Jackson", paragraphs: ps), try LexicalRetriever().retrieve(entity: "Reggie Jackson", paragraphs: ps))
        XCTAssertThrowsError(try retriever.retrieve(entity: "x", paragraphs: [])) { e in
            XCTAssertTrue("\(e)".contains("HTTP 400: 'data' is an empty list"), "\(e)")
        }

        // Concurrent requests are batched, and each answer is what it would be alone.
        let prompts = (0..<6).map { "Question number \($0)?" }
        let alone = try prompts.map { try local.chat([.user($0)], settings: settings).text }
        final class Box: @unchecked Sendable { var texts = [String?](repeating: nil, count: 6); let lock = NSLock() }
        let box = Box()
        let group = DispatchGroup()
        for i in 0..<6 {
            group.enter()
            Thread.detachNewThread {
                let t = try? openai.chat([.user(prompts[i])], settings: settings).text
                box.lock.withLock { box.texts[i] = t }
                group.leave()
            }
        }
        group.wait()
        XCTAssertEqual(box.texts, alone)

        let models = try JSONParser.parse(bytes: try HTTPClient().get(server.base + "/v1/models").body)
        XCTAssertEqual(models["data"]?.arrayValue?.first?["id"]?.stringValue, "tiny")
        server.stop()
        XCTAssertEqual(server.process.terminationStatus, 0)
        let log = try String(contentsOfFile: server.log, encoding: .utf8)
        XCTAssertTrue(log.contains("POST /v1/chat/completions 200"), log)
        XCTAssertTrue(log.contains("POST /retrieve 400"), log)
    }

    /// `--engine torch` (CPU torch, float32, as CI has it): the same answers as this program's
    /// engine, greedy and sampled with a seed, alone and concurrently.
    func testTheTorchEngineServesWhatTheCPUEngineServes() throws {
        let python = try TorchPython.require()
        let dir = try model()
        let server = try Server(["--model", dir, "--name", "tiny", "--engine", "torch", "--device", "cpu", "--dtype", "float32"],
                                environment: ["HAPS_TORCH_PYTHON": python, "HAPS_TORCH_WORKER": TorchPython.worker])
        defer { server.stop() }
        let local = try LocalChatModel(directory: dir, name: "tiny")
        let openai = try OpenAIChatModel(urls: [server.base + "/v1"], model: "tiny")
        for settings in [GenerationSettings(maxTokens: 12), GenerationSettings(temperature: 0.9, topP: 0.8, maxTokens: 10, seed: 7)] {
            let messages = [ChatMessage.user("Where is the Eiffel Tower?")]
            let expected = try local.chat(messages, settings: settings)
            let got = try openai.chat(messages, settings: settings)
            XCTAssertEqual(got.text, expected.text)
            XCTAssertEqual(got.completionTokens, expected.completionTokens)
            XCTAssertEqual(got.finishReason, expected.finishReason)
        }
        let settings = GenerationSettings(maxTokens: 8)
        let prompts = (0..<6).map { "Question number \($0)?" }
        let alone = try prompts.map { try local.chat([.user($0)], settings: settings).text }
        final class Box: @unchecked Sendable { var texts = [String?](repeating: nil, count: 6); let lock = NSLock() }
        let box = Box()
        DispatchQueue.concurrentPerform(iterations: 6) { i in
            let t = try? openai.chat([.user(prompts[i])], settings: settings).text
            box.lock.withLock { box.texts[i] = t }
        }
        XCTAssertEqual(box.texts, alone)
        server.stop()
        XCTAssertEqual(server.process.terminationStatus, 0)
    }

    func testLimitsAndErrorsInOpenAIsShape() throws {
        let server = try Server(["--model", try model(), "--name", "tiny", "--max-body-bytes", "2048", "--max-tokens-limit", "64",
                                 "--api-key-env", "SERVE_TEST_KEY"], environment: ["SERVE_TEST_KEY": "sesame"])
        defer { server.stop() }
        let client = try HTTPClient(retry: RetryPolicy(maxAttempts: 1))
        func post(_ body: String, key: String? = "sesame") throws(HTTPError) -> HTTPResponse {
            try client.postJSON(server.base + "/v1/chat/completions", body: Array(body.utf8), headers: key.map { ["Authorization": "Bearer \($0)"] } ?? [:])
        }
        func failure(_ body: String, key: String? = "sesame") -> HTTPError? {
            do { _ = try post(body, key: key); return nil } catch { return error }
        }
        let ok = try post(#"{"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 3}"#)
        XCTAssertEqual(ok.status, 200)
        XCTAssertEqual(try JSONParser.parse(bytes: ok.body)["usage"]?["completion_tokens"]?.intValue.map { $0 <= 3 }, true)
        XCTAssertEqual(failure(#"{"messages": []}"#, key: nil)?.code, .status(401))
        XCTAssertEqual(failure(#"{"messages": []}"#, key: "wrong")?.code, .status(401))
        let wrongModel = failure(#"{"model": "gpt-9", "messages": [{"role": "user", "content": "hi"}]}"#)
        XCTAssertEqual(wrongModel?.code, .status(404))
        XCTAssertTrue(wrongModel?.message.contains("The model 'gpt-9' does not exist; this server has 'tiny'.") == true, "\(String(describing: wrongModel))")
        XCTAssertEqual(failure(#"{"messages": [{"role": "user", "content": "hi"}], "max_tokens": 1000}"#)?.message,
                       "HTTP 400: max_tokens must be between 1 and 64")
        XCTAssertEqual(failure(#"{"messages": [{"role": "user"}]}"#)?.message, "HTTP 400: messages[0] needs a string 'role' and a string 'content'")
        XCTAssertEqual(failure(#"{"messages": [{"role": "user", "content": "\#(String(repeating: "x", count: 3000))"}]}"#)?.code, .status(413))
        XCTAssertEqual(failure("not json")?.code, .status(400))
        XCTAssertTrue(server.process.isRunning, "bad requests never bring the server down")
    }

    /// The probes of issue 14: field types, content types, the context length, an exposed server.
    func testBadRequestsAreRefusedNotReinterpreted() throws {
        let server = try Server(["--model", try model(), "--name", "tiny", "--host", "0.0.0.0"])
        defer { server.stop() }
        let client = try HTTPClient(retry: RetryPolicy(maxAttempts: 1))
        func failure(_ path: String, _ body: String, headers: [String: String] = [:]) -> HTTPError? {
            do { _ = try client.postJSON(server.base + path, body: Array(body.utf8), headers: headers); return nil } catch { return error }
        }
        let hi = #""messages": [{"role": "user", "content": "hi"}]"#
        for bad in ["1e18", "2.5", #""4""#, "true"] {
            let e = failure("/v1/chat/completions", "{\(hi), \"max_tokens\": \(bad)}")
            XCTAssertEqual(e?.code, .status(400), "max_tokens \(bad)")
        }
        XCTAssertEqual(failure("/v1/chat/completions", "{\(hi), \"max_tokens\": 1e400}")?.code, .status(400))
        XCTAssertEqual(failure("/", "{\(hi), \"config\": {\"max_tokens\": 3, \"n\": 5}}")?.code, .status(400))
        let unknown = failure("/", "{\(hi), \"config\": {\"max_tokens\": 3, \"temprature\": 0.5}}")
        XCTAssertEqual(unknown?.code, .status(400))
        XCTAssertTrue(unknown?.message.contains("unknown config field 'temprature'") == true, "\(String(describing: unknown))")
        XCTAssertNil(failure("/", "{\(hi), \"config\": {\"max_tokens\": 3, \"n\": 1, \"temperature\": 0, \"top_p\": 1}}"))
        let type = failure("/v1/chat/completions", "{\(hi)}", headers: ["Content-Type": "text/plain"])
        XCTAssertEqual(type?.code, .status(415))
        // A prompt past the model's context is refused at once (OpenAI's shape), and a short
        // request sent meanwhile is not held up by it.
        let long = String(repeating: "hello world ", count: 3000)
        let started = Date()
        let tooLong = failure("/v1/chat/completions", #"{"messages": [{"role": "user", "content": "\#(long)"}], "max_tokens": 2}"#)
        XCTAssertEqual(tooLong?.code, .status(400))
        XCTAssertTrue(tooLong?.message.contains("maximum context length is 4096 tokens") == true, "\(String(describing: tooLong))")
        XCTAssertLessThan(Date().timeIntervalSince(started), 5, "refused before any compute")
        server.stop()
        let log = try String(contentsOfFile: server.log, encoding: .utf8)
        XCTAssertTrue(log.contains("warning: listening on 0.0.0.0 without --api-key-env"), log)
    }

    func testABusyServerAnswers429() throws {
        let server = try Server(["--model", try model(), "--name", "tiny", "--max-queue", "1", "--max-batch", "1"])
        defer { server.stop() }
        final class Box: @unchecked Sendable { var statuses: [Int] = []; let lock = NSLock() }
        let box = Box()
        let group = DispatchGroup()
        for _ in 0..<8 {
            group.enter()
            Thread.detachNewThread {
                let client = try? HTTPClient(retry: RetryPolicy(maxAttempts: 1))
                let body = #"{"messages": [{"role": "user", "content": "a long answer please"}], "max_tokens": 1500, "temperature": 1, "seed": 1}"#
                var status = 0
                do { status = try client?.postJSON(server.base + "/v1/chat/completions", body: Array(body.utf8)).status ?? 0 } catch let e as HTTPError {
                    if case .status(let s) = e.code { status = s }
                } catch {}
                box.lock.withLock { box.statuses.append(status) }
                group.leave()
            }
        }
        group.wait()
        XCTAssertTrue(box.statuses.contains(200), "\(box.statuses)")
        XCTAssertTrue(box.statuses.contains(429), "\(box.statuses)")
        XCTAssertTrue(box.statuses.allSatisfy { $0 == 200 || $0 == 429 }, "\(box.statuses)")
    }

    /// Ctrl-C while a request is in flight: the server stops listening, finishes that request,
    /// then exits 0. Deterministic, not timed: the request's body is completed only after the
    /// server has shut its listener (so the answer surely comes after Ctrl-C).
    func testCtrlCFinishesTheRequestInFlight() throws {
        let server = try Server(["--model", try model(), "--name", "tiny"])
        let body = Array(#"{"messages": [{"role": "user", "content": "go"}], "max_tokens": 8, "temperature": 0}"#.utf8)
        let head = Array("POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: \(body.count)\r\n\r\n".utf8)
        let fd = try ServeHardeningTests.Socket.open(port: server.port)
        defer { close(fd) }
        XCTAssertTrue(ServeHardeningTests.Socket.send(fd, head + body.prefix(10)))  // the request has begun: its head and part of its body are in
        usleep(100_000)                        // (for the server to read them; the order below does not depend on it)
        server.process.interrupt()
        var waited = 0
        while let probe = try? ServeHardeningTests.Socket.open(port: server.port) {  // until the listener is closed: shutdown has begun
            close(probe)
            usleep(20_000); waited += 1
            XCTAssertLessThan(waited, 500, "the server still accepts connections 10 s after Ctrl-C")
            if waited >= 500 { return }
        }
        XCTAssertTrue(ServeHardeningTests.Socket.send(fd, Array(body.dropFirst(10))))
        var response: [UInt8] = [], buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = read(fd, &buffer, buffer.count)
            if n <= 0 { break }
            response += buffer.prefix(n)
        }
        let text = String(decoding: response, as: UTF8.self)
        XCTAssertTrue(text.hasPrefix("HTTP/1.1 200"), text)
        XCTAssertTrue(text.contains("\"completion_tokens\""), text)
        server.process.waitUntilExit()
        XCTAssertEqual(server.process.terminationStatus, 0)
    }

    /// The official OpenAI Python client (PyPI `openai`) as an outside client.
    func testTheOfficialOpenAIClient() throws {
        try Python.require(["openai"])
        let dir = try model()
        let server = try Server(["--model", dir, "--name", "tiny", "--api-key-env", "SERVE_TEST_KEY"], environment: ["SERVE_TEST_KEY": "sesame"])
        defer { server.stop() }
        let script = """
            import json, sys, openai
            client = openai.OpenAI(base_url=sys.argv[1] + "/v1", api_key="sesame", max_retries=0)
            r = client.chat.completions.create(model="tiny", messages=[{"role": "user", "content": "Where is the Eiffel Tower?"}],
                                               max_tokens=12, temperature=0)
            out = {"text": r.choices[0].message.content, "finish": r.choices[0].finish_reason, "usage": r.usage.completion_tokens,
                   "models": [m.id for m in client.models.list()]}
            try:
                client.chat.completions.create(model="nope", messages=[{"role": "user", "content": "x"}])
            except openai.NotFoundError as e:
                out["not_found"] = e.body["message"]
            try:
                openai.OpenAI(base_url=sys.argv[1] + "/v1", api_key="wrong", max_retries=0).models.list()
            except openai.AuthenticationError as e:
                out["auth"] = e.status_code
            print(json.dumps(out))
            """
        let p = try Python.run(script, arguments: [server.base], requiring: ["openai"])
        XCTAssertEqual(p.status, 0, p.stderr)
        let r = try JSONParser.parse(bytes: Array(p.stdoutData))
        let expected = try LocalChatModel(directory: dir, name: "tiny").chat([.user("Where is the Eiffel Tower?")], settings: GenerationSettings(maxTokens: 12))
        XCTAssertEqual(r["text"]?.stringValue, expected.text)
        XCTAssertEqual(r["usage"]?.intValue, expected.completionTokens)
        XCTAssertEqual(r["models"]?.arrayValue?.first?.stringValue, "tiny")
        XCTAssertEqual(r["not_found"]?.stringValue, "The model 'nope' does not exist; this server has 'tiny'.")
        XCTAssertEqual(r["auth"]?.intValue, 401)
    }
}
