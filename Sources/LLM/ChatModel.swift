/// One chat message.
public struct ChatMessage: Sendable, Equatable, Hashable {
    public var role: String
    public var content: String
    public init(role: String, content: String) { self.role = role; self.content = content }
    public static func user(_ content: String) -> ChatMessage { ChatMessage(role: "user", content: content) }
}

/// How to generate: greedy when `temperature` is 0.
public struct GenerationSettings: Sendable, Equatable, Hashable {
    public var temperature: Double
    public var topP: Double
    public var maxTokens: Int
    public var seed: Int?
    public var stop: [String]
    /// Scheduling only: among requests waiting for the same endpoint, a higher priority goes
    /// first. Never sent to a server and never part of a memo key.
    public var priority: Int = 0
    public init(temperature: Double = 0, topP: Double = 1, maxTokens: Int = 256, seed: Int? = 43, stop: [String] = []) {
        self.temperature = temperature; self.topP = topP; self.maxTokens = maxTokens; self.seed = seed; self.stop = stop
    }
    /// The reference's sampling and evaluation settings: greedy, top_p 1, 256 tokens, seed 43.
    public static let reference = GenerationSettings()
}

/// A model's reply and what it cost.
public struct ChatReply: Sendable, Equatable {
    public var text: String
    public var promptTokens: Int
    public var completionTokens: Int
    public var finishReason: String?
    public init(text: String, promptTokens: Int = 0, completionTokens: Int = 0, finishReason: String? = nil) {
        self.text = text; self.promptTokens = promptTokens; self.completionTokens = completionTokens; self.finishReason = finishReason
    }
}

/// A chat model behind any backend (OpenAI-compatible HTTP, the reference's protocol, the local
/// engine). Calls block; callers run many at once on worker threads.
public protocol ChatModel: Sendable {
    /// What identifies the model's outputs (backend, model id, revision; not its URL).
    var identity: String { get }
    /// The digest of the LoRA update this model applies to every call (hex), or nil for the
    /// base weights. A memo keys calls by it, so that a call made under an update never replays
    /// one made without it or under another update.
    var adapter: String? { get }
    func chat(_ messages: [ChatMessage], settings: GenerationSettings) throws -> ChatReply
}

extension ChatModel {
    public var adapter: String? { nil }
}

/// A retriever: the single best paragraph for an entity, among a question's paragraphs.
public protocol Retriever: Sendable {
    var identity: String { get }
    func retrieve(entity: String, paragraphs: [String]) throws -> String
}
