public import CCurl
import JSON
import NN
#if canImport(Glibc)
import Glibc
#endif

/// An HTTP failure, typed, with the URL and what to do.
public struct HTTPError: Error, CustomStringConvertible, Sendable {
    public enum Code: Sendable, Equatable {
        case connectionRefused
        case unresolvedHost
        case timeout
        /// A status the client does not retry (4xx other than 429), or any status after the last retry.
        case status(Int)
        /// The connection broke (reset, torn body, empty reply).
        case network
        case malformedResponse
    }
    public var code: Code
    public var url: String
    public var message: String
    public var hint: String?
    public var attempts: Int

    public var description: String {
        var s = "\(url): \(message)"
        if attempts > 1 { s += " (after \(attempts) attempts)" }
        if let hint { s += "\nHINT: \(hint)" }
        return s
    }

    /// Worth another attempt: rate limits, server errors, broken connections, timeouts.
    var retryable: Bool {
        switch code {
        case .status(let s): return s == 429 || s >= 500
        case .network, .timeout: return true
        case .connectionRefused, .unresolvedHost, .malformedResponse: return false
        }
    }
}

public struct HTTPResponse: Sendable {
    public var status: Int
    /// Header names lower-cased.
    public var headers: [String: String]
    public var body: [UInt8]
    public var text: String { String(decoding: body, as: UTF8.self) }
}

/// Retries with exponential backoff and jitter; `Retry-After` wins when the server sends it.
public struct RetryPolicy: Sendable {
    public var maxAttempts: Int
    public var baseDelay: Double
    public var maxDelay: Double
    public init(maxAttempts: Int = 5, baseDelay: Double = 0.5, maxDelay: Double = 30) {
        self.maxAttempts = max(1, maxAttempts); self.baseDelay = baseDelay; self.maxDelay = maxDelay
    }
    /// Delay before attempt `n + 1` (n ≥ 1): base · 2^(n-1), capped, times a jitter in [0.5, 1).
    public func delay(afterAttempt n: Int, retryAfter: Double?) -> Double {
        if let r = retryAfter { return min(maxDelay, max(0, r)) }
        let raw = min(maxDelay, baseDelay * Double(1 << min(n - 1, 20)))
        return raw * Double.random(in: 0.5..<1)
    }
}

/// A blocking HTTP/1.1 client on libcurl for many threads at once: each request borrows an easy
/// handle from a pool (so keep-alive connections are reused across requests), and failures
/// come back as `HTTPError`s after the retry policy.
public final class HTTPClient: @unchecked Sendable {
    public var connectTimeout: Double
    public var timeout: Double
    public var retry: RetryPolicy
    /// Added to connection-refused errors: how to start the server behind a URL.
    public var startHint: (@Sendable (String) -> String?)?

    private let curl: Curl
    private let lock = Lock()
    private var idle: [UnsafeMutableRawPointer] = []

    public init(connectTimeout: Double = 5, timeout: Double = 300, retry: RetryPolicy = RetryPolicy()) throws {
        curl = try Curl.shared()
        self.connectTimeout = connectTimeout; self.timeout = timeout; self.retry = retry
    }

    deinit { for h in idle { curl.easyCleanup(h) } }

    /// POSTs a JSON body, retrying rate limits (429), server errors (5xx), broken connections
    /// and timeouts with backoff; other failures come back at once.
    public func postJSON(_ url: String, body: [UInt8], headers: [String: String] = [:]) throws(HTTPError) -> HTTPResponse {
        try withRetries(url) { () throws(HTTPError) in
            try perform(url: url, body: body, headers: headers.merging(["Content-Type": "application/json"]) { a, _ in a })
        }
    }

    /// GETs a URL, with the same retries and errors as `postJSON`.
    public func get(_ url: String, headers: [String: String] = [:]) throws(HTTPError) -> HTTPResponse {
        try withRetries(url) { () throws(HTTPError) in try perform(url: url, body: nil, headers: headers) }
    }

    private func withRetries(_ url: String, _ attemptOnce: () throws(HTTPError) -> HTTPResponse) throws(HTTPError) -> HTTPResponse {
        var attempt = 0
        while true {
            attempt += 1
            var failure: HTTPError
            var retryAfter: Double?
            do {
                let r = try attemptOnce()
                if r.status < 400 { return r }
                failure = HTTPError(code: .status(r.status), url: url, message: "HTTP \(r.status): \(HTTPClient.serverMessage(r))", hint: nil, attempts: attempt)
                retryAfter = r.headers["retry-after"].flatMap { Double($0) }
            } catch {
                failure = error
            }
            failure.attempts = attempt
            if !failure.retryable || attempt >= retry.maxAttempts { throw failure }
            sleep(seconds: retry.delay(afterAttempt: attempt, retryAfter: retryAfter))
        }
    }

    /// The server's own error text: OpenAI's `{"error": {"message"}}`, `{"error": "..."}`,
    /// `{"message"}`, `{"detail"}`, or the start of the body.
    static func serverMessage(_ r: HTTPResponse) -> String {
        if let v = try? JSONParser.parse(bytes: r.body) {
            let candidates: [JSONValue?] = [v["error"]?["message"], v["error"], v["message"], v["detail"]]
            for c in candidates { if let m = c?.stringValue { return m } }
        }
        return snippet(r.text)
    }

    static func snippet(_ text: String) -> String {
        let t = text.trimmingSpaces
        return t.count > 200 ? String(t.prefix(200)) + "…" : (t.isEmpty ? "(empty body)" : t)
    }

    private func sleep(seconds: Double) {
        guard seconds > 0 else { return }
        var ts = timespec(tv_sec: Int(seconds), tv_nsec: Int((seconds - Double(Int(seconds))) * 1e9))
        var rest = timespec()
        while nanosleep(&ts, &rest) != 0 && errno == EINTR { ts = rest }
    }

    private func borrow() throws(HTTPError) -> UnsafeMutableRawPointer {
        if let h = lock.withLock({ idle.popLast() }) { return h }
        guard let h = curl.easyInit() else { throw HTTPError(code: .network, url: "", message: "curl_easy_init failed", hint: nil, attempts: 1) }
        return h
    }

    private func giveBack(_ h: UnsafeMutableRawPointer) { lock.withLock { idle.append(h) } }

    final class Sink {
        var body: [UInt8] = []
        var headers: [String: String] = [:]
    }

    /// One request (a POST of `body`, or a GET when it is nil), no retries.
    func perform(url: String, body: [UInt8]?, headers: [String: String]) throws(HTTPError) -> HTTPResponse {
        let h = try borrow()
        var keep = true
        defer { if keep { giveBack(h) } else { curl.easyCleanup(h) } }
        let sink = Sink()
        let sinkPointer = Unmanaged.passRetained(sink)
        defer { sinkPointer.release() }
        var list: OpaquePointer?
        for (k, v) in headers { list = curl.slistAppend(list, "\(k): \(v)") }
        list = curl.slistAppend(list, "Expect:")  // no 100-continue round trip
        defer { curl.slistFreeAll(list) }

        let write: @convention(c) (UnsafeMutablePointer<CChar>?, Int, Int, UnsafeMutableRawPointer?) -> Int = { data, size, count, user in
            let sink = Unmanaged<Sink>.fromOpaque(user!).takeUnretainedValue()
            let n = size * count
            if let data, n > 0 { data.withMemoryRebound(to: UInt8.self, capacity: n) { sink.body.append(contentsOf: UnsafeBufferPointer(start: $0, count: n)) } }
            return n
        }
        let header: @convention(c) (UnsafeMutablePointer<CChar>?, Int, Int, UnsafeMutableRawPointer?) -> Int = { data, size, count, user in
            let sink = Unmanaged<Sink>.fromOpaque(user!).takeUnretainedValue()
            let n = size * count
            guard let data, n > 0 else { return n }
            let line = data.withMemoryRebound(to: UInt8.self, capacity: n) { String(decoding: UnsafeBufferPointer(start: $0, count: n), as: UTF8.self) }
            if line.hasPrefix("HTTP/") { sink.headers = [:] }  // a new response (after redirects or 100)
            if let colon = line.firstIndex(of: ":") {
                sink.headers[line[..<colon].lowercased()] = String(line[line.index(after: colon)...]).trimmingSpaces
            }
            return n
        }

        let setLong = { (o: CURLoption, v: Int) in _ = haps_curl_setopt_long(self.curl.setopt, h, o, v) }
        let setPointer = { (o: CURLoption, v: UnsafeRawPointer?) in _ = haps_curl_setopt_pointer(self.curl.setopt, h, o, v) }
        let result: Result<HTTPResponse, HTTPError> = url.withCString { urlC in
            (body ?? []).withUnsafeBytes { bodyBytes in
                setPointer(CURLOPT_URL, urlC)
                setLong(CURLOPT_NOSIGNAL, 1)
                if let body {
                    setLong(CURLOPT_POST, 1)
                    setPointer(CURLOPT_POSTFIELDS, bodyBytes.baseAddress ?? UnsafeRawPointer(urlC))
                    _ = haps_curl_setopt_offset(curl.setopt, h, CURLOPT_POSTFIELDSIZE_LARGE, curl_off_t(body.count))
                } else {
                    setLong(CURLOPT_HTTPGET, 1)
                }
                setPointer(CURLOPT_HTTPHEADER, UnsafeRawPointer(list))
                setPointer(CURLOPT_WRITEFUNCTION, unsafeBitCast(write, to: UnsafeRawPointer.self))
                setPointer(CURLOPT_WRITEDATA, sinkPointer.toOpaque())
                setPointer(CURLOPT_HEADERFUNCTION, unsafeBitCast(header, to: UnsafeRawPointer.self))
                setPointer(CURLOPT_HEADERDATA, sinkPointer.toOpaque())
                setLong(CURLOPT_CONNECTTIMEOUT_MS, Int(connectTimeout * 1000))
                setLong(CURLOPT_TIMEOUT_MS, Int(timeout * 1000))
                let rc = curl.easyPerform(h)
                if rc != CURLE_OK {
                    keep = false  // do not reuse a connection in an unknown state
                    return .failure(error(rc, url: url))
                }
                var status = 0
                _ = haps_curl_getinfo_long(curl.getinfo, h, CURLINFO_RESPONSE_CODE, &status)
                return .success(HTTPResponse(status: status, headers: sink.headers, body: sink.body))
            }
        }
        return try result.get()
    }

    private func error(_ rc: CURLcode, url: String) -> HTTPError {
        let text = curl.message(rc)
        switch rc {
        case CURLE_COULDNT_CONNECT:
            return HTTPError(code: .connectionRefused, url: url, message: "connection refused (\(text))",
                             hint: startHint?(url) ?? "is the server running and listening on that address?", attempts: 1)
        case CURLE_COULDNT_RESOLVE_HOST:
            return HTTPError(code: .unresolvedHost, url: url, message: "host not found (\(text))", hint: "check the URL in the spec's resources", attempts: 1)
        case CURLE_OPERATION_TIMEDOUT:
            return HTTPError(code: .timeout, url: url, message: "timed out (\(text))", hint: nil, attempts: 1)
        default:
            return HTTPError(code: .network, url: url, message: text, hint: nil, attempts: 1)
        }
    }
}

extension String {
    /// Without leading and trailing whitespace (Python's `str.strip()` on the common cases).
    public var trimmingSpaces: String {
        var s = Substring(self)
        while let f = s.first, f.isWhitespace { s.removeFirst() }
        while let l = s.last, l.isWhitespace { s.removeLast() }
        return String(s)
    }
}
