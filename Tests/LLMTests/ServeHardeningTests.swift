import Foundation
import XCTest
@testable import LLM
import JSON
import TestSupport

/// The probes of issue 25 (item 6) against the real haps-pipe-serve, with raw sockets, curl and
/// the official `openai` Python package: slow or unfinished requests, an oversized
/// Content-Length, connections past the cap, and requests that must be refused.
final class ServeHardeningTests: XCTestCase {
    typealias Server = ServeTests.Server
    func model() throws -> String {
        if let d = ServeTests.modelDirectory { return d }
        let d = try LocalChatModelTests.makeModel()
        ServeTests.modelDirectory = d
        return d
    }
    let partialHead = Array("POST /retrieve HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n".utf8)

    /// Connections that never finish their head (sent at once, or a byte at a time) are closed
    /// after --idle-timeout, counted from the connection, not from the last byte.
    func testUnfinishedHeadsAreClosedAfterTheIdleTimeout() throws {
        let server = try Server(["--retriever", "lexical", "--idle-timeout", "1"])
        defer { server.stop() }
        let started = Date()
        let fds = try (0..<20).map { _ in try Socket.open(port: server.port) }
        defer { fds.forEach { close($0) } }
        for fd in fds { XCTAssertTrue(Socket.send(fd, partialHead)) }
        let trickled = try Socket.open(port: server.port)  // a byte every 0.2 s: activity, but never a head
        let trickle = Trickle(trickled, partialHead + Array(repeating: UInt8(ascii: "x"), count: 100))
        defer { trickle.stop() }
        for fd in fds + [trickled] {
            let (reply, closed) = Socket.readUntilClosed(fd, within: 4 - Date().timeIntervalSince(started))
            XCTAssertTrue(closed, "connection \(fd) is still open \(Date().timeIntervalSince(started)) s after its start")
            XCTAssertEqual(reply, [])
        }
        XCTAssertLessThan(Date().timeIntervalSince(started), 4)
        XCTAssertTrue(server.process.isRunning)
    }

    /// A body sent a byte at a time (never idle for --idle-timeout) is cut at --read-timeout.
    func testASlowBodyIsClosedAtTheReadTimeout() throws {
        let server = try Server(["--retriever", "lexical", "--idle-timeout", "5", "--read-timeout", "1"])
        defer { server.stop() }
        let fd = try Socket.open(port: server.port)
        let started = Date()
        XCTAssertTrue(Socket.send(fd, partialHead + Array("Content-Length: 200\r\n\r\n".utf8)))
        let trickle = Trickle(fd, Array(repeating: UInt8(ascii: " "), count: 200))
        defer { trickle.stop() }
        let (_, closed) = Socket.readUntilClosed(fd, within: 4)
        XCTAssertTrue(closed, "a body trickling in for \(Date().timeIntervalSince(started)) s is still being read")
        XCTAssertLessThan(Date().timeIntervalSince(started), 3, "closed by --read-timeout 1, not --idle-timeout 5")
        server.stop()
        let log = try String(contentsOfFile: server.log, encoding: .utf8)
        XCTAssertTrue(log.contains("POST /retrieve 408"), log)
    }

    /// `Content-Length: 4000000000` with one byte sent: 413 at once (before the key is checked,
    /// so no key is needed), then the server closes the connection. A 5 MB body sent in full (by
    /// curl and the openai client) also gets its 413, not a reset connection.
    func testAnOversizedContentLengthGets413AtOnce() throws {
        let server = try Server(["--model", try model(), "--name", "tiny", "--api-key-env", "SERVE_TEST_KEY"],
                                environment: ["SERVE_TEST_KEY": "sesame"])
        defer { server.stop() }
        let fd = try Socket.open(port: server.port)
        defer { close(fd) }
        let started = Date()
        XCTAssertTrue(Socket.send(fd, Array("POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 4000000000\r\n\r\n{".utf8)))
        let (reply, closed) = Socket.readUntilClosed(fd, within: 5)
        let text = String(decoding: reply, as: UTF8.self)
        XCTAssertTrue(text.hasPrefix("HTTP/1.1 413"), text)
        XCTAssertTrue(text.contains(#""message":"the request body is larger than 4194304 bytes (Content-Length: 4000000000)""#), text)
        XCTAssertTrue(closed, "the connection stays open")
        XCTAssertLessThan(Date().timeIntervalSince(started), 2)

        let big = NSTemporaryDirectory() + "serve-big-\(UUID().uuidString).json"
        defer { try? FileManager.default.removeItem(atPath: big) }
        let content = String(repeating: "x", count: 5_000_000)
        try Data(#"{"messages": [{"role": "user", "content": "\#(content)"}]}"#.utf8).write(to: URL(fileURLWithPath: big))
        let curl = try Tool.run("curl", ["-s", "-m", "20", "-o", "/dev/null", "-w", "%{http_code}", "-H", "Authorization: Bearer sesame",
                                         "-H", "Content-Type: application/json", "--data-binary", "@" + big, server.base + "/v1/chat/completions"])
        XCTAssertEqual(curl.output, "413", curl.error)
        let python = try Tool.python(server.base, """
            try:
                client.chat.completions.create(model="tiny", messages=[{"role": "user", "content": "x" * 5_000_000}])
            except openai.APIStatusError as e:
                out["big"] = e.status_code
            """)
        XCTAssertEqual(python["big"]?.intValue, 413)
    }

    /// The probe: more unfinished connections than the server has file descriptors for (under
    /// `ulimit -n`), then an authorised request. The cap, lowered to fit the limit, closes the
    /// longest-idle connections to make room, so the request is answered at once.
    func testPartialConnectionsPastTheFileLimitLeaveRoomForARequest() throws {
        let files = 128 + 4 * ProcessInfo.processInfo.activeProcessorCount
        let server = try Server(["--retriever", "lexical", "--api-key-env", "SERVE_TEST_KEY"], environment: ["SERVE_TEST_KEY": "sesame"], fileLimit: files)
        defer { server.stop() }
        var fds: [Int32] = []
        defer { fds.forEach { close($0) } }
        for _ in 0..<(files + 50) {
            let fd = try Socket.open(port: server.port)
            fds.append(fd)
            XCTAssertTrue(Socket.send(fd, partialHead))
        }
        let started = Date()
        let curl = try Tool.run("curl", ["-s", "-m", "10", "-w", " %{http_code}", "-H", "Authorization: Bearer sesame", "-H", "Content-Type: application/json",
                                         "-d", #"{"entity": "Reggie Jackson", "data": ["Paris is in France.", "Reggie Jackson played baseball."]}"#,
                                         server.base + "/retrieve"])
        XCTAssertEqual(curl.output, #"{"response":"Reggie Jackson played baseball."} 200"#, curl.error)
        XCTAssertLessThan(Date().timeIntervalSince(started), 5)
        let cap = files - 64 - 4 * ProcessInfo.processInfo.activeProcessorCount
        let closed = fds.filter { Socket.readUntilClosed($0, within: 0.01).closed }.count
        XCTAssertGreaterThanOrEqual(closed, fds.count - cap, "the oldest unfinished connections make room")
        server.stop()
        let log = try String(contentsOfFile: server.log, encoding: .utf8)
        XCTAssertTrue(log.contains("--max-connections lowered from 512 to \(cap) to stay under the open-file limit (\(files); ulimit -n)"), log)
    }

    /// Roles other than system, user and assistant, a `stop` of another type and a body that is
    /// not UTF-8 are 400s; `Authorization: bearer` is accepted in any case.
    func testRequestsAreCheckedAndTheSchemeIsCaseInsensitive() throws {
        let server = try Server(["--model", try model(), "--name", "tiny", "--api-key-env", "SERVE_TEST_KEY"],
                                environment: ["SERVE_TEST_KEY": "sesame"])
        defer { server.stop() }
        for (header, scheme) in [("Authorization", "bearer"), ("authorization", "BEARER"), ("AUTHORIZATION", "Bearer")] {
            let curl = try Tool.run("curl", ["-s", "-m", "10", "-o", "/dev/null", "-w", "%{http_code}", "-H", "\(header): \(scheme) sesame", server.base + "/v1/models"])
            XCTAssertEqual(curl.output, "200", "\(scheme): \(curl.error)")
        }
        let wrong = try Tool.run("curl", ["-s", "-m", "10", "-o", "/dev/null", "-w", "%{http_code}", "-H", "Authorization: bearer sesamE", server.base + "/v1/models"])
        XCTAssertEqual(wrong.output, "401")

        let client = try HTTPClient(retry: RetryPolicy(maxAttempts: 1))
        func failure(_ body: [UInt8]) -> HTTPError? {
            do { _ = try client.postJSON(server.base + "/v1/chat/completions", body: body, headers: ["Authorization": "Bearer sesame"]); return nil } catch { return error }
        }
        let hi = #""messages": [{"role": "user", "content": "hi"}], "max_tokens": 2"#
        XCTAssertEqual(failure(Array(#"{"messages": [{"role": "wizard", "content": "hi"}]}"#.utf8))?.message,
                       #"HTTP 400: messages[0].role must be one of system, developer, user, assistant, got "wizard""#)
        XCTAssertEqual(failure(Array("{\(hi), \"stop\": 5}".utf8))?.message, "HTTP 400: 'stop' must be a string or a list of strings, got 5")
        XCTAssertEqual(failure(Array("{\(hi), \"stop\": [\"a\", 1]}".utf8))?.code, .status(400))
        XCTAssertNil(failure(Array("{\(hi), \"stop\": [\"a\"]}".utf8)))
        XCTAssertNil(failure(Array("{\(hi), \"stop\": null}".utf8)))
        XCTAssertNil(failure(Array(#"{"messages": [{"role": "developer", "content": "be brief"}, {"role": "user", "content": "hi"}], "max_tokens": 2}"#.utf8)), "developer reads as system")
        let invalid = Array(#"{"messages": [{"role": "user", "content": "h"#.utf8) + [0xFF, 0xFE] + Array(#""}]}"#.utf8)
        XCTAssertEqual(failure(invalid)?.message, "HTTP 400: the body is not valid UTF-8 (at byte 44)")

        let python = try Tool.python(server.base, """
            for name, kwargs in [("wizard", {"messages": [{"role": "wizard", "content": "hi"}]}),
                                 ("stop", {"messages": [{"role": "user", "content": "hi"}], "stop": 5})]:
                try:
                    client.chat.completions.create(model="tiny", max_tokens=2, **kwargs)
                except openai.BadRequestError as e:
                    out[name] = e.body["message"]
            """)
        XCTAssertEqual(python["wizard"]?.stringValue, #"messages[0].role must be one of system, developer, user, assistant, got "wizard""#)
        XCTAssertEqual(python["stop"]?.stringValue, "'stop' must be a string or a list of strings, got 5")
    }

    /// `--api-key-env` naming a variable that is set but empty says "empty", not "not set".
    func testAnEmptyKeyVariableIsCalledEmpty() throws {
        let empty = try Tool.run(ServeTests.binary, ["--retriever", "lexical", "--port", "0", "--api-key-env", "SERVE_TEST_KEY"], environment: ["SERVE_TEST_KEY": ""])
        XCTAssertNotEqual(empty.status, 0)
        XCTAssertTrue(empty.error.contains("--api-key-env names SERVE_TEST_KEY, which is empty"), empty.error)
        var unset = ProcessInfo.processInfo.environment
        unset["SERVE_TEST_KEY"] = nil
        let missing = try Tool.run(ServeTests.binary, ["--retriever", "lexical", "--port", "0", "--api-key-env", "SERVE_TEST_KEY"], replacing: unset)
        XCTAssertTrue(missing.error.contains("--api-key-env names SERVE_TEST_KEY, which is not set"), missing.error)
    }
}

extension ServeHardeningTests {
    /// A probe that could not be made (not a finding about the server).
    struct ProbeError: Error, CustomStringConvertible {
        var what: String
        var description: String { what }
    }

    /// Raw client sockets: each write with MSG_NOSIGNAL (a closed peer is an error, not SIGPIPE).
    enum Socket {
        static func open(port: Int) throws -> Int32 {
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            guard fd >= 0 else { throw ProbeError(what: "socket: errno \(errno)") }
            var addr = sockaddr_in()
            addr.sin_family = sa_family_t(AF_INET)
            addr.sin_port = in_port_t(UInt16(port).bigEndian)
            addr.sin_addr.s_addr = inet_addr("127.0.0.1")
            let rc = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
            guard rc == 0 else { close(fd); throw ProbeError(what: "connect to 127.0.0.1:\(port): errno \(errno)") }
            return fd
        }

        /// Sends all bytes; false once the connection is closed.
        static func send(_ fd: Int32, _ bytes: [UInt8]) -> Bool {
            var sent = 0
            while sent < bytes.count {
                let n = bytes[sent...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                guard n > 0 else { return false }
                sent += n
            }
            return true
        }

        /// What the server sends until it closes the connection (end of file or reset), or until
        /// `seconds` pass (then `closed` is false).
        static func readUntilClosed(_ fd: Int32, within seconds: Double) -> (bytes: [UInt8], closed: Bool) {
            let end = Date().addingTimeInterval(seconds)
            var bytes: [UInt8] = [], buffer = [UInt8](repeating: 0, count: 65536)
            while true {
                let left = end.timeIntervalSinceNow
                guard left > 0 else { return (bytes, false) }
                var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
                guard poll(&p, 1, Int32(left * 1000) + 1) > 0 else { continue }
                let n = read(fd, &buffer, buffer.count)
                if n == 0 || (n < 0 && errno == ECONNRESET) { return (bytes, true) }
                if n > 0 { bytes += buffer.prefix(n) }
            }
        }
    }

    /// Sends `bytes` on `fd` one every 0.2 s from a thread of its own, until they are sent, the
    /// connection closes or `stop`, which waits for that thread, then closes `fd` (so that no
    /// write lands on the number once reused).
    final class Trickle: @unchecked Sendable {
        private let fd: Int32
        private let lock = NSLock()
        private var stopped = false
        private let done = DispatchSemaphore(value: 0)

        init(_ fd: Int32, _ bytes: [UInt8]) {
            self.fd = fd
            Thread.detachNewThread { [self] in
                for byte in bytes {
                    guard !lock.withLock({ stopped }), Socket.send(fd, [byte]) else { break }
                    usleep(200_000)
                }
                done.signal()
            }
        }

        func stop() {
            lock.withLock { stopped = true }
            done.wait()
            close(fd)
        }
    }

    /// Outside programs as clients: curl, the server itself, and the official openai Python client.
    enum Tool {
        struct Result { var status: Int32; var output: String; var error: String }

        static func run(_ tool: String, _ args: [String], environment: [String: String] = [:], replacing: [String: String]? = nil) throws -> Result {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: tool.hasPrefix("/") ? tool : "/usr/bin/env")
            p.arguments = tool.hasPrefix("/") ? args : [tool] + args
            p.environment = (replacing ?? ProcessInfo.processInfo.environment).merging(environment) { _, b in b }
            let out = Pipe(), err = Pipe()
            p.standardOutput = out; p.standardError = err; p.standardInput = Pipe()
            try p.run()
            final class Box: @unchecked Sendable { var errors = Data(); let done = DispatchSemaphore(value: 0) }
            let box = Box()
            Thread.detachNewThread { box.errors = err.fileHandleForReading.readDataToEndOfFile(); box.done.signal() }
            let output = out.fileHandleForReading.readDataToEndOfFile()
            box.done.wait()
            p.waitUntilExit()
            return Result(status: p.terminationStatus, output: String(decoding: output, as: UTF8.self), error: String(decoding: box.errors, as: UTF8.self))
        }

        /// Runs `body` (Python, at top level) with `client` (key "sesame") and `out` defined;
        /// returns `out` as JSON.
        static func python(_ base: String, _ body: String) throws -> JSONValue {
            let script = "import json, sys, openai\nclient = openai.OpenAI(base_url=sys.argv[1] + \"/v1\", api_key=\"sesame\", max_retries=0)\nout = {}\n"
                + body + "\nprint(json.dumps(out))\n"
            return try JSONParser.parse(try Python.output(script, arguments: [base], requiring: ["openai"]))
        }
    }
}
