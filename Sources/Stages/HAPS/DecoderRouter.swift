#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#endif
public import JSON
public import LLM
public import NN
public import Pipeline

/// What the parameter generators read of the router (rl-train's `pooling`): the mean of its
/// last hidden states over the whole routing prompt (the reference's), or over the question's
/// tokens only, where the prompt's long fixed wording does not dilute the question
/// (docs/routing.md, "A planted-adaptation world").
public enum Pooling: String, ParameterEnum, Sendable { case prompt, question }

/// The router's prompt: a system message and a user message, with Python `str.format`
/// fields `{question}`, `{candidates}` (one `id: name` line per candidate) and `{format}`
/// (the reply's shape, `{"teacher": <id>, "student": <id>}`). The project's own wording is
/// `standard`; `load(directory:)` reads a user's (`system.txt`, `user.txt`), so the
/// reference's strings from its `sft.py` can be used unchanged.
public struct RouterPrompt: Sendable, Equatable {
    public var system: String
    public var user: String

    public init(system: String, user: String) { self.system = system; self.user = user }

    public static let standard = RouterPrompt(
        system: "You route questions to language models. Two agents answer each question together: a student, "
            + "who searches a knowledge base and answers, and a teacher, who reviews every step of the student. "
            + "Choose the candidate model that should play each role so that the final answer is most likely correct.",
        user: "Dataset: HotpotQA, multi-hop questions over Wikipedia paragraphs.\n\nQuestion: {question}\n\n"
            + "Candidate models:\n{candidates}\n\nReply with one JSON object and nothing else: {format}")

    /// `system.txt` and `user.txt` of `directory`; each must use only the known fields.
    public static func load(directory: String) throws -> RouterPrompt {
        func read(_ name: String) throws -> String {
            do { return try FileIO.readString(directory + "/" + name) } catch {
                throw RouterError("router prompts: cannot read \(directory)/\(name) (\(error.reason)); a prompt directory holds system.txt and user.txt")
            }
        }
        let p = RouterPrompt(system: try read("system.txt"), user: try read("user.txt"))
        for (name, text) in [("system.txt", p.system), ("user.txt", p.user)] {
            let fields = try PythonFormat.fields(text)
            if let bad = fields.first(where: { !["question", "candidates", "format"].contains($0) }) {
                throw RouterError("router prompts: \(directory)/\(name) uses {\(bad)}; the fields are {question}, {candidates} and {format}")
            }
        }
        return p
    }

    /// [system, user] for a question. `date`: the Llama 3 templates' date block
    /// ("Cutting Knowledge Date: December 2023\nToday Date: …"), which the reference's prompts
    /// carry; nil leaves it out.
    public func messages(question: String, candidates: [String], space: ActionSpace, date: String?) throws -> [ChatMessage] {
        let values = ["question": question,
                      "candidates": candidates.enumerated().map { "\($0): \($1)" }.joined(separator: "\n"),
                      "format": "{" + space.roles.map { "\"\($0)\": <id>" }.joined(separator: ", ") + "}"]
        var system = try PythonFormat.format(self.system, values)
        if let date { system = "Cutting Knowledge Date: December 2023\nToday Date: \(date)\n\n" + system }
        return [ChatMessage(role: "system", content: system), .user(try PythonFormat.format(user, values))]
    }
}

/// The reference's high-level router: a causal LM that reads the routing prompt and writes
/// `{"teacher": t,"student": s}`. Trained by `sft-train`; the directory is a Hugging Face model
/// directory plus `router.json` (kind `decoder`, prompt, candidates, settings).
public final class DecoderRouter: QuestionRouter, @unchecked Sendable {
    public static let kind = "decoder"

    /// How the prompt is built; every one of these is saved with the router.
    public struct Settings: Sendable, Equatable {
        public var prompt = RouterPrompt.standard
        /// Candidate names shown in the prompt, by id.
        public var candidates: [String]
        /// The Llama 3 date block (nil: none).
        public var date: String? = nil
        /// The reference tokenises the rendered prompt again when routing, so a Llama tokenizer
        /// adds a second BOS there (one in training); true reproduces that.
        public var doubleBOSWhenRouting = false
        /// New tokens of a routing reply (the reference: 16).
        public var maxNewTokens = 16
        public init(candidates: [String]) { self.candidates = candidates }
    }

    /// The engine holding the backbone, and the backbone in it (its weights change as the
    /// engine trains it: every route reads them as they are).
    public let engine: any Engine
    public let model: EngineModel
    public let tokenizer: BPETokenizer
    /// The tokenizer's file, saved with the router as it was read.
    let tokenizerJSON: [UInt8]
    public let template: ChatTemplate
    public let space: ActionSpace
    public let settings: Settings
    /// Set when training kept no epoch (none beat the best fixed action on valid): the router
    /// then routes every question to this action, as the reference falls back to it.
    public let fallbackAction: Int?
    let stopTokens: Set<Int>

    public var label: String {
        fallbackAction.map { "decoder router (no epoch beat best fixed: routes action \($0))" } ?? "decoder router (SFT)"
    }
    public var needsEmbeddings: Bool { false }

    public init(engine: any Engine, model: EngineModel, tokenizerJSON: [UInt8], template: ChatTemplate? = nil, space: ActionSpace, settings: Settings,
                fallbackAction: Int? = nil) throws {
        let tokenizer = try BPETokenizer(json: try JSONParser.parse(bytes: tokenizerJSON), path: "tokenizer.json")
        let template = template ?? ChatTemplate.forFamily(model.config.family)
        self.engine = engine; self.model = model; self.tokenizer = tokenizer; self.tokenizerJSON = tokenizerJSON; self.template = template
        self.space = space; self.settings = settings; self.fallbackAction = fallbackAction
        stopTokens = Set(model.config.eosTokenIDs + template.endOfTurn.compactMap { tokenizer.addedTokens[$0] })
    }

    /// A model directory (config.json, model.safetensors, tokenizer.json) as a router, its
    /// backbone loaded into `engine` (trainable): a backbone to train, or a trained router's
    /// own directory.
    public convenience init(directory: String, engine: any Engine, template: ChatTemplate? = nil, space: ActionSpace, settings: Settings,
                            fallbackAction: Int? = nil) throws {
        let bytes: [UInt8]
        do { bytes = try FileIO.read(directory + "/tokenizer.json") } catch {
            throw RouterError("\(directory): no tokenizer.json (a router's backbone needs its tokenizer)")
        }
        let model = try engine.loadModel(directory: directory, name: "router", trainable: true)
        try self.init(engine: engine, model: model, tokenizerJSON: bytes, template: template, space: space, settings: settings, fallbackAction: fallbackAction)
    }

    /// The same router (the same backbone in the same engine) that routes every question to
    /// `fallbackAction` (nil: by its replies).
    public func with(fallbackAction: Int?) throws -> DecoderRouter {
        try DecoderRouter(engine: engine, model: model, tokenizerJSON: tokenizerJSON, template: template, space: space, settings: settings,
                          fallbackAction: fallbackAction)
    }

    // MARK: Prompt and target

    /// The prompt's token ids (the chat template of [system, user], ending with the assistant
    /// header); `routing` adds the reference's second BOS when the settings ask for it.
    public func promptTokens(_ question: String, routing: Bool = false) throws -> [Int] {
        let messages = try settings.prompt.messages(question: question, candidates: settings.candidates, space: space, date: settings.date)
        var ids = tokenizer.encode(template.render(messages))
        if routing && settings.doubleBOSWhenRouting, let bos = model.config.bosTokenID { ids.insert(bos, at: 0) }
        return ids
    }

    /// The target's ids: the SFT row's output (`{"teacher": 0,"student": 1}`), tokenised on its
    /// own, then end-of-sequence (the template's end of turn).
    public func targetTokens(_ output: String) throws -> [Int] {
        guard let end = template.endOfTurn.compactMap({ tokenizer.addedTokens[$0] }).first ?? model.config.eosTokenIDs.first else {
            throw RouterError("the backbone has no end-of-sequence token (eos_token_id in config.json)")
        }
        return tokenizer.encode(output) + [end]
    }

    /// Prompt + target, and where the target starts (the loss is on the target only).
    public func example(question: String, output: String) throws -> (tokens: [Int], targetsFrom: Int) {
        let prompt = try promptTokens(question)
        return (prompt + (try targetTokens(output)), prompt.count)
    }

    // MARK: Routing

    /// The action a reply names; anything else is action 0, as the reference falls back.
    public static func parse(_ reply: String, space: ActionSpace) -> Int { parsed(reply, space: space) ?? 0 }

    /// The action a reply names, or nil when it names none (what `parse` turns into 0, and
    /// what `sft-train` counts as unparsed). The reference's `parse_router_output`
    /// (joint_rl/utils.py), exactly: `l, r = txt.rfind("{"), txt.rfind("}") + 1`, then
    /// `json.loads(txt[l:r])` (Python's slice, by code points: empty when the last `}` comes
    /// before the last `{`) and `int()` of each role's value (`true` is 1, `1.7` is 1, `"1"` is
    /// 1, `"1.0"` fails); any exception gives (0, 0). An id outside the candidates is nil too:
    /// sft.py scores such a pair as `tuple2index.get((t, s), 0)`, action 0 (rl_batch.py's
    /// `candidate_pair[t]`, a dict {0: …, 1: …}, raises KeyError and ends the run there).
    /// With K candidates and other roles, each of `space.roles` is read the same way.
    public static func parsed(_ reply: String, space: ActionSpace) -> Int? {
        let text = Array(reply.unicodeScalars)
        let l = text.lastIndex(of: "{") ?? -1, r = (text.lastIndex(of: "}") ?? -1) + 1
        let start = l < 0 ? max(0, text.count + l) : l  // txt[-1:r] when there is no "{"
        guard start < r, case .dict(let object)? = try? PythonJSONLoads.loads(Array(text[start..<r])) else { return nil }
        var assignment: [Int] = []
        for role in space.roles {
            guard let v = object[role], let id = PythonJSONLoads.int(v), (0..<space.candidates).contains(id) else { return nil }
            assignment.append(id)
        }
        return space.index(of: assignment)
    }

    /// Greedy replies (at most `maxNewTokens`) to the routing prompts, batched.
    public func replies(_ questions: [String], batch: Int = 32) throws -> [String] {
        var out: [String] = []
        for start in stride(from: 0, to: questions.count, by: batch) {
            let calls = try questions[start..<min(questions.count, start + batch)].map {
                EngineCall(model: model, prompt: try promptTokens($0, routing: true), maxNewTokens: settings.maxNewTokens, stopTokens: stopTokens)
            }
            out += try engine.generate(calls).map { r in
                var ids = r.ids
                if r.finishReason == "stop" { ids.removeLast() }
                return tokenizer.decode(ids, skipSpecial: true)
            }
        }
        return out
    }

    /// Greedy actions, as the reference routes (what `sft-train` scores after each epoch).
    public func actions(_ questions: [String]) throws -> [Int] { try actionsAndReplies(questions).actions }

    /// Greedy actions with the replies they were parsed from, and how many did not parse.
    public func actionsAndReplies(_ questions: [String]) throws -> (actions: [Int], replies: [String], unparsed: Int) {
        if let fallbackAction { return (questions.map { _ in fallbackAction }, [], 0) }
        let replies = try replies(questions)
        let parsed = replies.map { DecoderRouter.parsed($0, space: space) }
        return (parsed.map { $0 ?? 0 }, replies, parsed.filter { $0 == nil }.count)
    }

    /// The greedy action, with the distribution over actions that the model gives each
    /// action's target (its probability, teacher-forced, renormalised over the actions).
    public func route(_ questions: [RoutingQuestion], embeddings: [[Float]]?) throws -> [RouteDecision] {
        let chosen = try actions(questions.map(\.text))
        if fallbackAction != nil { return chosen.map { .certain($0, of: space) } }
        let targets = try space.indices.map { try targetTokens(space.output(for: space.assignment(of: $0))) }
        return try zip(questions, chosen).map { q, action in
            let logp = try engine.continuationLogProbabilities(model, prompt: try promptTokens(q.text, routing: true), continuations: targets)
            let top = logp.max()!
            let e = logp.map { Glibc.exp($0 - top) }
            let total = e.reduce(0, +)
            return RouteDecision(action: action, distribution: e.map { $0 / total })
        }
    }

    /// The mean over positions of the backbone's last hidden state (after the final norm)
    /// for a question's routing prompt: what the parameter generators read, over the whole
    /// prompt (`.prompt`, the reference) or the question's tokens only (`.question`).
    /// `keepForBackward`: the engine keeps what a step's gradient into the backbone needs.
    public func pooledState(_ question: String, pooling: Pooling = .prompt, keepForBackward: Bool = false) throws -> PooledState {
        let prompt = try promptTokens(question, routing: true)
        let positions = pooling == .question ? try questionPositions(question, in: prompt) : nil
        return try engine.pooledState(model, prompt: prompt, positions: positions, keepForBackward: keepForBackward)
    }

    /// Where a question's tokens lie in its routing prompt: what differs from the prompt of
    /// the empty question, after their common beginning and end (a token the tokenizer merged
    /// across the question's edge counts as the question's).
    func questionPositions(_ question: String, in prompt: [Int]) throws -> Range<Int> {
        let empty = try promptTokens("", routing: true)
        var start = 0
        while start < min(prompt.count, empty.count), prompt[start] == empty[start] { start += 1 }
        var tail = 0
        while tail < min(prompt.count, empty.count) - start, prompt[prompt.count - 1 - tail] == empty[empty.count - 1 - tail] { tail += 1 }
        guard start < prompt.count - tail else {
            throw RouterError("the question \"\(question.prefix(60))\" adds no tokens to the routing prompt: there is nothing to pool over (pooling \"question\")")
        }
        return start..<(prompt.count - tail)
    }

    // MARK: Saving

    public func save(directory: String) throws {
        try engine.saveModel(model, to: directory)
        try FileIO.writeAtomically(tokenizerJSON, to: directory + "/tokenizer.json")
        var fields: [(String, JSONValue)] = [
            ("template", .string(template.rawValue)), ("candidates", .array(settings.candidates.map(JSONValue.string))),
            ("prompt", ["system": .string(settings.prompt.system), "user": .string(settings.prompt.user)]),
            ("date", settings.date.map(JSONValue.string) ?? .null), ("double_bos_when_routing", .bool(settings.doubleBOSWhenRouting)),
            ("max_new_tokens", .number(Double(settings.maxNewTokens))),
        ]
        if let fallbackAction { fields.append(("fallback_action", .number(Double(fallbackAction)))) }
        try RouterArtifacts.write(directory: directory, kind: DecoderRouter.kind, space: space, fields: fields, arrays: [:])
    }

    static func load(directory: String, json: JSONValue, space: ActionSpace, engine: any Engine) throws -> any QuestionRouter {
        let path = directory + "/router.json"
        guard let names = json["candidates"]?.arrayValue?.compactMap(\.stringValue), let system = json["prompt"]?["system"]?.stringValue,
              let user = json["prompt"]?["user"]?.stringValue else {
            throw RouterError("\(path): a decoder router needs 'candidates' and 'prompt' {system, user}")
        }
        var settings = Settings(candidates: names)
        settings.prompt = RouterPrompt(system: system, user: user)
        settings.date = json["date"]?.stringValue
        settings.doubleBOSWhenRouting = json["double_bos_when_routing"]?.boolValue ?? false
        settings.maxNewTokens = json["max_new_tokens"]?.intValue ?? 16
        return try DecoderRouter(directory: directory, engine: engine, template: json["template"]?.stringValue.flatMap(ChatTemplate.init(rawValue:)),
                                 space: space, settings: settings, fallbackAction: json["fallback_action"]?.intValue)
    }
}
