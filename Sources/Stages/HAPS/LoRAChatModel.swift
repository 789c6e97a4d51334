public import LLM
public import NN
public import Pipeline
import Threading

/// A candidate under one question's LoRA update, as a `ChatModel` for the shared dialogue
/// sampler (HAPS run live, and joint RL). Every call generates under the update with `rule`'s
/// nucleus; when `recording`, the engine keeps each call's log q gradient with respect to A
/// and B (`calls` names them to `Engine.accumulate`); both roles played by this model share
/// the update and add to the same record. Its `adapter` is the update's digest, so a memo keys
/// its calls apart from the base model's (for evaluation; RL calls it directly, since a
/// replayed call has no gradient). The call's seed is used as given: in a dialogue the
/// sampler's `CandidateStream` gives each sampled call its own.
public final class LoRAChatModel: ChatModel, @unchecked Sendable {
    public let base: EngineChatModel
    public let update: EngineUpdate
    public let rule: NucleusRule
    public let adapter: String?
    /// Whether each call records its gradient (joint RL), or only replies (evaluation).
    public let recording: Bool
    private let lock = Lock()
    private var records: [EngineReply] = []

    public var identity: String { base.identity }

    public init(base: EngineChatModel, update: EngineUpdate, rule: NucleusRule = .standard, recording: Bool = true) {
        self.base = base; self.update = update; self.rule = rule; self.recording = recording
        adapter = LoRAChatModel.digest(update.lora, rule: rule).hex
    }

    /// SHA-256 over the update's shape, alpha, layers, nucleus rule and A's and B's float bits.
    public static func digest(_ lora: LoRAUpdate, rule: NucleusRule) -> Digest {
        var h = DigestBuilder()
        h.update(Array("lora v1 \(lora.a.shape) \(lora.b.shape) alpha=\(lora.alpha.bitPattern) layers=\(lora.layers) rule=\(rule.rawValue)".utf8))
        for t in [lora.a, lora.b] { t.data.withUnsafeBytes { h.update($0) } }
        return h.finalize()
    }

    public func chat(_ messages: [ChatMessage], settings: GenerationSettings) throws -> ChatReply {
        let (reply, r) = try base.chat(messages, settings: settings, update: update, rule: rule, recording: recording)
        if recording { lock.withLock { records.append(r) } }
        return reply
    }

    /// The recorded calls, in order (what `Engine.accumulate` sums).
    public var calls: [EngineCallID] { lock.withLock { records.compactMap(\.call) } }

    /// Σ log q over the recorded calls, in order (what −R·Σ log q is scaled from).
    public var logq: Float { lock.withLock { records.reduce(Float(0)) { $0 + $1.logq } } }
}
