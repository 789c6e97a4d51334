import Foundation
import XCTest
@testable import LLM
import TestSupport

/// The libcurl client and the HTTP backends against a real HTTP server on loopback
/// (Tests/TestSupport/fault_server.py) that injects 429s, 5xx, slow and torn replies.
final class HTTPClientTests: XCTestCase {
    /// One server for the class; a failure to start it (a skip where there is no Python) is
    /// every test's.
    nonisolated(unsafe) static var server: Result<FaultServer, any Error>?

    override class func setUp() { server = Result { try FaultServer() } }
    override class func tearDown() { try? server?.get().stop(); server = nil }
    override func setUpWithError() throws { _ = try HTTPClientTests.server?.get() }

    var base: String { (try? HTTPClientTests.server?.get().base) ?? "" }

    func count(_ key: String) throws -> Int {
        let r = try HTTPClient().postJSON("\(base)/count/\(key)", body: Array("{}".utf8))
        return (try JSONSerialization.jsonObject(with: Data(r.body)) as! [String: Any])["count"] as! Int
    }

    func model(_ name: String, attempts: Int = 4, timeout: Double = 10, key: String? = nil) throws -> OpenAIChatModel {
        try OpenAIChatModel(urls: ["\(base)/v1/"], model: name, apiKey: key,
                            client: try HTTPClient(timeout: timeout, retry: RetryPolicy(maxAttempts: attempts, baseDelay: 0.01, maxDelay: 2)))
    }

    func testChatCompletionRoundTripWithUsageSeedAndKey() throws {
        let r = try model("echo", key: "sk-test").chat([.user("hello there")], settings: .reference)
        XCTAssertEqual(r.text, "echo: hello there auth=Bearer sk-test seed=43")
        XCTAssertEqual(r.promptTokens, 2)
        XCTAssertEqual(r.completionTokens, 2)
        XCTAssertEqual(r.finishReason, "stop")
    }

    func testRateLimitsAndServerErrorsAreRetried() throws {
        XCTAssertEqual(try model("flaky-429").chat([.user("a")], settings: .reference).text, "echo: a")
        XCTAssertEqual(try count("flaky-429"), 3)
        XCTAssertEqual(try model("flaky-503").chat([.user("b")], settings: .reference).text, "echo: b")
        XCTAssertEqual(try count("flaky-503"), 3)
    }

    func testRetryAfterIsHonoured() throws {
        let t0 = Date()
        _ = try model("retry-after-1").chat([.user("a")], settings: .reference)
        XCTAssertGreaterThanOrEqual(Date().timeIntervalSince(t0), 1.0)
    }

    func testPersistentServerErrorsGiveUpAfterTheLastAttempt() throws {
        XCTAssertThrowsError(try model("always-500", attempts: 3).chat([.user("a")], settings: .reference)) { e in
            XCTAssertEqual("\(e)", "\(self.base)/v1/chat/completions: HTTP 500: boom (after 3 attempts)")
        }
        XCTAssertEqual(try count("always-500"), 3)
    }

    func testClientErrorsAreNotRetriedAndCarryTheServersMessage() throws {
        XCTAssertThrowsError(try model("missing").chat([.user("a")], settings: .reference)) { e in
            XCTAssertEqual((e as? HTTPError)?.code, .status(404))
            XCTAssertEqual("\(e)", "\(self.base)/v1/chat/completions: HTTP 404: The model `missing` does not exist.")
        }
        XCTAssertEqual(try count("missing"), 1)
    }

    func testMalformedRepliesShowASnippet() throws {
        XCTAssertThrowsError(try model("bad-json").chat([.user("a")], settings: .reference)) { e in
            XCTAssertEqual("\(e)", "\(self.base)/v1/chat/completions: the reply is not JSON: <html>not json{")
        }
    }

    func testTimeoutsAndTornRepliesAreRetriedThenReported() throws {
        XCTAssertThrowsError(try model("slow", attempts: 2, timeout: 0.5).chat([.user("a")], settings: .reference)) { e in
            XCTAssertEqual((e as? HTTPError)?.code, .timeout)
            XCTAssertEqual((e as? HTTPError)?.attempts, 2)
        }
        XCTAssertThrowsError(try model("torn", attempts: 2).chat([.user("a")], settings: .reference)) { e in
            XCTAssertEqual((e as? HTTPError)?.code, .network, "\(e)")
        }
        XCTAssertEqual(try count("torn"), 2)
    }

    func testConnectionRefusedFailsFastWithTheCommandThatStartsAServer() throws {
        let m = try OpenAIChatModel(urls: ["http://127.0.0.1:9/v1"], model: "meta-llama/Llama-3.1-8B-Instruct")
        let t0 = Date()
        XCTAssertThrowsError(try m.chat([.user("a")], settings: .reference)) { e in
            XCTAssertEqual((e as? HTTPError)?.code, .connectionRefused)
            XCTAssertTrue("\(e)".hasPrefix("http://127.0.0.1:9/v1/chat/completions: connection refused ("), "\(e)")
            XCTAssertTrue("\(e)".hasSuffix("\nHINT: start a server for meta-llama/Llama-3.1-8B-Instruct, e.g. `vllm serve meta-llama/Llama-3.1-8B-Instruct --port 9`"), "\(e)")
        }
        XCTAssertLessThan(Date().timeIntervalSince(t0), 1)
    }

    func testManyThreadsShareTheClient() throws {
        let m = try model("echo")
        final class Counter: @unchecked Sendable { let lock = NSLock(); var failures = 0 }
        let counter = Counter()
        DispatchQueue.concurrentPerform(iterations: 64) { i in
            let r = try? m.chat([.user("q\(i)")], settings: .reference)
            if r?.text.hasPrefix("echo: q\(i)") != true { counter.lock.withLock { counter.failures += 1 } }
        }
        XCTAssertEqual(counter.failures, 0)
    }

    func testTheReferenceModelAndRetrieverProtocols() throws {
        let haps = try HAPSChatModel(url: "\(base)/", name: "ref")
        XCTAssertEqual(try haps.chat([.user("hi")], settings: .reference).text, "haps says: hi")
        let retriever = try HTTPRetriever(url: "\(base)/retrieve")
        XCTAssertEqual(try retriever.retrieve(entity: "Paris", paragraphs: ["Rome is old.", "Paris is big.", "x"]), "Paris is big.")
        XCTAssertThrowsError(try retriever.retrieve(entity: "a", paragraphs: [])) { e in
            XCTAssertEqual("\(e)", "\(self.base)/retrieve: HTTP 400: data must be a non-empty list")
        }
    }
}
