import Foundation
import Hummingbird
import JSON
import LLM
import NIOCore
import NN

struct Limits: Sendable {
    var maxBodyBytes: Int
    var maxTokens: Int
}

/// An error answered in OpenAI's shape: `{"error": {"message", "type", "param", "code"}}`.
struct APIError: Error {
    var status: HTTPResponse.Status
    var message: String
    var type = "invalid_request_error"
    var code: String?
    var param: String?

    var response: Response {
        var error: [(String, JSONValue)] = [("message", .string(message)), ("type", .string(type))]
        error.append(("param", param.map(JSONValue.string) ?? .null))
        error.append(("code", code.map(JSONValue.string) ?? .null))
        var response = Routes.json(.object([("error", .object(error))]), status: status)
        // The rest of a body too large is not read: the connection closes after the answer.
        if status == .contentTooLarge { response.headers[.connection] = "close" }
        return response
    }
}

/// The endpoints: OpenAI (`/v1/models`, `/v1/chat/completions`), the reference's model
/// protocol (`POST /`) and retrieval protocol (`POST /retrieve`).
struct Routes: Sendable {
    let model: ServedModel?
    let retriever: (any Retriever)?
    let limits: Limits
    /// A trained HAPS system (`--system`): models "haps" and "haps-route".
    var system: SystemRoutes? = nil
    var metrics = ServeMetrics()

    func register(on router: Router<BasicRequestContext>) {
        router.get("/v1/models") { _, _ in self.models() }
        router.get("/metrics") { _, _ in
            Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4"], body: .init(byteBuffer: ByteBuffer(string: self.metrics.text())))
        }
        router.post("/v1/chat/completions") { request, _ in await self.respond { try await self.chatCompletions(request) } }
        router.post("/") { request, _ in await self.respond { try await self.hapsProtocol(request) } }
        router.post("/retrieve") { request, _ in await self.respond { try await self.retrieve(request) } }
    }

    static func json(_ v: JSONValue, status: HTTPResponse.Status = .ok) -> Response {
        Response(status: status, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: v.canonical)))
    }

    func respond(_ body: () async throws -> Response) async -> Response {
        do { return try await body() } catch let e as APIError { return e.response } catch {
            return APIError(status: .internalServerError, message: "\(error)", type: "server_error").response
        }
    }

    /// The request body as JSON, refusing other content types (415), bodies over the limit (413),
    /// invalid UTF-8 and malformed JSON (400).
    func body(_ request: Request) async throws -> JSONValue {
        let type = request.headers[.contentType]?.split(separator: ";").first?.trimmingCharacters(in: .whitespaces).lowercased()
        guard type == "application/json" else {
            throw APIError(status: .unsupportedMediaType, message: "the body must be JSON, sent with 'Content-Type: application/json' (got \(type.map { "'\($0)'" } ?? "none"))")
        }
        let buffer: ByteBuffer
        do { buffer = try await request.body.collect(upTo: limits.maxBodyBytes) } catch is NIOTooManyBytesError {
            throw APIError(status: .contentTooLarge, message: "the request body is larger than \(limits.maxBodyBytes) bytes")
        } catch {  // the connection closed (by the client, or at --read-timeout): the log says so
            throw APIError(status: .requestTimeout, message: "the request body did not arrive in full: \(error)")
        }
        let bytes = Array(buffer.readableBytesView)
        if let offset = Routes.invalidUTF8(bytes) {
            throw APIError(status: .badRequest, message: "the body is not valid UTF-8 (at byte \(offset))")
        }
        do { return try JSONParser.parse(bytes: bytes) } catch {
            throw APIError(status: .badRequest, message: "the body is not valid JSON: \(error)")
        }
    }

    /// The offset of the first byte that is not valid UTF-8, or nil if all are (the JSON parser
    /// would turn such bytes into U+FFFD silently).
    static func invalidUTF8(_ bytes: [UInt8]) -> Int? {
        var parser = Unicode.UTF8.ForwardParser()
        var input = bytes.makeIterator()
        var offset = 0
        while true {
            switch parser.parseScalar(from: &input) {
            case .valid(let scalar): offset += scalar.count
            case .emptyInput: return nil
            case .error: return offset
            }
        }
    }

    func models() -> Response {
        let ids = (model.map { [$0.name] } ?? []) + (system?.modelIDs ?? [])
        let data: [JSONValue] = ids.map { ["id": .string($0), "object": "model", "owned_by": "haps-pipe", "created": 0] }
        return Routes.json(["object": "list", "data": .array(data)])
    }

    /// An optional integer field: absent or null is nil; anything but an integer (2.5, "4",
    /// 1e18 beyond what an Int holds exactly) is a 400, never a silent default.
    func integer(_ v: JSONValue, _ key: String) throws -> Int? {
        guard let f = v[key], f != .null else { return nil }
        guard let i = f.intValue else {
            throw APIError(status: .badRequest, message: "'\(key)' must be an integer, got \(f.canonical)", param: key)
        }
        return i
    }

    /// An optional number field (absent or null: nil; anything else but a number: 400).
    func number(_ v: JSONValue, _ key: String) throws -> Double? {
        guard let f = v[key], f != .null else { return nil }
        guard let d = f.doubleValue else { throw APIError(status: .badRequest, message: "'\(key)' must be a number, got \(f.canonical)", param: key) }
        return d
    }

    /// The roles the chat templates know; another would be written into the prompt verbatim.
    static let roles = ["system", "developer", "user", "assistant"]

    /// Messages as OpenAI sends them: a non-empty list of {role, content string}, the role one
    /// of `roles`.
    func messages(_ v: JSONValue?) throws -> [ChatMessage] {
        guard let list = v?.arrayValue, !list.isEmpty else {
            throw APIError(status: .badRequest, message: "'messages' must be a non-empty list", param: "messages")
        }
        return try list.enumerated().map { i, m in
            guard let role = m["role"]?.stringValue, let content = m["content"]?.stringValue else {
                throw APIError(status: .badRequest, message: "messages[\(i)] needs a string 'role' and a string 'content'", param: "messages")
            }
            guard Routes.roles.contains(role) else {
                throw APIError(status: .badRequest, message: "messages[\(i)].role must be one of \(Routes.roles.joined(separator: ", ")), got \(JSONValue.string(role).canonical)",
                               param: "messages")
            }
            // OpenAI's newer clients send "developer" for what older ones call "system".
            return ChatMessage(role: role == "developer" ? "system" : role, content: content)
        }
    }

    /// OpenAI's `stop`: absent, null, a string or a list of strings; anything else is a 400.
    func stops(_ v: JSONValue?) throws -> [String] {
        guard let v, v != .null else { return [] }
        if let s = v.stringValue { return [s] }
        guard let list = v.arrayValue?.compactMap(\.stringValue), list.count == v.arrayValue?.count else {
            throw APIError(status: .badRequest, message: "'stop' must be a string or a list of strings, got \(v.canonical)", param: "stop")
        }
        return list
    }

    /// Generates through the batcher; a full queue is a 429.
    func generate(_ served: ServedModel, _ messages: [ChatMessage], maxTokens: Int, temperature: Double, topP: Double,
                  seed: Int?, stop: [String]) async throws -> (ChatReply, [Int]) {
        guard maxTokens >= 1 && maxTokens <= limits.maxTokens else {
            throw APIError(status: .badRequest, message: "max_tokens must be between 1 and \(limits.maxTokens)", param: "max_tokens")
        }
        guard temperature >= 0, topP > 0, topP <= 1 else {
            throw APIError(status: .badRequest, message: "temperature must be ≥ 0 and top_p in (0, 1]", param: "temperature")
        }
        let m = served.codec
        let prompt = m.tokenizer.encode(m.template.render(messages))
        let context = served.maxPositions
        guard prompt.count + maxTokens <= context else {
            throw APIError(status: .badRequest, message: "This model's maximum context length is \(context) tokens. However, you requested \(prompt.count + maxTokens) tokens (\(prompt.count) in the messages, \(maxTokens) in the completion). Please reduce the length of the messages or completion.",
                           code: "context_length_exceeded", param: "messages")
        }
        let request = GenerationRequest(prompt: prompt, maxNewTokens: maxTokens, temperature: Float(temperature), topP: Float(topP),
                                        seed: UInt64(truncatingIfNeeded: seed ?? 0), stopTokens: m.stopTokens)
        let result: GenerationResult
        do { result = try await served.generator.generate(request) } catch let full as QueueFull {
            throw APIError(status: .tooManyRequests, message: "\(full); retry later", type: "rate_limit_error", code: "rate_limit_exceeded")
        }
        var ids = result.ids
        if result.finishReason == "stop" { ids.removeLast() }
        var text = m.tokenizer.decode(ids, skipSpecial: true)
        var finish = result.finishReason
        for s in stop where !s.isEmpty {
            if let r = text.range(of: s) { text = String(text[..<r.lowerBound]); finish = "stop" }
        }
        return (ChatReply(text: text, promptTokens: prompt.count, completionTokens: result.ids.count, finishReason: finish), result.ids)
    }

    func chatCompletions(_ request: Request) async throws -> Response {
        let v = try await body(request)
        let asked = v["model"]?.stringValue
        if let system, asked.map(system.modelIDs.contains) ?? (model == nil) {
            return try await system.respond(v, model: asked ?? SystemRoutes.answerModel, routes: self)
        }
        let ids = (model.map { [$0.name] } ?? []) + (system?.modelIDs ?? [])
        guard let served = model, asked == nil || asked == served.name else {
            if ids.isEmpty { throw APIError(status: .notFound, message: "this server serves no model (start it with --model or --system)", code: "model_not_found") }
            throw APIError(status: .notFound, message: "The model '\(asked ?? "")' does not exist; this server has \(ids.map { "'\($0)'" }.joined(separator: ", ")).",
                           code: "model_not_found", param: "model")
        }
        if try integer(v, "n") ?? 1 != 1 { throw APIError(status: .badRequest, message: "only n = 1 is supported", param: "n") }
        if v["stream"]?.boolValue == true { throw APIError(status: .badRequest, message: "streaming is not supported", param: "stream") }
        let stop = try stops(v["stop"])
        let (reply, _) = try await generate(served, try messages(v["messages"]),
                                            maxTokens: try integer(v, "max_tokens") ?? integer(v, "max_completion_tokens") ?? 256,
                                            temperature: try number(v, "temperature") ?? 1, topP: try number(v, "top_p") ?? 1,
                                            seed: try integer(v, "seed"), stop: stop)
        let created = Int(Date().timeIntervalSince1970)
        return Routes.json([
            "id": .string("chatcmpl-\(UUID().uuidString.lowercased())"), "object": "chat.completion", "created": .number(Double(created)),
            "model": .string(served.name),
            "choices": [["index": 0, "message": ["role": "assistant", "content": .string(reply.text)],
                         "finish_reason": .string(reply.finishReason ?? "stop")]],
            "usage": ["prompt_tokens": .number(Double(reply.promptTokens)), "completion_tokens": .number(Double(reply.completionTokens)),
                      "total_tokens": .number(Double(reply.promptTokens + reply.completionTokens))],
        ])
    }

    /// The reference's model protocol: {"messages", "config": {temperature, top_p, max_tokens, n}}
    /// → {"response": [text], "status": 200, "time": ...}.
    func hapsProtocol(_ request: Request) async throws -> Response {
        guard let served = model else { throw APIError(status: .notFound, message: "this server serves no model (start it with --model)") }
        let v = try await body(request)
        let config = v["config"] ?? .object([])
        guard let members = config.objectMembers else { throw APIError(status: .badRequest, message: "'config' must be an object", param: "config") }
        let known = ["temperature", "top_p", "max_tokens", "n"]
        if let unknown = members.first(where: { !known.contains($0.key) }) {
            throw APIError(status: .badRequest, message: "unknown config field '\(unknown.key)'; known: \(known.joined(separator: ", "))", param: "config")
        }
        if try integer(config, "n") ?? 1 != 1 { throw APIError(status: .badRequest, message: "only n = 1 is supported", param: "config.n") }
        let (reply, _) = try await generate(served, try messages(v["messages"]), maxTokens: try integer(config, "max_tokens") ?? 256,
                                            temperature: try number(config, "temperature") ?? 0, topP: try number(config, "top_p") ?? 1,
                                            seed: GenerationSettings.reference.seed, stop: [])  // the reference's protocol carries no seed
        return Routes.json(["response": [.string(reply.text)], "status": 200, "time": .string(ISO8601DateFormatter().string(from: Date()))])
    }

    /// The reference's retrieval protocol: {"entity": str, "data": [str]} → {"response": best};
    /// 400 with {"error"} for a non-string entity, a non-list data or an empty list.
    func retrieve(_ request: Request) async throws -> Response {
        guard let retriever else { return Routes.json(["error": "this server serves no retriever (start it with --retriever)"], status: .notFound) }
        let v = try await body(request)
        guard let entity = v["entity"]?.stringValue else { return Routes.json(["error": "'entity' must be a string"], status: .badRequest) }
        guard let data = v["data"]?.arrayValue else { return Routes.json(["error": "'data' must be a list of strings"], status: .badRequest) }
        guard !data.isEmpty else { return Routes.json(["error": "'data' is an empty list"], status: .badRequest) }
        let paragraphs = data.compactMap(\.stringValue)
        guard paragraphs.count == data.count else { return Routes.json(["error": "'data' must be a list of strings"], status: .badRequest) }
        // Embedding is CPU work: run it off the server's event loops.
        let best: String = try await withCheckedThrowingContinuation { c in
            DispatchQueue.global().async { c.resume(with: Result { try retriever.retrieve(entity: entity, paragraphs: paragraphs) }) }
        }
        return Routes.json(["response": .string(best)])
    }
}

/// One line per request on standard error: time, method, path, status, duration.
struct RequestLog: RouterMiddleware {
    let metrics: ServeMetrics
    func handle(_ request: Request, context: BasicRequestContext, next: (Request, BasicRequestContext) async throws -> Response) async throws -> Response {
        let start = ContinuousClock.now
        var status = 500
        defer {
            let ms = (ContinuousClock.now - start) / .milliseconds(1)
            metrics.request(path: request.uri.path, status: status, seconds: ms / 1000)
            let line = "\(ISO8601DateFormatter().string(from: Date())) \(request.method) \(request.uri.path) \(status) \(String(format: "%.1f", ms)) ms\n"
            FileHandle.standardError.write(Data(line.utf8))
        }
        do {
            let response = try await next(request, context)
            status = response.status.code
            return response
        } catch let e as Hummingbird.HTTPError {
            status = e.status.code
            throw e
        }
    }
}

/// Answers 413 at once to a request whose `Content-Length` passes `maxBytes`, before any of its
/// body is read (the route's own check, while reading, covers bodies sent without a length).
struct BodyLimit: RouterMiddleware {
    let maxBytes: Int
    func handle(_ request: Request, context: BasicRequestContext, next: (Request, BasicRequestContext) async throws -> Response) async throws -> Response {
        if let length = request.headers[.contentLength], !length.isEmpty, length.allSatisfy(\.isASCII), length.allSatisfy(\.isNumber),
           Int(length) ?? .max > maxBytes {
            return APIError(status: .contentTooLarge, message: "the request body is larger than \(maxBytes) bytes (Content-Length: \(length))").response
        }
        return try await next(request, context)
    }
}

/// Requires `Authorization: Bearer <key>`, the scheme in any case (RFC 9110 §11.1); 401 in
/// OpenAI's error shape otherwise.
struct BearerKey: RouterMiddleware {
    let key: String

    /// Whether an Authorization header carries the key; compares in time independent of where
    /// a wrong key differs.
    func accepts(_ header: String?) -> Bool {
        guard let header, let space = header.firstIndex(of: " "), header[..<space].lowercased() == "bearer" else { return false }
        let given = Array(header[space...].trimmingCharacters(in: .whitespaces).utf8), expected = Array(key.utf8)
        guard given.count == expected.count else { return false }
        return zip(given, expected).reduce(0) { $0 | ($1.0 ^ $1.1) } == 0
    }

    func handle(_ request: Request, context: BasicRequestContext, next: (Request, BasicRequestContext) async throws -> Response) async throws -> Response {
        guard accepts(request.headers[.authorization]) else {
            return APIError(status: .unauthorized, message: "a valid API key is required (Authorization: Bearer ...)", type: "invalid_request_error",
                            code: "invalid_api_key").response
        }
        return try await next(request, context)
    }
}
