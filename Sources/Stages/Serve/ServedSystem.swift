#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
public import LLM
public import Pipeline

/// A trained HAPS system opened from the store to answer new questions (`haps-pipe serve
/// --system`): the router, and for an `rl-train` result its generators, with the candidates
/// and the retriever it was trained with. `route` is the routing decision alone; `answer`
/// routes, makes each chosen candidate's update and runs the dialogue greedily, as
/// `evaluate`'s live row does, so that a question gets the answer `evaluate` gave it.
///
///     let served = try ServedSystem.open(store: store, target: "quickstart/rl_train", options: .init())
///     let a = try served.answer(try served.question(text: "Who ...?", context: nil), lora: true)
///     a.sample.result.answer
public final class ServedSystem: Sendable {
    /// What the server's flags add to what the result says of itself.
    public struct Options: Sendable {
        /// Candidate name → a model directory (local) or an OpenAI-compatible server's URL
        /// (`http://host:port/v1`, the model's id on it the candidate's name).
        public var models: [String: String] = [:]
        /// Question files (questions.jsonl) or stored results of kind questions: a user message
        /// equal to one of their questions gets its paragraphs.
        public var questions: [String] = []
        /// The retriever instead of the result's: `lexical` or a sentence-transformers directory.
        public var retriever: String?
        /// The dialogue's prompts, budget and reply length where the result does not say them
        /// (an sft-train result), or to override its.
        public var prompts: BuiltinPrompts?
        public var budget: Int?
        public var maxTokens: Int?
        /// The engine's threads (CPU).
        public var threads = 1
        /// The engine that runs the router, generators and local candidates (nil: this
        /// program's CPU engine with `threads`); a started torch engine puts them on GPUs.
        public var engine: (any Engine)?
        public init() {}
    }

    /// What a served result is.
    public enum Kind: String, Sendable { case joint = "rl-train", router = "sft-train" }

    /// `PIPELINE/STAGE` (the digest's first 12 digits when no ref names it; a directory's path).
    public let label: String
    public let kind: Kind
    /// The candidates' names, candidate 0 first (as in the score tables' actions).
    public let names: [String]
    public let space: ActionSpace
    let router: DecoderRouter
    /// The system with its generators (an rl-train result whose candidates are all local).
    let system: HAPSSystem?
    /// The candidates as they are, for answers without updates; nil when one is missing.
    let plain: [any ChatModel]?
    /// Why answers cannot be given (a candidate missing), for the error of a request that asks.
    public let missing: String?
    /// The greedy dialogue (nil without a retriever).
    let sampler: DialogueSampler?
    let known: [String: HotpotQuestion]

    init(label: String, kind: Kind, names: [String], router: DecoderRouter, system: HAPSSystem?, plain: [any ChatModel]?,
         missing: String?, sampler: DialogueSampler?, known: [String: HotpotQuestion]) {
        self.label = label; self.kind = kind; self.names = names; self.router = router; self.system = system
        self.plain = plain; self.missing = missing; self.sampler = sampler; self.known = known
        space = router.space
    }

    /// Whether answers with the generated updates can be given (an rl-train result with local candidates).
    public var canAdapt: Bool { system != nil }
    /// Whether answers can be given at all (every candidate at hand).
    public var canAnswer: Bool { plain != nil }

    // MARK: Serving

    /// The router's greedy action for a question, with its distribution over the actions.
    public func route(_ question: String) throws -> RouteDecision {
        try router.route([RoutingQuestion(question)], embeddings: nil)[0]
    }

    /// What one answered question gave: the route, the dialogue, and whether updates applied.
    public struct Answer: Sendable {
        public var decision: RouteDecision
        public var sample: DialogueSampler.Sample
        public var adapted: Bool
    }

    /// Routes `q`, and runs its dialogue greedily under the chosen candidates' generated updates
    /// (`lora`, an rl-train result) or as they are; `onTurn` is told each call as it completes.
    public func answer(_ q: HotpotQuestion, lora: Bool, onTurn: (@Sendable (DialogueTurn) -> Void)? = nil) throws -> Answer {
        guard var sampler = self.sampler, let plain else { throw ServeError("\(label) cannot answer: \(missing ?? "a candidate is missing")") }
        let decision = try route(q.question)
        sampler.dialogue.onTurn = onTurn
        if lora {
            guard let system else {
                throw ServeError(kind == .router ? "\(label) is an sft-train result (a router, no generators): it answers with \"haps\": {\"lora\": false}"
                                                 : "\(label)'s candidates include a server, where no update can be applied: ask with \"haps\": {\"lora\": false}")
            }
            let (pooled, updates) = try system.updates(q.question, action: decision.action, keepForBackward: false)
            defer { system.engine.release(Array(updates.values), pooled: pooled) }
            let sample = try system.run(q, qid: 0, action: decision.action, updates: updates, sampler: sampler, recording: false)
            return Answer(decision: decision, sample: sample, adapted: true)
        }
        return Answer(decision: decision, sample: try sampler.run(q, qid: 0, action: decision.action, models: plain), adapted: false)
    }

    /// The question a request asks: `context` (its paragraphs) when given, else a known
    /// question's (by its text), else an error that says what to give.
    public func question(text: String, context: [HotpotQuestion.Paragraph]?) throws -> HotpotQuestion {
        let trimmed = text.trimmingSpaces
        if let context {
            guard !context.isEmpty else { throw ServeError("haps.context is empty: give the question's paragraphs") }
            var q = known[trimmed] ?? HotpotQuestion(id: "request", question: text, answer: nil, supportingFacts: [], context: [], type: nil, level: nil)
            q.question = text
            q.context = context
            return q
        }
        if let q = known[trimmed] { return q }
        throw ServeError("the question is not one of the server's known questions (\(known.count), from --questions and the result's inputs), and the request gives no paragraphs: send them as \"haps\": {\"context\": [...]}")
    }

    /// Known questions by their text.
    public var knownQuestions: Int { known.count }
}

/// A problem opening or using a served system, in words that name what and where.
public struct ServeError: Error, CustomStringConvertible, Sendable {
    public var description: String
    public init(_ description: String) { self.description = description }
}
