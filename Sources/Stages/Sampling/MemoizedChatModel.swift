public import LLM
public import Pipeline

/// Counts of a run's model calls: asked of a server, or replayed from the store.
public final class CallCounter: @unchecked Sendable {
    private let lock = Lock()
    private var _made = 0, _replayed = 0, _promptTokens = 0, _completionTokens = 0
    public init() {}
    func add(replayed: Bool, _ r: ChatReply) {
        lock.withLock {
            if replayed { _replayed += 1 } else { _made += 1 }
            _promptTokens += r.promptTokens
            _completionTokens += r.completionTokens
        }
    }
    public var made: Int { lock.withLock { _made } }
    public var replayed: Int { lock.withLock { _replayed } }
    public var tokens: (prompt: Int, completion: Int) { lock.withLock { (_promptTokens, _completionTokens) } }
}

/// Wraps a model so that each distinct call is paid for once: the reply is recorded in the
/// store under a digest of (model identity, settings, messages) and replayed afterwards.
public struct MemoizedChatModel: ChatModel {
    public let base: any ChatModel
    public let store: Store
    public let counter: CallCounter
    public var identity: String { base.identity }

    public init(_ base: any ChatModel, store: Store, counter: CallCounter) {
        self.base = base; self.store = store; self.counter = counter
    }

    public static func key(identity: String, messages: [ChatMessage], settings: GenerationSettings) -> Digest {
        var s: [String: JSONValue] = ["temperature": .number(settings.temperature), "top_p": .number(settings.topP),
                                      "max_tokens": .number(Double(settings.maxTokens)), "stop": .array(settings.stop.map(JSONValue.string))]
        if let seed = settings.seed { s["seed"] = .number(Double(seed)) }
        return Digest.of(string: JSONValue.object([
            "model": .string(identity), "settings": .object(s),
            "messages": .array(messages.map { ["role": .string($0.role), "content": .string($0.content)] }),
        ]).canonical)
    }

    public func chat(_ messages: [ChatMessage], settings: GenerationSettings) throws -> ChatReply {
        let key = MemoizedChatModel.key(identity: identity, messages: messages, settings: settings)
        if let v = store.memo(key), let text = v["text"]?.stringValue {
            let r = ChatReply(text: text, promptTokens: v["prompt_tokens"]?.intValue ?? 0,
                              completionTokens: v["completion_tokens"]?.intValue ?? 0, finishReason: v["finish_reason"]?.stringValue)
            counter.add(replayed: true, r)
            return r
        }
        let r = try base.chat(messages, settings: settings)
        var v: [String: JSONValue] = ["text": .string(r.text), "prompt_tokens": .number(Double(r.promptTokens)),
                                      "completion_tokens": .number(Double(r.completionTokens))]
        if let f = r.finishReason { v["finish_reason"] = .string(f) }
        try store.recordMemo(key, .object(v))
        counter.add(replayed: false, r)
        return r
    }
}
