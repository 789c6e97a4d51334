import Foundation
import Hummingbird
import JSON
import LLM
import NIOCore
import Stages

/// A trained HAPS system behind OpenAI's chat completions: `model: "haps"` routes the question,
/// adapts the chosen candidates and runs the dialogue (the reply is the final answer, the
/// `haps` object says how it was reached); `model: "haps-route"` gives the routing decision
/// alone. Answers run off the event loops, at most `maxQueue` at once (429 beyond).
final class SystemRoutes: @unchecked Sendable {
    static let answerModel = "haps", routeModel = "haps-route"
    static let options = ["transcript", "lora", "context"]

    let served: ServedSystem
    let metrics: ServeMetrics
    let queue: OffLoopQueue

    init(served: ServedSystem, metrics: ServeMetrics, maxQueue: Int) {
        self.served = served; self.metrics = metrics; queue = OffLoopQueue(limit: maxQueue)
    }

    var modelIDs: [String] { [SystemRoutes.answerModel, SystemRoutes.routeModel] }

    /// What a request asks of the system.
    struct Ask {
        var question: String
        var routeOnly: Bool
        var transcript = false
        var lora: Bool
        var context: [HotpotQuestion.Paragraph]?
        var stream = false
        var includeUsage = false
    }

    /// Reads and checks a request to the system (`routes` checks the common fields first).
    func ask(_ v: JSONValue, model: String, routes: Routes) throws -> Ask {
        let messages = try routes.messages(v["messages"])
        guard let question = messages.last(where: { $0.role == "user" })?.content, !question.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty else {
            throw APIError(status: .badRequest, message: "the question is the last user message, and there is none (or it is empty)", param: "messages")
        }
        if try routes.integer(v, "n") ?? 1 != 1 { throw APIError(status: .badRequest, message: "only n = 1 is supported", param: "n") }
        if let t = try routes.number(v, "temperature"), t != 0 {
            throw APIError(status: .badRequest, message: "HAPS answers greedily, as evaluate does: temperature must be 0 or absent (got \(t))", param: "temperature")
        }
        for field in ["max_tokens", "max_completion_tokens", "stop", "tools"] where v[field] != nil && v[field] != .null {
            throw APIError(status: .badRequest, message: "'\(field)' is the system's to set (its dialogue's settings); leave it out", param: field)
        }
        var ask = Ask(question: question, routeOnly: model == SystemRoutes.routeModel, lora: served.canAdapt)
        if let h = v["haps"], h != .null {
            guard let members = h.objectMembers else { throw APIError(status: .badRequest, message: "'haps' must be an object", param: "haps") }
            if let unknown = members.first(where: { !SystemRoutes.options.contains($0.key) }) {
                throw APIError(status: .badRequest, message: "unknown haps field '\(unknown.key)'; known: \(SystemRoutes.options.joined(separator: ", "))", param: "haps")
            }
            ask.transcript = try flag(h, "transcript") ?? false
            ask.lora = try flag(h, "lora") ?? ask.lora
            if let c = h["context"], c != .null { ask.context = try paragraphs(c) }
        }
        ask.stream = try flag(v, "stream") ?? false
        if let o = v["stream_options"], o != .null { ask.includeUsage = try flag(o, "include_usage") ?? false }
        return ask
    }

    func flag(_ v: JSONValue, _ key: String) throws -> Bool? {
        guard let f = v[key], f != .null else { return nil }
        guard let b = f.boolValue else { throw APIError(status: .badRequest, message: "'\(key)' must be true or false, got \(f.canonical)", param: key) }
        return b
    }

    /// `haps.context`: the question's paragraphs, each a string or HotpotQA's [title, [sentences]].
    func paragraphs(_ v: JSONValue) throws -> [HotpotQuestion.Paragraph] {
        guard let list = v.arrayValue else {
            throw APIError(status: .badRequest, message: "'haps.context' must be a list of paragraphs (strings, or [title, [sentences]])", param: "haps")
        }
        return try list.enumerated().map { i, p in
            if let s = p.stringValue { return HotpotQuestion.Paragraph(title: "", sentences: [s]) }
            if let pair = p.arrayValue, pair.count == 2, let title = pair[0].stringValue, let sentences = pair[1].arrayValue?.compactMap(\.stringValue),
               sentences.count == pair[1].arrayValue?.count {
                return HotpotQuestion.Paragraph(title: title, sentences: sentences)
            }
            throw APIError(status: .badRequest, message: "haps.context[\(i)] must be a string or [title, [sentences]], got \(p.canonical.prefix(80))", param: "haps")
        }
    }

    /// Counts a question against the queue: 429 when `--max-queue` are being answered.
    func admit() throws {
        guard queue.admit() else {
            throw APIError(status: .tooManyRequests, message: "\(queue.limit) questions are being answered; retry later", type: "rate_limit_error", code: "rate_limit_exceeded")
        }
    }

    /// Runs `body` (the engine's calls block) off the event loops, counted against the queue.
    func offLoop<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try admit()
        return try await queue.run(body)
    }

    func respond(_ v: JSONValue, model: String, routes: Routes) async throws -> Response {
        let ask = try self.ask(v, model: model, routes: routes)
        let served = self.served
        if ask.routeOnly {
            let decision = try await offLoop { try served.route(ask.question) }
            metrics.routed(action: decision.action)
            let fields = routeFields(decision)
            let names = served.space.assignment(of: decision.action).map { served.names[$0] }
            let content = JSONValue.object(zip(served.space.roles, names).map { ($0, .string($1)) }).canonical
            return ask.stream ? stream(model: model, content: content, haps: .object(fields), usage: ask.includeUsage ? usage(0, 0) : nil)
                              : completion(model: model, content: content, finishReason: "stop", usage: usage(0, 0), haps: .object(fields))
        }
        guard served.canAnswer else {
            throw APIError(status: .badRequest, message: "\(served.label) cannot answer questions here: \(served.missing ?? "a candidate is missing"); model \"haps-route\" routes without them",
                           param: "model")
        }
        if ask.lora && !served.canAdapt {
            throw APIError(status: .badRequest, message: served.kind == .router
                ? "\(served.label) is an sft-train result (a router, no generators): ask with \"haps\": {\"lora\": false}"
                : "\(served.label)'s candidates include a server, where no update can be applied: ask with \"haps\": {\"lora\": false}", param: "haps")
        }
        let q: HotpotQuestion
        do { q = try served.question(text: ask.question, context: ask.context) } catch let e as ServeError {
            throw APIError(status: .badRequest, message: e.description, param: "messages")
        }
        if ask.stream {
            try admit()  // before the stream's head: a full queue is still a 429
            let (turns, continuation) = AsyncStream<DialogueTurn>.makeStream()
            let task = Task { try await queue.run { try served.answer(q, lora: ask.lora, onTurn: { continuation.yield($0) }) } }
            return streamAnswer(model: model, ask: ask, turns: turns, continuation: continuation, task: task)
        }
        let a = try await offLoop { try served.answer(q, lora: ask.lora) }
        return answerResponse(model: model, ask: ask, a)
    }

    func answerResponse(model: String, ask: Ask, _ a: ServedSystem.Answer) -> Response {
        metrics.answered(a, names: served.names, space: served.space)
        let r = a.sample.result
        return completion(model: model, content: r.answer, finishReason: r.finished ? "stop" : "length",
                          usage: usage(r.promptTokens, r.completionTokens), haps: hapsObject(a, transcript: ask.transcript))
    }

    // MARK: The response's parts

    func usage(_ prompt: Int, _ completion: Int) -> JSONValue {
        ["prompt_tokens": .number(Double(prompt)), "completion_tokens": .number(Double(completion)), "total_tokens": .number(Double(prompt + completion))]
    }

    /// The routing decision: the action (its index in the score tables), each role's candidate,
    /// and the router's distribution over every action.
    func routeFields(_ d: RouteDecision) -> [(String, JSONValue)] {
        let space = served.space
        let names = space.assignment(of: d.action).map { served.names[$0] }
        return [("system", .string(served.label)), ("action", .number(Double(d.action)))] + zip(space.roles, names).map { ($0, .string($1)) } + [
            ("distribution", .array(d.distribution.map { .number($0) })),
            ("actions", .array(space.indices.map { i in .object(zip(space.roles, space.assignment(of: i)).map { ($0, .string(served.names[$1])) }) })),
        ]
    }

    func hapsObject(_ a: ServedSystem.Answer, transcript: Bool) -> JSONValue {
        var fields = routeFields(a.decision)
        fields += [("lora", .bool(a.adapted)), ("finished", .bool(a.sample.result.finished)), ("calls", .number(Double(a.sample.result.turns.count)))]
        fields.append(("tokens", .object(tokensByCandidate(a).map { ($0.name, ["prompt": .number(Double($0.prompt)), "completion": .number(Double($0.completion))]) })))
        if let cost = a.sample.row["cost"] { fields.append(("cost", cost)) }
        if transcript { fields.append(("transcript", a.sample.turns)) }
        return .object(fields)
    }

    /// Tokens each chosen candidate used (both of its roles together).
    func tokensByCandidate(_ a: ServedSystem.Answer) -> [(name: String, prompt: Int, completion: Int)] {
        let assignment = served.space.assignment(of: a.decision.action)
        var out: [(name: String, prompt: Int, completion: Int)] = []
        for c in Set(assignment).sorted() {
            let roles = Set(zip(served.space.roles, assignment).filter { $0.1 == c }.map(\.0))
            let turns = a.sample.result.turns.filter { roles.contains($0.role.rawValue) }
            out.append((served.names[c], turns.reduce(0) { $0 + $1.promptTokens }, turns.reduce(0) { $0 + $1.completionTokens }))
        }
        return out
    }

    func completion(model: String, content: String, finishReason: String, usage: JSONValue, haps: JSONValue) -> Response {
        Routes.json([
            "id": .string("chatcmpl-\(UUID().uuidString.lowercased())"), "object": "chat.completion",
            "created": .number(Double(Int(Date().timeIntervalSince1970))), "model": .string(model),
            "choices": [["index": 0, "message": ["role": "assistant", "content": .string(content)], "finish_reason": .string(finishReason)]],
            "usage": usage, "haps": haps,
        ])
    }

    // MARK: Streaming

    /// One SSE event of OpenAI's chunk format.
    static func event(_ v: JSONValue) -> ByteBuffer { ByteBuffer(string: "data: \(v.canonical)\n\n") }

    func chunk(id: String, model: String, delta: JSONValue, finishReason: String?, extra: [(String, JSONValue)] = []) -> JSONValue {
        .object([("id", .string(id)), ("object", "chat.completion.chunk"), ("created", .number(Double(Int(Date().timeIntervalSince1970)))),
                 ("model", .string(model)),
                 ("choices", [.object([("index", 0), ("delta", delta), ("finish_reason", finishReason.map(JSONValue.string) ?? .null)])])] + extra)
    }

    static func sse(_ body: ResponseBody) -> Response {
        Response(status: .ok, headers: [.contentType: "text/event-stream", .cacheControl: "no-cache"], body: body)
    }

    /// A reply known at once (route-only) as a stream: the role, the content, the end.
    func stream(model: String, content: String, haps: JSONValue, usage: JSONValue?) -> Response {
        let id = "chatcmpl-\(UUID().uuidString.lowercased())"
        var events = [chunk(id: id, model: model, delta: ["role": "assistant", "content": ""], finishReason: nil),
                      chunk(id: id, model: model, delta: ["content": .string(content)], finishReason: nil),
                      chunk(id: id, model: model, delta: .object([]), finishReason: "stop", extra: [("haps", haps)])]
        if let usage { events.append(.object([("id", .string(id)), ("object", "chat.completion.chunk"), ("model", .string(model)), ("choices", []), ("usage", usage)])) }
        return SystemRoutes.sse(ResponseBody(contentsOf: events.map(SystemRoutes.event) + [ByteBuffer(string: "data: [DONE]\n\n")]))
    }

    /// The dialogue as it runs: a chunk per completed turn (its `haps.turn`, no content), then
    /// the final answer as the content, then the end with the `haps` object (and `usage` when
    /// `stream_options.include_usage` asks). A failure mid-way ends the stream with an error event.
    func streamAnswer(model: String, ask: Ask, turns: AsyncStream<DialogueTurn>, continuation: AsyncStream<DialogueTurn>.Continuation,
                      task: Task<ServedSystem.Answer, any Error>) -> Response {
        let id = "chatcmpl-\(UUID().uuidString.lowercased())"
        Task { _ = await task.result; continuation.finish() }
        return SystemRoutes.sse(ResponseBody { [self] writer in
            try await writer.write(SystemRoutes.event(chunk(id: id, model: model, delta: ["role": "assistant", "content": ""], finishReason: nil)))
            var n = 0
            for await t in turns {
                let turn: JSONValue = .object([("index", .number(Double(n))), ("step", .number(Double(t.step))), ("role", .string(t.role.rawValue)),
                                               ("call", .string(t.call.rawValue)), ("reply", .string(t.reply))] +
                                              (ask.transcript ? [("prompt", .string(t.prompt))] : []))
                try await writer.write(SystemRoutes.event(chunk(id: id, model: model, delta: .object([]), finishReason: nil, extra: [("haps", ["turn": turn])])))
                n += 1
            }
            switch await task.result {
            case .success(let a):
                metrics.answered(a, names: served.names, space: served.space)
                let r = a.sample.result
                try await writer.write(SystemRoutes.event(chunk(id: id, model: model, delta: ["content": .string(r.answer)], finishReason: nil)))
                try await writer.write(SystemRoutes.event(chunk(id: id, model: model, delta: .object([]), finishReason: r.finished ? "stop" : "length",
                                                                extra: [("haps", hapsObject(a, transcript: ask.transcript))])))
                if ask.includeUsage {
                    try await writer.write(SystemRoutes.event(.object([("id", .string(id)), ("object", "chat.completion.chunk"), ("model", .string(model)),
                                                                       ("choices", []), ("usage", usage(r.promptTokens, r.completionTokens))])))
                }
            case .failure(let error):
                let message = (error as? APIError)?.message ?? "\(error)"
                try await writer.write(SystemRoutes.event(["error": ["message": .string(message), "type": "server_error", "param": .null, "code": .null]]))
            }
            try await writer.write(ByteBuffer(string: "data: [DONE]\n\n"))
            try await writer.finish(nil)
        })
    }
}
