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
    public let codec: ChatCodec
    public let name: String
    public var tokenizer: BPETokenizer { codec.tokenizer }
    public var template: ChatTemplate { codec.template }
    /// Stop ids: the config's end-of-sequence ids and the template's end-of-turn tokens.
    public var stopTokens: Set<Int> { codec.stopTokens }
    /// Concurrent chats (a sampling stage's many dialogues) are generated in batches.
    private let batcher: GenerationBatcher

    public var identity: String { "local:\(name)" }

    public init(directory: String, name: String, template: ChatTemplate? = nil) throws {
        model = try DecoderModel(directory: directory)
        codec = try ChatCodec(directory: directory, config: model.config, template: template)
        self.name = name
        batcher = GenerationBatcher(model: model, maxBatch: 32, maxQueue: 1 << 20)
    }

    deinit { batcher.stop() }

    public func chat(_ messages: [ChatMessage], settings: GenerationSettings) throws -> ChatReply {
        let prompt = codec.prompt(messages)
        let request = GenerationRequest(prompt: prompt, maxNewTokens: settings.maxTokens, temperature: Float(settings.temperature),
                                        topP: Float(settings.topP), seed: UInt64(truncatingIfNeeded: settings.seed ?? 0), stopTokens: stopTokens)
        let result = try Waiter<GenerationResult>.wait { done in try batcher.submit(request, completion: done) }
        return codec.reply(result.ids, finishReason: result.finishReason, promptTokens: prompt.count, settings: settings)
    }
}

/// Blocks a thread until a callback delivers a result.
final class Waiter<T: Sendable>: @unchecked Sendable {
    private let condition = Condition()
    private var value: Result<T, any Error>?

    static func wait(_ start: (@escaping @Sendable (Result<T, any Error>) -> Void) throws -> Void) throws -> T {
        let w = Waiter<T>()
        try start(w.deliver)
        return try w.result()
    }

    /// The callback: hands the result to the waiting thread.
    @Sendable func deliver(_ r: Result<T, any Error>) {
        condition.lock(); value = r; condition.signal(); condition.unlock()
    }

    /// Waits for the result.
    func result() throws -> T {
        condition.lock()
        while value == nil { condition.wait() }
        let r = value!
        condition.unlock()
        return try r.get()
    }
}
