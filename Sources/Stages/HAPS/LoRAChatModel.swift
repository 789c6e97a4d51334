public import LLM
public import NN
public import Pipeline
import Threading

/// A local candidate under one question's LoRA update, as a `ChatModel` for the shared
/// dialogue sampler (issue 16: HAPS runs live, and joint RL). Every call generates under the
/// update with `rule`'s nucleus and records its log q and gradient with respect to A and B;
/// both roles played by this model share the update and add to the same record. Its
/// `adapter` is the update's digest, so a memo keys its calls apart from the base model's
/// (for evaluation; RL calls it directly, since a replayed call has no gradient).
public final class LoRAChatModel: ChatModel, @unchecked Sendable {
    public let base: LocalChatModel
    public let lora: LoRAUpdate
    public let rule: NucleusRule
    public let adapter: String?
    /// Whether each call records its log q and gradient (joint RL), or only replies (evaluation).
    public let recordsGradients: Bool
    private let lock = Lock()
    private var records: [LocalChatModel.LoRAReply] = []

    public var identity: String { base.identity }

    public init(base: LocalChatModel, lora: LoRAUpdate, rule: NucleusRule = .standard, recordsGradients: Bool = true) {
        self.base = base; self.lora = lora; self.rule = rule; self.recordsGradients = recordsGradients
        adapter = LoRAChatModel.digest(lora, rule: rule).hex
    }

    /// SHA-256 over the update's shape, alpha, layers, nucleus rule and A's and B's float bits.
    public static func digest(_ lora: LoRAUpdate, rule: NucleusRule) -> Digest {
        var h = DigestBuilder()
        h.update(Array("lora v1 \(lora.a.shape) \(lora.b.shape) alpha=\(lora.alpha.bitPattern) layers=\(lora.layers) rule=\(rule.rawValue)".utf8))
        for t in [lora.a, lora.b] { t.data.withUnsafeBytes { h.update($0) } }
        return h.finalize()
    }

    /// A reply under the update, drawn with the settings' seed as given: in a dialogue, the
    /// sampler's `CandidateStream` gives each sampled call its own seed, from the dialogue's
    /// seed, this candidate's index and the call's number among this candidate's calls.
    public func chat(_ messages: [ChatMessage], settings: GenerationSettings) throws -> ChatReply {
        guard recordsGradients else { return try base.chat(messages, settings: settings, under: lora, rule: rule) }
        let r = try base.chat(messages, settings: settings, lora: lora, rule: rule)
        lock.withLock { records.append(r) }
        return r.reply
    }

    /// Every call made so far, in order: reply, tokens, log q and its gradients.
    public var calls: [LocalChatModel.LoRAReply] { lock.withLock { records } }

    /// Σ log q over the calls and the summed gradients with respect to A and B (what −R·Σ log q
    /// needs, scaled by −R).
    public var total: (logq: Float, dA: Tensor, dB: Tensor) {
        var dA = Tensor(zeros: lora.a.shape), dB = Tensor(zeros: lora.b.shape), logq: Float = 0
        for r in calls {
            logq += r.logprob
            Kernels.add(&dA, r.gradientA)
            Kernels.add(&dB, r.gradientB)
        }
        return (logq, dA, dB)
    }
}
