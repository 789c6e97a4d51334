import JSON
import NN
#if canImport(Glibc)
import Glibc
#endif

/// Bounds the requests in flight to one endpoint (a vLLM replica, a retriever). A freed slot
/// goes to the waiting request with the highest priority (the earliest among equals), handed
/// over directly so that only that thread wakes: each waiter sleeps on a condition of its own,
/// and the releaser grants it the slot under that condition's lock.
final class ConcurrencyLimit: @unchecked Sendable {
    private let lock = Lock()
    private var free: Int
    private(set) var capacity: Int
    private final class Waiter: @unchecked Sendable {
        let condition = Condition()
        let priority: Int, order: Int
        var granted = false  // under `condition`
        init(priority: Int, order: Int) { self.priority = priority; self.order = order }
    }
    private var waiters: [Waiter] = []
    private var arrivals = 0

    init(_ n: Int) { capacity = max(1, n); free = capacity }

    /// Requests waiting for a slot.
    var waiting: Int { lock.withLock { waiters.count } }

    /// Lowers the limit (requests already in flight finish; no new one starts until under it).
    func lower(to n: Int) {
        lock.withLock { if n >= 1 && n < capacity { free -= capacity - n; capacity = n } }
    }

    func with<T>(priority: Int = 0, _ body: () throws -> T) rethrows -> T {
        let waiter: Waiter? = lock.withLock {
            if free > 0 && waiters.isEmpty { free -= 1; return nil }
            arrivals += 1
            let w = Waiter(priority: priority, order: arrivals)
            waiters.append(w)
            return w
        }
        if let waiter {
            waiter.condition.lock()
            while !waiter.granted { waiter.condition.wait() }
            waiter.condition.unlock()
        }
        defer { release() }
        return try body()
    }

    private func release() {
        let granted: [Waiter] = lock.withLock {
            free += 1
            var out: [Waiter] = []
            while free > 0 && !waiters.isEmpty {
                var best = 0
                for i in waiters.indices.dropFirst() {
                    let a = waiters[i], b = waiters[best]
                    if a.priority > b.priority || (a.priority == b.priority && a.order < b.order) { best = i }
                }
                out.append(waiters.remove(at: best))
                free -= 1
            }
            return out
        }
        for w in granted { w.condition.lock(); w.granted = true; w.condition.signal(); w.condition.unlock() }
    }
}

/// The concurrency limits of one run's endpoints, by URL: models that point at the same server
/// (two resources on one vLLM, say) share its limit, the smallest one they give.
public final class EndpointLimits: @unchecked Sendable {
    private let lock = Lock()
    private var limits: [String: ConcurrencyLimit] = [:]
    public init() {}
    func limit(for url: String, _ n: Int) -> ConcurrencyLimit {
        lock.withLock {
            if let l = limits[url] { l.lower(to: n); return l }
            let l = ConcurrencyLimit(n)
            limits[url] = l
            return l
        }
    }
    /// The limit now in force for `url`, if a model uses it.
    public func capacity(of url: String) -> Int? { lock.withLock { limits[url]?.capacity } }
}

/// A reply that is not what the protocol promises, with the start of what came back.
public struct ProtocolError: Error, CustomStringConvertible, Sendable {
    public var url: String
    public var message: String
    public var description: String { "\(url): \(message)" }
}

/// The `openai` backend: OpenAI-compatible chat completions (vLLM, SGLang, TGI, llama.cpp,
/// Ollama, OpenAI). Several base URLs spread requests over replicas (round robin), each with
/// its own concurrency limit.
///
///     let m = try OpenAIChatModel(urls: ["http://127.0.0.1:2024/v1"], model: "meta-llama/Llama-3.1-8B-Instruct")
///     try m.chat([.user("Hi")], settings: .reference).text
public final class OpenAIChatModel: ChatModel, @unchecked Sendable {
    public let urls: [String]
    public let model: String
    public let apiKey: String?
    public let client: HTTPClient
    private let limits: [ConcurrencyLimit]
    private let counter = Lock()
    private var next = 0

    public var identity: String { "openai:\(model)" }

    /// `apiKey`: the bearer token (the spec names an environment variable that holds it).
    /// `concurrency`: requests in flight per URL; `shared` makes that limit shared with other
    /// models of the run that use the same URL.
    public init(urls: [String], model: String, apiKey: String? = nil, concurrency: Int = 64, shared: EndpointLimits? = nil,
                client: HTTPClient? = nil) throws {
        precondition(!urls.isEmpty, "an openai model needs at least one URL")
        self.urls = urls.map { $0.hasSuffix("/") ? String($0.dropLast()) : $0 }
        self.model = model
        self.apiKey = apiKey
        self.client = try client ?? HTTPClient()
        let registry = shared ?? EndpointLimits()
        limits = self.urls.map { registry.limit(for: $0, concurrency) }
        if self.client.startHint == nil {
            let m = model
            self.client.startHint = { url in
                "start a server for \(m), e.g. `vllm serve \(m) --port \(OpenAIChatModel.port(of: url) ?? "PORT")`"
            }
        }
    }

    /// "http://127.0.0.1:2024/v1" → "2024".
    public static func port(of url: String) -> String? {
        let parts = url.split(separator: "/", omittingEmptySubsequences: true)  // ["http:", "127.0.0.1:2024", "v1"]
        guard parts.count >= 2, let colon = parts[1].lastIndex(of: ":") else { return nil }
        return String(parts[1][parts[1].index(after: colon)...])
    }

    public func chat(_ messages: [ChatMessage], settings: GenerationSettings) throws -> ChatReply {
        let i: Int = counter.withLock { defer { next += 1 }; return next % urls.count }
        var body: [String: JSONValue] = [
            "model": .string(model),
            "messages": .array(messages.map { ["role": .string($0.role), "content": .string($0.content)] }),
            "temperature": .number(settings.temperature), "top_p": .number(settings.topP),
            "max_tokens": .number(Double(settings.maxTokens)),
        ]
        if let seed = settings.seed { body["seed"] = .number(Double(seed)) }
        if !settings.stop.isEmpty { body["stop"] = .array(settings.stop.map(JSONValue.string)) }
        var headers: [String: String] = [:]
        if let apiKey { headers["Authorization"] = "Bearer \(apiKey)" }
        let url = urls[i] + "/chat/completions"
        let response = try limits[i].with(priority: settings.priority) { try client.postJSON(url, body: Array(JSONValue.object(body).canonical.utf8), headers: headers) }
        guard let v = try? JSONParser.parse(bytes: response.body) else {
            throw ProtocolError(url: url, message: "the reply is not JSON: \(HTTPClient.snippet(response.text))")
        }
        guard let choice = v["choices"]?.arrayValue?.first, let text = choice["message"]?["content"]?.stringValue else {
            throw ProtocolError(url: url, message: "the reply has no choices[0].message.content: \(HTTPClient.snippet(response.text))")
        }
        return ChatReply(text: text, promptTokens: v["usage"]?["prompt_tokens"]?.intValue ?? 0,
                         completionTokens: v["usage"]?["completion_tokens"]?.intValue ?? 0,
                         finishReason: choice["finish_reason"]?.stringValue)
    }
}

/// The `haps` backend: the reference's model protocol. `POST /` with
/// `{"messages", "config": {"temperature", "top_p", "max_tokens", "n"}}` → `{"response": [text, ...]}`;
/// the first response, stripped. The protocol reports no token counts.
public final class HAPSChatModel: ChatModel, @unchecked Sendable {
    public let url: String
    public let name: String
    public let client: HTTPClient
    public var identity: String { "haps:\(name)" }

    public init(url: String, name: String, client: HTTPClient? = nil) throws {
        self.url = url; self.name = name
        self.client = try client ?? HTTPClient()
    }

    public func chat(_ messages: [ChatMessage], settings: GenerationSettings) throws -> ChatReply {
        let body: JSONValue = [
            "messages": .array(messages.map { ["role": .string($0.role), "content": .string($0.content)] }),
            "config": ["temperature": .number(settings.temperature), "top_p": .number(settings.topP),
                       "max_tokens": .number(Double(settings.maxTokens)), "n": 1],
        ]
        let r = try client.postJSON(url, body: Array(body.canonical.utf8))
        guard let v = try? JSONParser.parse(bytes: r.body), let first = v["response"]?.arrayValue?.first?.stringValue else {
            throw ProtocolError(url: url, message: "expected {\"response\": [text, ...]}, got: \(HTTPClient.snippet(r.text))")
        }
        return ChatReply(text: first.trimmingSpaces)
    }
}

/// The `http` retriever: the reference's `/retrieve` protocol,
/// `{"entity", "data": [paragraph, ...]}` → `{"response": best paragraph}`.
public final class HTTPRetriever: Retriever, @unchecked Sendable {
    public let url: String
    public let client: HTTPClient
    public let name: String
    public var identity: String { "http-retriever:\(name)" }

    public init(url: String, name: String = "reference", client: HTTPClient? = nil) throws {
        self.url = url; self.name = name
        self.client = try client ?? HTTPClient()
    }

    public func retrieve(entity: String, paragraphs: [String]) throws -> String {
        let body: JSONValue = ["entity": .string(entity), "data": .array(paragraphs.map(JSONValue.string))]
        let r = try client.postJSON(url, body: Array(body.canonical.utf8))
        guard let v = try? JSONParser.parse(bytes: r.body), let best = v["response"]?.stringValue else {
            throw ProtocolError(url: url, message: "expected {\"response\": paragraph}, got: \(HTTPClient.snippet(r.text))")
        }
        return best
    }
}
