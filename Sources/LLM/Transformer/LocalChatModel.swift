import NN
#if canImport(Glibc)
import Glibc
#endif

/// The `local` model backend: a Hugging Face model directory (config.json, safetensors,
/// tokenizer.json) run in process on the NN engine. Prompts go through the family's chat
/// template; generation stops at the model's end-of-sequence or end-of-turn tokens.
///
///     let m = try LocalChatModel(directory: "models/tiny-llama", name: "tiny-llama")
///     try m.chat([.user("Hi")], settings: .reference).text
public final class LocalChatModel: ChatModel, @unchecked Sendable {
    public let model: DecoderModel
    public let tokenizer: BPETokenizer
    public let template: ChatTemplate
    public let name: String
    /// Stop ids: the config's end-of-sequence ids and the template's end-of-turn tokens.
    public let stopTokens: Set<Int>
    private let lock = Lock()
    /// Concurrent chats (a sampling stage's many dialogues) are generated in batches.
    private let batcher: GenerationBatcher

    public var identity: String { "local:\(name)" }

    public init(directory: String, name: String, template: ChatTemplate? = nil) throws {
        model = try DecoderModel(directory: directory)
        let tokenizerPath = directory + "/tokenizer.json"
        guard access(tokenizerPath, R_OK) == 0 else { throw ModelError(directory, "no tokenizer.json: the local backend needs the model's tokenizer") }
        let tokenizer = try BPETokenizer(path: tokenizerPath)
        let template = template ?? ChatTemplate.forFamily(model.config.family)
        stopTokens = Set(model.config.eosTokenIDs + template.endOfTurn.compactMap { tokenizer.addedTokens[$0] })
        self.tokenizer = tokenizer; self.template = template; self.name = name
        batcher = GenerationBatcher(model: model, maxBatch: 32, maxQueue: 1 << 20)
    }

    deinit { batcher.stop() }

    public func chat(_ messages: [ChatMessage], settings: GenerationSettings) throws -> ChatReply {
        try chat(messages, settings: settings, under: nil)
    }

    /// A reply under a LoRA update (nil: the base weights), without the gradient: what an
    /// evaluation of HAPS needs. Concurrent calls are batched, each with its own update.
    public func chat(_ messages: [ChatMessage], settings: GenerationSettings, under lora: LoRAUpdate?, rule: NucleusRule = .standard) throws -> ChatReply {
        let prompt = tokenizer.encode(template.render(messages))
        let request = GenerationRequest(prompt: prompt, maxNewTokens: settings.maxTokens, temperature: Float(settings.temperature),
                                        topP: Float(settings.topP), seed: UInt64(truncatingIfNeeded: settings.seed ?? 0),
                                        stopTokens: stopTokens, lora: lora, nucleusRule: rule)
        let result = try Waiter<GenerationResult>.wait { done in try batcher.submit(request, completion: done) }
        var ids = result.ids
        if result.finishReason == "stop" { ids.removeLast() }
        var text = tokenizer.decode(ids, skipSpecial: true)
        for s in settings.stop where !s.isEmpty {
            var i = text.startIndex
            while i < text.endIndex {
                if text[i...].hasPrefix(s) { text = String(text[..<i]); break }
                i = text.index(after: i)
            }
        }
        return ChatReply(text: text, promptTokens: prompt.count, completionTokens: result.ids.count, finishReason: result.finishReason)
    }

    /// A reply generated under a per-question LoRA update, with what joint RL needs: the sum of
    /// the generated tokens' log-probabilities (top-p renormalised at the sampling temperature;
    /// plain log-softmax when greedy) and its gradient with respect to the update's A and B.
    public struct LoRAReply: Sendable {
        public var reply: ChatReply
        public var ids: [Int]
        public var logprob: Float
        public var gradientA: Tensor
        public var gradientB: Tensor
    }

    /// `rule`: the nucleus both the sampling and log q use (`.reference` for the reference's RL).
    public func chat(_ messages: [ChatMessage], settings: GenerationSettings, lora: LoRAUpdate, rule: NucleusRule = .standard) throws -> LoRAReply {
        let prompt = tokenizer.encode(template.render(messages))
        let temperature = Float(settings.temperature), topP = Float(settings.topP)
        let request = GenerationRequest(prompt: prompt, maxNewTokens: settings.maxTokens, temperature: temperature, topP: topP,
                                        seed: UInt64(truncatingIfNeeded: settings.seed ?? 0), stopTokens: stopTokens, lora: lora, nucleusRule: rule)
        return try lock.withLock {
            let g = try model.generateWithLoRAGradient(request)
            var ids = g.result.ids
            if g.result.finishReason == "stop" { ids.removeLast() }
            let reply = ChatReply(text: tokenizer.decode(ids, skipSpecial: true), promptTokens: prompt.count,
                                  completionTokens: g.result.ids.count, finishReason: g.result.finishReason)
            return LoRAReply(reply: reply, ids: g.result.ids, logprob: g.logprob, gradientA: g.gradientA, gradientB: g.gradientB)
        }
    }
}

/// Blocks a thread until a callback delivers a result.
final class Waiter<T: Sendable>: @unchecked Sendable {
    private let condition = Condition()
    private var result: Result<T, any Error>?

    static func wait(_ start: (@escaping @Sendable (Result<T, any Error>) -> Void) throws -> Void) throws -> T {
        let w = Waiter<T>()
        try start { r in
            w.condition.lock(); w.result = r; w.condition.signal(); w.condition.unlock()
        }
        w.condition.lock()
        while w.result == nil { w.condition.wait() }
        let r = w.result!
        w.condition.unlock()
        return try r.get()
    }
}
