public import LLM
public import Pipeline

/// Counts of a run's model calls (asked of a server, or replayed), and the calls in flight, so
/// that identical calls made at the same time by different dialogues go to the server once.
public final class CallCounter: @unchecked Sendable {
    private let lock = Lock()
    private var _made = 0, _replayed = 0, _promptTokens = 0, _completionTokens = 0
    /// A call in flight; the dialogues that want the same call wait on its own condition, so
    /// the end of one call wakes only them.
    private final class Flight {
        let done = Condition()
        var finished = false
    }
    private var inFlight: [Digest: Flight] = [:]
    public init() {}

    /// Runs `body` for `key` unless the same key is in flight; then waits for it to end and
    /// returns nil (the caller reads the memo, or makes the call itself if that one failed).
    func exclusively<T>(_ key: Digest, _ body: () throws -> T) throws -> T? {
        let (flight, mine): (Flight, Bool) = lock.withLock {
            if let f = inFlight[key] { return (f, false) }
            let f = Flight()
            inFlight[key] = f
            return (f, true)
        }
        if !mine {
            flight.done.lock()
            while !flight.finished { flight.done.wait() }
            flight.done.unlock()
            return nil
        }
        defer {
            lock.withLock { inFlight[key] = nil }
            flight.done.lock(); flight.finished = true; flight.done.broadcast(); flight.done.unlock()
        }
        return try body()
    }
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
    public var adapter: String? { base.adapter }

    public init(_ base: any ChatModel, store: Store, counter: CallCounter) {
        self.base = base; self.store = store; self.counter = counter
    }

    /// SHA-256 over the length-prefixed fields (model identity, settings, the LoRA update if
    /// any, then each message's role and content): unambiguous, and cheap enough to compute for
    /// every call. A greedy call is keyed with the reference's seed whatever the caller's: the
    /// seed does not change a greedy reply, so a run with another stage seed replays it.
    public static func key(identity: String, adapter: String? = nil, messages: [ChatMessage], settings: GenerationSettings) -> Digest {
        var h = DigestBuilder()
        func field(_ s: String) {
            var s = s
            s.withUTF8 { u in
                var n = UInt64(u.count).littleEndian
                withUnsafeBytes(of: &n) { h.update($0) }
                h.update(UnsafeRawBufferPointer(u))
            }
        }
        let seed = settings.temperature == 0 ? GenerationSettings.reference.seed : settings.seed
        field("haps-pipe call v1")
        field(identity)
        field("temperature=\(settings.temperature) top_p=\(settings.topP) max_tokens=\(settings.maxTokens) seed=\(seed.map(String.init) ?? "none")")
        field("stop \(settings.stop.count)")
        for s in settings.stop { field(s) }
        // Only calls under an update have this field, so the keys of base-model calls are those
        // of earlier versions (their records stay valid).
        if let adapter { field("lora"); field(adapter) }
        field("messages \(messages.count)")
        for m in messages { field(m.role); field(m.content) }
        return h.finalize()
    }

    public func chat(_ messages: [ChatMessage], settings: GenerationSettings) throws -> ChatReply {
        let key = MemoizedChatModel.key(identity: identity, adapter: adapter, messages: messages, settings: settings)
        while true {
            if let r = recorded(key) { return r }
            let made = try counter.exclusively(key) { () throws -> ChatReply in
                if let r = recorded(key) { return r }  // recorded while this thread waited for the key
                let r = try base.chat(messages, settings: settings)
                var v: [String: JSONValue] = ["text": .string(r.text), "prompt_tokens": .number(Double(r.promptTokens)),
                                              "completion_tokens": .number(Double(r.completionTokens))]
                if let f = r.finishReason { v["finish_reason"] = .string(f) }
                try store.recordMemo(key, .object(v))
                counter.add(replayed: false, r)
                return r
            }
            if let made { return made }
            // Another dialogue made this call meanwhile: replay its record (or, if it failed, try again).
        }
    }

    private func recorded(_ key: Digest) -> ChatReply? {
        guard let v = store.memo(key), let text = v["text"]?.stringValue else { return nil }
        let r = ChatReply(text: text, promptTokens: v["prompt_tokens"]?.intValue ?? 0,
                          completionTokens: v["completion_tokens"]?.intValue ?? 0, finishReason: v["finish_reason"]?.stringValue)
        counter.add(replayed: true, r)
        return r
    }
}
