import NN
#if canImport(Glibc)
import Glibc
#endif

/// The text side of a local chat model, which stays in Swift whatever engine runs the
/// tensors: the family's chat template, the tokenizer, the stop ids, and a reply decoded from
/// generated ids (end-of-turn dropped, `stop` strings cut). `LocalChatModel` and
/// `EngineChatModel` share it.
public struct ChatCodec: Sendable {
    public let tokenizer: BPETokenizer
    public let template: ChatTemplate
    /// The config's end-of-sequence ids and the template's end-of-turn tokens.
    public let stopTokens: Set<Int>

    /// The tokenizer and template of a model directory (`template`: nil, the family's).
    public init(directory: String, config: DecoderConfig, template: ChatTemplate? = nil) throws {
        let tokenizerPath = directory + "/tokenizer.json"
        guard access(tokenizerPath, R_OK) == 0 else { throw ModelError(directory, "no tokenizer.json: the local backend needs the model's tokenizer") }
        let tokenizer = try BPETokenizer(path: tokenizerPath)
        let template = template ?? ChatTemplate.forFamily(config.family)
        self.tokenizer = tokenizer; self.template = template
        stopTokens = Set(config.eosTokenIDs + template.endOfTurn.compactMap { tokenizer.addedTokens[$0] })
    }

    /// The rendered conversation's ids.
    public func prompt(_ messages: [ChatMessage]) -> [Int] { tokenizer.encode(template.render(messages)) }

    /// The reply to `promptTokens` ids that generated `ids` (a final stop id dropped from the
    /// text), cut at the first of `settings.stop`.
    public func reply(_ ids: [Int], finishReason: String, promptTokens: Int, settings: GenerationSettings) -> ChatReply {
        var textIDs = ids
        if finishReason == "stop" { textIDs.removeLast() }
        var text = tokenizer.decode(textIDs, skipSpecial: true)
        for s in settings.stop where !s.isEmpty {
            var i = text.startIndex
            while i < text.endIndex {
                if text[i...].hasPrefix(s) { text = String(text[..<i]); break }
                i = text.index(after: i)
            }
        }
        return ChatReply(text: text, promptTokens: promptTokens, completionTokens: ids.count, finishReason: finishReason)
    }

    /// The uniforms a sampled call draws: the settings' seed's stream (`SamplingRandom`), one a
    /// token; none when greedy.
    public static func uniforms(_ settings: GenerationSettings) -> [Float] {
        settings.temperature > 0 ? SamplingRandom.uniforms(seed: UInt64(truncatingIfNeeded: settings.seed ?? 0), count: settings.maxTokens) : []
    }
}

/// A candidate model held by an engine, as a `ChatModel`: prompts are rendered and tokenised
/// here, ids cross to the engine, replies are decoded here. Plain calls (`chat`) use the base
/// weights; the method's calls (`chat(_:settings:update:rule:recording:)`) run under one
/// question's update and, when recording, keep what the gradient of their log q needs.
public final class EngineChatModel: ChatModel, @unchecked Sendable {
    public let engine: any Engine
    public let model: EngineModel
    public let codec: ChatCodec
    public var name: String { model.name }
    public var identity: String { "local:\(model.name)" }
    public var config: DecoderConfig { model.config }

    /// Loads a Hugging Face model directory into `engine`, frozen.
    public init(directory: String, name: String, engine: any Engine, template: ChatTemplate? = nil) throws {
        self.engine = engine
        model = try engine.loadModel(directory: directory, name: name, trainable: false)
        codec = try ChatCodec(directory: directory, config: model.config, template: template)
    }

    public func chat(_ messages: [ChatMessage], settings: GenerationSettings) throws -> ChatReply {
        try chat(messages, settings: settings, update: nil).reply
    }

    /// A reply under `update` (nil: the base weights) with its Σ log q; `recording`: the call
    /// keeps its gradient in the engine (`reply.call` names it to `Engine.accumulate`).
    public func chat(_ messages: [ChatMessage], settings: GenerationSettings, update: EngineUpdate?, rule: NucleusRule = .standard,
                     recording: Bool = false) throws -> (reply: ChatReply, engine: EngineReply) {
        let prompt = codec.prompt(messages)
        let call = EngineCall(model: model, prompt: prompt, maxNewTokens: settings.maxTokens, stopTokens: codec.stopTokens,
                              temperature: Float(settings.temperature), topP: Float(settings.topP), rule: rule,
                              uniforms: ChatCodec.uniforms(settings), update: update, recordsGradient: recording)
        let r = try engine.generate([call])[0]
        return (codec.reply(r.ids, finishReason: r.finishReason, promptTokens: prompt.count, settings: settings), r)
    }
}
