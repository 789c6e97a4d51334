#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Dispatch
#if canImport(Glibc)
import Glibc
#endif
public import LLM
import NN
public import Pipeline

/// Builds model and retriever backends from a spec's resources.
///
///     "models": {"llama": {"backend": "openai", "url": "http://127.0.0.1:2024/v1",
///                          "model": "meta-llama/Llama-3.1-8B-Instruct", "concurrency": 32}},
///     "retriever": {"backend": "lexical"}
public enum Backends {
    public struct ConfigError: Error, CustomStringConvertible, Sendable {
        public var resource: String
        public var message: String
        public var description: String { "resource '\(resource)': \(message)" }
    }

    static func urls(_ r: JSONValue, _ name: String) throws -> [String] {
        if let u = r["url"]?.stringValue { return [u] }
        if let us = r["urls"]?.arrayValue?.compactMap(\.stringValue), !us.isEmpty { return us }
        throw ConfigError(resource: name, message: "needs 'url' (or 'urls', a list of replicas)")
    }

    static func client(_ r: JSONValue) throws -> HTTPClient {
        try HTTPClient(connectTimeout: r["connect_timeout_s"]?.doubleValue ?? 5, timeout: r["timeout_s"]?.doubleValue ?? 300,
                       retry: RetryPolicy(maxAttempts: r["retries"]?.intValue.map { $0 + 1 } ?? 5))
    }

    /// `limits`: the run's per-URL limits, so models on one server share its `concurrency`.
    /// A relative `path` (local models, dense retrievers) is taken from `base`, the spec's directory.
    static func resolve(_ path: String, _ base: String) -> String {
        path.hasPrefix("/") || base.isEmpty ? path : base + "/" + path
    }

    public static func model(_ r: JSONValue, name: String, limits: EndpointLimits = EndpointLimits(), baseDirectory: String = "") throws -> any ChatModel {
        switch r["backend"]?.stringValue {
        case "openai":
            guard let model = r["model"]?.stringValue else { throw ConfigError(resource: name, message: "an openai model needs 'model'") }
            var key: String?
            if let env = r["api_key_env"]?.stringValue {
                guard let v = ProcessInfo.processInfo.environment[env], !v.isEmpty else {
                    throw ConfigError(resource: name, message: "api_key_env names \(env), which is not set")
                }
                key = v
            }
            return try OpenAIChatModel(urls: try urls(r, name), model: model, apiKey: key, concurrency: r["concurrency"]?.intValue ?? 64,
                                       shared: limits, client: try client(r))
        case "haps":
            return try HAPSChatModel(url: try urls(r, name)[0], name: r["model"]?.stringValue ?? name, client: try client(r))
        case "local":
            guard let relative = r["path"]?.stringValue else { throw ConfigError(resource: name, message: "a local model needs 'path' (a Hugging Face model directory)") }
            let path = resolve(relative, baseDirectory)
            let template = try r["chat_template"]?.stringValue.map { t in
                guard let known = ChatTemplate(rawValue: t) else {
                    throw ConfigError(resource: name, message: "chat_template '\(t)' is not one of llama3, qwen2, mistral")
                }
                return known
            }
            let model = try LocalChatModel(directory: path, name: r["model"]?.stringValue ?? Path.lastComponent(path), template: template)
            if let threads = r["threads"]?.intValue { try BLAS.shared().threads = threads }
            return model
        case let other:
            throw ConfigError(resource: name, message: "unknown model backend \(other.map { "'\($0)'" } ?? "(none)"); use openai, haps or local")
        }
    }

    public static func retriever(_ r: JSONValue, name: String, baseDirectory: String = "") throws -> any Retriever {
        switch r["backend"]?.stringValue {
        case "http": return try HTTPRetriever(url: try urls(r, name)[0], client: try client(r))
        case "lexical": return LexicalRetriever()
        case "dense":
            let path = resolve(r["path"]?.stringValue ?? "models/all-MiniLM-L6-v2", baseDirectory)
            guard FileIO.exists(path + "/config.json") else {
                throw ConfigError(resource: name, message: "no sentence-transformers model at \(path) (scripts/fetch-models.sh puts all-MiniLM-L6-v2 in models/)")
            }
            return try sharedDense(path)
        case let other:
            throw ConfigError(resource: name, message: "unknown retriever backend \(other.map { "'\($0)'" } ?? "(none)"); use http, lexical or dense")
        }
    }

    private static let denseLock = Lock()
    nonisolated(unsafe) private static var dense: [String: DenseRetriever] = [:]

    /// One dense retriever (and embedding cache) per model directory in a process: stages of a
    /// run that search the same paragraphs share their embeddings.
    static func sharedDense(_ path: String) throws -> DenseRetriever {
        try denseLock.withLock {
            if let r = dense[path] { return r }
            let r = DenseRetriever(encoder: try SentenceEncoder(directory: path))
            dense[path] = r
            return r
        }
    }

    /// Every URL the resources point at, checked with a TCP connect (1 s each, all at once),
    /// and an OpenAI server's protocol with `GET {url}/models` (any program listening on the
    /// port would pass a connect): the endpoints that do not answer, or answer as something
    /// else, each with how to start its server. Called before any work, so a pipeline against
    /// absent servers fails in about a second and names them all. (A `haps` server is only
    /// connected to: its one request runs the model.)
    public static func unreachable(_ resources: [String: JSONValue]) -> [String] {
        var checks: [(String, String, String, Bool)] = []  // (resource, url, hint, speaks OpenAI)
        for (name, r) in resources.sorted(by: { $0.key < $1.key }) {
            guard let backend = r["backend"]?.stringValue, backend != "lexical", let us = try? urls(r, name) else { continue }
            for u in us {
                let hint: String
                if name == "retriever" || backend == "http" {
                    let port = OpenAIChatModel.port(of: u) ?? "PORT"
                    hint = "start one: haps-pipe serve --retriever models/all-MiniLM-L6-v2 --port \(port) (or the reference's retrieval server), "
                        + "or use the lexical retriever (--retriever lexical; {\"backend\": \"lexical\"} in a spec)"
                } else {
                    let m = r["model"]?.stringValue ?? name
                    hint = "start it: vllm serve \(m) --port \(OpenAIChatModel.port(of: u) ?? "PORT")"
                }
                checks.append((name, u, hint, backend == "openai"))
            }
        }
        final class Box: @unchecked Sendable { var bad: [Int: String] = [:]; let lock = Lock() }
        let box = Box()
        let all = checks
        DispatchQueue.concurrentPerform(iterations: all.count) { i in
            let (name, u, hint, openAI) = all[i]
            if !reachable(u) { box.lock.withLock { box.bad[i] = "\(name): nothing answers at \(u)\n    \(hint)" }; return }
            if openAI, let other = notOpenAI(u) {
                box.lock.withLock { box.bad[i] = "\(name): what answers at \(u) is not an OpenAI-compatible server (\(other))\n    \(hint)" }
            }
        }
        return box.bad.keys.sorted().map { box.bad[$0]! }
    }

    /// Nil when `GET {url}/models` answers as an OpenAI server does (a JSON object with a
    /// `data` list, or 401/403: a key is needed, so it is a server that checks keys); else what
    /// answered instead. Which models it serves is not checked: llama.cpp's server answers for
    /// any name, vLLM's names the model it lacks in its first reply's error.
    static func notOpenAI(_ url: String) -> String? {
        guard let client = try? HTTPClient(connectTimeout: 1, timeout: 3, retry: RetryPolicy(maxAttempts: 1)) else { return nil }
        let base = url.hasSuffix("/") ? String(url.dropLast()) : url
        func oneLine(_ s: String) -> String {
            let words = s.split(whereSeparator: { $0 == " " || $0.isNewline }).joined(separator: " ")
            return words.count > 80 ? String(words.prefix(80)) + "…" : words
        }
        let r: HTTPResponse
        do { r = try client.get(base + "/models") } catch {
            if case .status(let code) = error.code, code == 401 || code == 403 { return nil }
            return "GET \(base)/models: \(oneLine(error.message))"
        }
        if r.status == 401 || r.status == 403 { return nil }
        let snippet = oneLine(r.text)
        guard r.status == 200 else { return "GET \(base)/models: HTTP \(r.status): \(snippet)" }
        guard let json = try? JSONParser.parse(bytes: r.body), json["data"]?.arrayValue != nil else {
            return "GET \(base)/models did not answer with a list of models: \(snippet)"
        }
        return nil
    }

    /// A TCP connect to the URL's host and port, within `timeout` seconds.
    static func reachable(_ url: String, timeout: Double = 1) -> Bool {
        let parts = url.split(separator: "/", omittingEmptySubsequences: true)
        guard parts.count >= 2 else { return false }
        let hostPort = String(parts[1])
        var host = hostPort, port = url.hasPrefix("https") ? "443" : "80"
        if let colon = hostPort.lastIndex(of: ":") { host = String(hostPort[..<colon]); port = String(hostPort[hostPort.index(after: colon)...]) }
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var res: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(host, port, &hints, &res) == 0, let first = res else { return false }
        defer { freeaddrinfo(res) }
        let fd = socket(first.pointee.ai_family, first.pointee.ai_socktype | Int32(SOCK_NONBLOCK.rawValue), first.pointee.ai_protocol)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        if connect(fd, first.pointee.ai_addr, first.pointee.ai_addrlen) == 0 { return true }
        guard errno == EINPROGRESS else { return false }
        var p = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
        guard poll(&p, 1, Int32(timeout * 1000)) == 1 else { return false }
        var err: Int32 = 0
        var len = socklen_t(MemoryLayout<Int32>.size)
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len)
        return err == 0
    }
}
